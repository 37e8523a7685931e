"""The file a trained ranker leaves behind (`ranker.pt`): its format, writing and checked reading.

Plain containers and tensors only, so it is read with `torch.load(weights_only=True)`: a file
that asks to unpickle anything else is refused before any of it runs.  Models are rebuilt from their
resolved Hydra config, and every `_target_` in it must name a class of `nasrank.models` — an edited
config cannot make loading call arbitrary code either.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import hydra
import torch
from torch import nn

import nasrank
from nasrank.core import ConfigError, CorruptDataError, write_atomic
from nasrank.encodings.archs import EncodingSpec

FORMAT = "nasrank.ranker"
#: Bump when the layout changes; older nasrank versions refuse newer files with one line.
FORMAT_VERSION = 1
FILENAME = "ranker.pt"
TARGET_PREFIX = "nasrank.models."


@dataclass
class Member:
    """One fitted network of a ranker: its module, resolved config and input sizes, and encoding."""

    name: str
    module: nn.Module
    config: dict
    data_info: dict
    encoding: EncodingSpec


def _check_targets(node: Any, where: str) -> None:
    """Refuse any `_target_` outside `nasrank.models` (an artifact's config is untrusted input)."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target is not None and not (isinstance(target, str) and target.startswith(TARGET_PREFIX)):
            raise CorruptDataError(f"{where}: config names _target_ {target!r}; a ranker artifact may only name "
                                   f"classes under {TARGET_PREFIX}* (refused, nothing was built)")
        for key, value in node.items():
            _check_targets(value, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for value in node:
            _check_targets(value, where)


def build_module(config: Mapping, data_info: Mapping, where: str = "model") -> nn.Module:
    """A model for scoring from its resolved config: no optimiser, scheduler or extra targets."""
    config = {k: v for k, v in config.items() if k not in ("optimizer", "scheduler", "eval_targets")}
    _check_targets(config, where)
    try:
        return hydra.utils.instantiate(config, data_info=dict(data_info), optimizer=None, scheduler=None, eval_targets=[])
    except Exception as exc:  # noqa: BLE001 - a config this nasrank cannot build is the artifact's problem
        raise CorruptDataError(f"{where}: cannot rebuild the model from its saved config ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); was it saved by another nasrank version?") from None


def to_dict(members: list[Member], ensemble: tuple[torch.Tensor, torch.Tensor] | None, reps: list[str], meta: dict) -> dict:
    """The artifact as plain containers (see `save`)."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "nasrank_version": nasrank.__version__,
        "space": members[0].encoding.space,
        "members": [{"name": m.name, "config": m.config, "data_info": m.data_info, "encoding": m.encoding.to_dict(),
                     "state_dict": {k: v.detach().cpu() for k, v in m.module.state_dict().items()}} for m in members],
        "ensemble": None if ensemble is None else {"mean": ensemble[0].detach().cpu(), "std": ensemble[1].detach().cpu()},
        "representatives": list(reps),
        "meta": dict(meta),
    }


def save(path: Path, artifact: dict) -> Path:
    """Write atomically (temp file + rename): a reader never sees half an artifact."""
    buffer = io.BytesIO()
    torch.save(artifact, buffer)
    write_atomic(Path(path), buffer.getvalue())
    return Path(path)


def resolve_path(path: str | Path) -> Path:
    """The artifact file: `path` itself, or `<path>/ranker.pt` for a run directory."""
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / FILENAME).is_file():
            raise ConfigError(f"{path} is a directory without {FILENAME}; give a train.py run dir "
                              "(outputs/train/runs/<time>) or the artifact file itself")
        return path / FILENAME
    if not path.is_file():
        raise ConfigError(f"ranker {path} not found; give a train.py run dir or its {FILENAME}")
    return path


def read(path: str | Path) -> dict:
    """The checked artifact dict at `path` (a file or a run dir); one line for anything else."""
    path = resolve_path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CorruptDataError(f"{path} is not a nasrank ranker artifact: torch.load(weights_only=True) refused it (it holds "
                               "more than tensors and plain containers, or is no torch file); nothing in it was run") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's
        raise CorruptDataError(f"{path} is not a nasrank ranker artifact ({type(exc).__name__}); give the ranker.pt "
                               "a train.py run wrote") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorruptDataError(f"{path} is not a nasrank ranker artifact (a Lightning checkpoint? use its run dir's "
                               f"{FILENAME} instead)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CorruptDataError(f"{path} is a ranker artifact of format {version!r} (nasrank {data.get('nasrank_version')}); "
                               f"this nasrank {nasrank.__version__} reads format {FORMAT_VERSION}: retrain, or use that version")
    if not data.get("members"):
        raise CorruptDataError(f"{path} holds no fitted model")
    return data


def members_of(data: dict, where: str) -> list[Member]:
    """Rebuild every member's module from an artifact dict, its weights loaded strictly."""
    out = []
    for m in data["members"]:
        module = build_module(m["config"], m["data_info"], f"{where}: member {m['name']}")
        try:
            module.load_state_dict(m["state_dict"])
        except RuntimeError as exc:
            raise CorruptDataError(f"{where}: member {m['name']}'s weights do not fit its config "
                                   f"({str(exc).splitlines()[0][:160]})") from None
        module.eval()
        out.append(Member(m["name"], module, m["config"], m["data_info"], EncodingSpec(**m["encoding"])))
    return out
