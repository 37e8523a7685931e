"""Shared fixtures: the shared data dir (tests skip with a reason when it is absent), temp caches,
and Hydra config composition as the entry points do it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import nasrank.cli  # noqa: F401 - registers the repo_root resolver used by conf/paths
from nasrank.benchmarks.paths import REPO_ROOT, resolve_data_dir

DATA_DIR = resolve_data_dir()
NB201_CSV = DATA_DIR / "nb201" / "nats_tss_200ep_test_acc.csv"
NB101_CSV = DATA_DIR / "nb101" / "nb101_test_acc_flops.csv.gz"
needs_nb201 = pytest.mark.skipif(not NB201_CSV.is_file(), reason=f"shared NB201 table not found at {NB201_CSV} (set NASRANK_DATA_DIR)")
needs_nb101 = pytest.mark.skipif(not NB101_CSV.is_file(), reason=f"shared NB101 table not found at {NB101_CSV} (set NASRANK_DATA_DIR)")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test session parses into its own cache dir: tests never touch a user's cache."""
    monkeypatch.setenv("NASRANK_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")


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
