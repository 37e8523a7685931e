"""Issue 9: W&B offline runs, multirun + report, Optuna, SLURM config, DDP on CPU, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import compose_train
from hydra import compose, initialize_config_dir

from nasrank import report
from nasrank.benchmarks.paths import REPO_ROOT
from nasrank.errors import ConfigError
from nasrank.training import resolve_ckpt, train


def cli(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_wandb_offline_run_has_metrics_and_media(tmp_path):
    train(compose_train(["debug=fast", "logger=wandb"], tmp_path))
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (records,) = run_dir.glob("run-*.wandb")
    data = records.read_bytes()
    for key in (b"val/ktau", b"test/ktau", b"train/loss", b"test/spearman"):
        assert key in data
    assert list(run_dir.glob("files/media/images/test/pred_vs_true*.png"))
    assert list(run_dir.glob("files/media/table/test/top_k*.table.json"))
    assert (tmp_path / "pred_vs_true.png").is_file() and json.loads((tmp_path / "metrics.json").read_text())["test/ktau"]


def test_multirun_jobs_and_report(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    cli("train.py", "-m", "debug=fast", "logger=csv", "model=regressor,renas_gin", "seed=0,1", f"hydra.sweep.dir={sweep}")
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(jobs) == 4 and len({p.name for p in jobs}) == 4
    assert report.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "model=" in line]
    assert len(rows) == 2 and all(line.count("(2)") == 5 for line in rows)
    assert report.main([str(tmp_path / "missing")]) == 2


def test_optuna_sweep_two_trials(tmp_path):
    sweep = tmp_path / "optuna"
    cli("train.py", "-m", "hparams_search=gin_optuna", "hydra.sweeper.n_trials=2", "debug=fast", "logger=none", f"hydra.sweep.dir={sweep}")
    assert len(list(sweep.glob("*/metrics.json"))) == 2
    assert "best_value" in (sweep / "optimization_results.yaml").read_text()


def test_slurm_launcher_config_composes():
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm_gpu", "trainer=ddp", "trainer.devices=8"], return_hydra_config=True)
    assert "submitit" in cfg.hydra.launcher._target_
    assert cfg.hydra.launcher.gpus_per_node == 8 and cfg.hydra.launcher.tasks_per_node == 8


def test_ddp_cpu_test_metrics_equal_single_process(tmp_path):
    base = ["debug=fast", "logger=none", "callbacks=default", "callbacks.progress_bar=null"]
    cli("train.py", *base, f"hydra.run.dir={tmp_path / 'fit'}")
    ckpt = tmp_path / "fit" / "checkpoints" / "last.ckpt"
    results = {}
    for trainer in ("default", "ddp_cpu"):
        run_dir = tmp_path / trainer
        cli("train.py", *base, f"trainer={trainer}", "train=false", f"ckpt_path={ckpt}", "trainer.limit_test_batches=1.0",
            "data.eval_batch_size=1000", f"hydra.run.dir={run_dir}")
        results[trainer] = json.loads((run_dir / "metrics.json").read_text())
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(["fit", *results])  # no per-rank run dirs
    assert results["ddp_cpu"]["test/ktau"] == results["default"]["test/ktau"]
    assert results["ddp_cpu"]["test/p@10"] == results["default"]["test/p@10"]


def test_ddp_cpu_fit_runs(tmp_path):
    cli("train.py", "debug=fast", "logger=none", "trainer=ddp_cpu", f"hydra.run.dir={tmp_path}")
    assert "test/ktau" in json.loads((tmp_path / "metrics.json").read_text())


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    args = ["model=regressor", "logger=none", "callbacks=default", "callbacks.early_stopping=null", "callbacks.progress_bar=null",
            "callbacks.model_checkpoint.save_top_k=-1", "data.n_train=1000", "data.n_val=64", "data.batch_size=16",
            "trainer.max_epochs=5", "+trainer.limit_test_batches=1", "+trainer.enable_progress_bar=false"]
    full = tmp_path / "full"
    cli("train.py", *args, f"hydra.run.dir={full}")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "train.py"), *args, f"hydra.run.dir={killed}"], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "epoch_002.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "the run finished before it could be killed"
    # epoch_001 was complete before epoch_002 was started; resume from it in the same run dir
    cli("train.py", *args, f"hydra.run.dir={killed}", f"ckpt_path={killed / 'checkpoints' / 'epoch_001.ckpt'}")
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (full, killed))
    assert a["val/ktau"] == b["val/ktau"] and a["test/ktau"] == b["test/ktau"]


def test_ckpt_last_resolves_in_run_dir(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resolve_ckpt("last", str(tmp_path)) == str(tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match="hydra.run.dir"):
        resolve_ckpt("last", str(tmp_path / "other"))
    assert resolve_ckpt(None, str(tmp_path)) is None


@pytest.mark.parametrize("name, model", [("gin_optuna", "RegressorModule"), ("nar_optuna", "NARModule"), ("renas_optuna", "RenasModule")])
def test_optuna_config_per_model_composes(name, model):
    with initialize_config_dir(str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"hparams_search={name}"], return_hydra_config=True)
    assert cfg.model._target_.endswith(model) and cfg.optimized_metric == "val/ktau"
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.sweeper.params
