"""Shared fixtures: the shared data dir (tests that read it skip with a reason when it is absent, and
fail instead under NASRANK_REQUIRE_DATA=1), temp caches, no internet, and Hydra config composition
as the entry points do it."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, NoReturn

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import nasrank.cli  # noqa: F401 - registers the repo_root resolver used by conf/paths
from nasrank.core import REPO_ROOT, resolve_data_dir

DATA_DIR = resolve_data_dir()
NB201_CSV = DATA_DIR / "nb201" / "nats_tss_200ep_test_acc.csv"
NB101_CSV = DATA_DIR / "nb101" / "nb101_test_acc_flops.csv.gz"
#: CI has the data: there a missing file is a broken path, not a reason to skip dozens of tests.
REQUIRE_DATA = os.environ.get("NASRANK_REQUIRE_DATA") == "1"
needs_nb201 = pytest.mark.needs_data(NB201_CSV, "shared NB201 table")
needs_nb101 = pytest.mark.needs_data(NB101_CSV, "shared NB101 table")


def skip_without_data(reason: str) -> NoReturn:
    """Skip a test whose data is missing, or fail it under NASRANK_REQUIRE_DATA=1."""
    if REQUIRE_DATA:
        pytest.fail(f"{reason}, and NASRANK_REQUIRE_DATA=1", pytrace=False)
    pytest.skip(reason)


def require_data(path: Path, what: str) -> Path:
    """`path` if it is a file, else `skip_without_data` (for fixtures and tests that find their file late)."""
    if not Path(path).is_file():
        skip_without_data(f"{what} not found at {path} (set NASRANK_DATA_DIR)")
    return Path(path)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data(path, what): reads this data file; skipped without it "
                                       "(failed under NASRANK_REQUIRE_DATA=1)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_data"):
        require_data(*mark.args)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test session parses into its own cache dir: tests never touch a user's cache.

    Tests never reach the internet either: downloads go through a proxy that refuses at once (an
    unmarked test reading a missing table fails fast instead of fetching it), except to the local
    servers that the fetch tests start.
    """
    monkeypatch.setenv("NASRANK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def compose_train(overrides: list[str], output_dir: Path, config_name: str = "train") -> DictConfig:
    """The config train.py would run with these overrides, writing only under `output_dir`."""
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


@pytest.fixture
def one_thread():
    """Tiny networks train fastest on one thread; two threads on a busy 2-core machine are ~20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def kill_once_marked(proc: subprocess.Popen, marker: Path, timeout: float, what: str) -> None:
    """Wait until the child `proc` creates `marker` (it is then inside the fault it stages), SIGKILL it, reap it."""
    deadline = time.time() + timeout
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists(), what
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def load_script(name: str):
    """A benchmark script as a module, importable as `python benchmarks/<name>.py` runs it (siblings on sys.path)."""
    if str(REPO_ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _restored_logging() -> Iterator[None]:
    """Undo the logging set-up a Hydra run installs (handlers on the captured streams and the run's log
    file), so later tests see the process's own logging."""
    def loggers() -> dict[str, logging.Logger]:
        known = logging.Logger.manager.loggerDict.items()
        return {"": logging.getLogger(), **{k: v for k, v in known if isinstance(v, logging.Logger)}}

    saved = {name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for name, lg in loggers().items()}
    try:
        yield
    finally:
        for name, lg in loggers().items():
            handlers, level, propagate, disabled = saved.get(name, ([], logging.NOTSET, True, False))
            for handler in lg.handlers:
                if handler not in handlers:
                    handler.close()
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled


def run_entry(script: str, args: list[str]) -> tuple[int, str]:
    """Run an entry point (`train.py`, `search.py`, ...) as `python <script> <args>` would, but in this
    process, so a bad-input case costs its check instead of a fresh interpreter importing torch and
    Lightning. Returns (exit code, stderr)."""
    argv, err = sys.argv, io.StringIO()
    code = 0
    try:
        sys.argv = [script, *args]
        with _restored_logging(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            runpy.run_path(str(REPO_ROOT / script), run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, err.getvalue()
