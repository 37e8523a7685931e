"""``python -m nasrank.pretrain [train.py overrides]``: pretrain a run's encoder ahead of the run.

Takes the overrides a `train.py` run would get (e.g. ``experiment=best_nb201_small_flow data=nb201_cifar100``;
``pretrain=cell_stats`` unless an override or the chosen recipe names another), builds its datamodule and model, and puts the
pretrained encoder weights where that run looks for them (``<paths.cache_dir>``), so the run itself only loads
them.  Prints the cache file, the pretraining's process CPU time (of the run that computed it) and its
pretext loss per epoch; a failure is one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
import tempfile

import hydra
from omegaconf import DictConfig

from nasrank.cli import check_compose, check_group_overrides, compose_config, fail, user_error
from nasrank.core import ConfigError
from nasrank.pretrain.weights import Pretrained


def pretrain_config(argv: list[str]) -> DictConfig:
    """The train.py config of these overrides, pretraining `cell_stats` unless they or their recipe choose."""
    argv = list(argv)
    if msg := check_group_overrides(argv) or check_compose("train", argv):
        raise ConfigError(msg)
    cfg = compose_config("train", argv, tempfile.gettempdir())
    if not cfg.get("pretrain") and not any(a.lstrip("+~").partition("=")[0] == "pretrain" for a in argv):
        cfg = compose_config("train", [*argv, "pretrain=cell_stats"], tempfile.gettempdir())  # the recipe's own option wins
    if not cfg.get("pretrain"):
        raise ConfigError("~pretrain pretrains nothing; give pretrain=<option> (conf/pretrain/)")
    return cfg


def prepare(argv: list[str]) -> Pretrained:
    """The cache entry a train.py run with these overrides starts from, computed now if absent."""
    from nasrank.training.pretrained import load_pretrained

    cfg = pretrain_config(argv)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model, data_info=datamodule.data_info())
    return load_pretrained(model, cfg.model.encoder, datamodule, cfg.pretrain, cfg.paths.cache_dir)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    try:
        weights = prepare(argv)
    except Exception as exc:  # noqa: BLE001 - user errors become one line, the rest keeps its traceback
        if (err := user_error(exc)) is None:
            raise
        fail(str(err))
    loss = " ".join(f"{v:.4f}" for v in weights.stats["loss"])
    print(f"{weights.path}\npretrained on {int(weights.stats['cells'][0])} cells in {float(weights.stats['cpu_s'][0]):.0f} s "
          f"process CPU time; pretext loss per epoch: {loss}")


if __name__ == "__main__":
    main()
