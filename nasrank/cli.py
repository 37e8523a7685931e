"""What the thin entry points share: config checks before Hydra runs, one-line user errors.

Users get one line naming what was wrong and what is allowed, and exit code 2; developers get the
full traceback with `HYDRA_FULL_ERROR=1`.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, TypeVar

from hydra.core.hydra_config import HydraConfig

from omegaconf import DictConfig, OmegaConf

from nasrank.core import ConfigError, NasrankError, REPO_ROOT, default_cache_dir

CONF_DIR = REPO_ROOT / "conf"
T = TypeVar("T")
OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT), replace=True)
OmegaConf.register_new_resolver("default_cache_dir", lambda: str(default_cache_dir()), replace=True)


def _encoder_reads(target: str) -> list[str]:
    """`model.tensors` of the model configs: the encodings their encoder reads (imported only when resolved)."""
    from nasrank.models.encoders import reads

    return reads(target)


OmegaConf.register_new_resolver("encoder_reads", _encoder_reads, replace=True)


def _sweep_group() -> str | None:
    """W&B group of a job: its multirun sweep (so a sweep's runs sit together), none for single runs."""
    from hydra.types import RunMode

    try:
        hc = HydraConfig.get()
    except ValueError:
        return None
    return f"{hc.job.name}/{Path(hc.sweep.dir).name}" if hc.mode == RunMode.MULTIRUN else None


OmegaConf.register_new_resolver("sweep_group", _sweep_group, replace=True)
# W&B stays offline (no network, nothing hangs) unless the user explicitly sets WANDB_MODE=online
OmegaConf.register_new_resolver("wandb_offline", lambda: os.environ.get("WANDB_MODE", "offline") != "online", replace=True)


def _options(group: str) -> list[str]:
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml"))  # a sub-folder is a group of its own (model/encoder)


def check_group_overrides(argv: list[str]) -> str | None:
    """Message for the first `group=option` override naming an option that does not exist.

    Hydra's own message for this spans many lines; users mistype these most, so it is checked first.
    """
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or not (CONF_DIR / key).is_dir() or key == "hydra":
            continue
        if value == "null" and not arg.startswith("~"):  # Hydra's own message does not say how to drop a group
            return f"{key}=null: a config group cannot be set to null; drop it with ~{key}"
        for option in value.split(","):
            if option not in ("null", "") and option not in _options(key):
                return f"unknown {key} option {option!r}; allowed: {', '.join(_options(key))}"
    return None


def user_error(err: BaseException) -> NasrankError | None:
    """The `NasrankError` behind an exception (Hydra wraps errors raised while instantiating)."""
    while err is not None:
        if isinstance(err, NasrankError):
            return err
        err = err.__cause__ or err.__context__
    return None


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _fresh_run_dir() -> Path | None:
    """This job's output dir if it holds only what Hydra wrote at job start (.hydra/, the log).

    A dir with anything else (a run being resumed, results) is never removed.
    """
    try:
        out = Path(HydraConfig.get().runtime.output_dir)
    except ValueError:  # not running under Hydra
        return None
    files = [p for p in out.rglob("*") if p.is_file()]
    return out if all(p.parent.name == ".hydra" or p.suffix == ".log" for p in files) else None


def guard(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Wrap a Hydra task so user errors become one line (Hydra would print a traceback)."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> T:
        fresh = _fresh_run_dir()
        try:
            return task(cfg)
        except Exception as exc:  # noqa: BLE001 - turned into one line unless the developer asks for more
            err = user_error(exc)
            if err is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if fresh is not None:  # a run that failed on bad input leaves no output dir behind
                shutil.rmtree(fresh, ignore_errors=True)
            fail(str(err))

    return wrapped


def check_compose(config_name: str, argv: list[str]) -> str | None:
    """Compose the config once before Hydra does, so a bad override becomes one line.

    Hydra reports composition errors over several lines; multirun sweeps and Hydra's own flags
    (`--help`, `--cfg`, ...) are left to Hydra.
    """
    if any(a.startswith("-") for a in argv):
        return None
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            compose(config_name, overrides=argv, return_hydra_config=True)
    except Exception as exc:  # noqa: BLE001 - any composition error is the user's override
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return " ".join(lines[:3]) or type(exc).__name__
    return None


def run(main: Callable[[], object], config_name: str) -> None:
    """Check the overrides, then run the `@hydra.main` function."""
    argv = sys.argv[1:]
    if msg := check_group_overrides(argv) or check_compose(config_name, argv):
        fail(msg)
    main()


def compose_config(config_name: str, overrides: list[str], output_dir: str | Path) -> DictConfig:
    """The config `<config_name>.py` would run with these overrides, writing under `output_dir`, for
    callers that run a pipeline from Python (no Hydra run context: `${hydra:...}` is resolved here)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    if msg := check_group_overrides(overrides):
        raise ConfigError(msg)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(Path(output_dir).resolve())
        cfg.hydra.runtime.output_dir = cfg.paths.output_dir
        del cfg["hydra"]
    return cfg
