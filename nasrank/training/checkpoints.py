"""Checkpoints of a fit: resolving `ckpt_path`, refusing weights that do not fit, loading the best epoch."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from nasrank.core import ConfigError


def resolve_ckpt(ckpt_path: str | None, output_dir: str) -> str | None:
    """`last` means this run dir's `checkpoints/last.ckpt` (resume with `hydra.run.dir=<old run>`)."""
    if ckpt_path in (None, ""):
        return None
    path = Path(output_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found; pass ckpt_path=<file> or ckpt_path=last with hydra.run.dir=<the run to resume>")
    return str(path)


def check_checkpoint(path: str, model: L.LightningModule) -> dict:
    """Refuse a checkpoint whose weights do not fit this model/encoding, before Lightning would
    fail deep inside `load_state_dict`.  Loaded with `weights_only=True`: checkpoints are untrusted.
    Returns the checkpoint's state dict."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is the user's file
        raise ConfigError(f"checkpoint {path} is not a readable nasrank checkpoint ({type(exc).__name__})") from None
    return check_state(state, model, f"checkpoint {path}")


def check_state(state: dict, model: L.LightningModule, what: str) -> dict:
    """`state` if its tensor names and shapes are exactly this model's, else one line naming the first differences."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[:2]
        raise ConfigError(f"{what} does not match this model/benchmark encoding (first differences: {diff}); "
                          "use the model, data and encoding it was trained with")
    return state


def load_best(trainer: L.Trainer, model: L.LightningModule) -> str:
    """Load the best checkpoint (val/ktau) of a fit into its model; its path ('' if none was kept)."""
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        model.load_state_dict(check_checkpoint(best, model))
    return best
