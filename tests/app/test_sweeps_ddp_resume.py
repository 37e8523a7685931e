"""W&B offline runs, multirun + report, Optuna, SLURM config, DDP on CPU (test metrics and fit), resume after a kill mid-checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import compose_train, kill_once_marked
from hydra import compose, initialize_config_dir

from nasrank import report
from nasrank.core import ConfigError, REPO_ROOT
from nasrank.data.datamodule import EpochSeededSampler
from nasrank.training import resolve_ckpt, train


#: one torch thread per process, as the `one_thread` fixture gives this process: runs in a child and
#: in process then compute bit for bit the same
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def cli(script: str, *args: str, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
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


def test_ddp_cpu_test_metrics_equal_single_process(tmp_path, one_thread):
    base = ["debug=fast", "logger=none", "callbacks=default", "callbacks.progress_bar=null"]
    train(compose_train(base, tmp_path / "fit"))
    ckpt = tmp_path / "fit" / "checkpoints" / "last.ckpt"
    results = {}
    for trainer in ("default", "ddp_cpu"):
        run_dir = tmp_path / trainer
        overrides = [*base, f"trainer={trainer}", "train=false", f"ckpt_path={ckpt}", "trainer.limit_test_batches=1.0", "data.eval_batch_size=1000"]
        if trainer == "default":
            train(compose_train(overrides, run_dir))
        else:
            proc = cli("train.py", *overrides, f"hydra.run.dir={run_dir}", env=ONE_THREAD)
            assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr, proc.stderr[-2000:]
        results[trainer] = json.loads((run_dir / "metrics.json").read_text())
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(["fit", *results])  # no per-rank run dirs
    assert results["ddp_cpu"]["test/ktau"] == results["default"]["test/ktau"]
    assert results["ddp_cpu"]["test/p@10"] == results["default"]["test/p@10"]


#: a small fit (64 cells) that keeps every epoch's checkpoint: Lightning rewrites last.ckpt only when it
#: saves a top-k one, so with save_top_k=-1 last.ckpt is always the latest epoch's
SMALL_FIT = ["model=regressor", "logger=none", "callbacks=default", "callbacks.early_stopping=null", "callbacks.progress_bar=null",
             "callbacks.model_checkpoint.save_top_k=-1", "data.n_train=64", "data.n_val=32", "data.eval_batch_size=1024",
             "+trainer.limit_test_batches=1", "+trainer.enable_progress_bar=false"]


def last_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_ddp_cpu_fit_equals_the_single_process_fit_of_its_batches(tmp_path, one_thread, monkeypatch):
    """What 2-rank DDP computes, stated exactly: Lightning wraps the datamodule's epoch-seeded order L
    in a DistributedSampler(shuffle=True, seed=PL_GLOBAL_SEED), so in epoch e rank r reads
    L[p[r]], L[p[r + 2]], ... with p = randperm(n, seed + e); batch i of the two ranks together is
    L[p[2iB:2(i+1)B]], and their gradients are averaged.  For a per-row mean loss (the GIN regressor's
    MSE, no dropout or batch norm) that equals one process fitting batches of 2B in the order L[p]."""
    # every test row: a limited test epoch would be 1 batch per rank, i.e. twice the rows under DDP
    args = [*(a for a in SMALL_FIT if "limit_test_batches" not in a), "+trainer.limit_test_batches=1.0", "trainer.max_epochs=3"]
    proc = cli("train.py", *args, "trainer=ddp_cpu", "data.batch_size=8", f"hydra.run.dir={tmp_path / 'ddp'}", env=ONE_THREAD)
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stderr, proc.stderr[-2000:]
    assert torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3 * 64 // (2 * 8)
    ddp = last_weights(tmp_path / "ddp")
    train(compose_train([*args, "data.batch_size=16"], tmp_path / "plain"))

    epoch_order = EpochSeededSampler.__iter__

    def lightning_ddp_order(self):
        order = list(epoch_order(self))
        perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(0 + self.epoch)).tolist()  # seed=0: cfg.seed
        return iter([order[j] for j in perm])

    monkeypatch.setattr(EpochSeededSampler, "__iter__", lightning_ddp_order)
    same_order, _ = train(compose_train([*args, "data.batch_size=16"], tmp_path / "same_order"))
    matched, unmatched = last_weights(tmp_path / "same_order"), last_weights(tmp_path / "plain")
    assert all(torch.allclose(ddp[k], matched[k], rtol=1e-4, atol=1e-6) for k in ddp)
    assert not all(torch.allclose(ddp[k], unmatched[k], rtol=1e-4, atol=1e-6) for k in ddp), "the order matters, so the test can tell"
    ddp_metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    for key in ("val/ktau", "test/ktau", "test/spearman"):
        assert ddp_metrics[key] == pytest.approx(same_order[key], abs=1e-4), key


#: train.py whose checkpoint write of the argv[2]-th `last.ckpt` stops halfway, touches argv[1] and
#: hangs (so a SIGKILL lands mid-write); then argv[3:] is the train.py command line.
SLOW_CHECKPOINT_CHILD = """
import os, runpy, sys, time
from fsspec.implementations.local import LocalFileOpener

signal_file, nth = sys.argv[1], int(sys.argv[2])
real_write, seen = LocalFileOpener.write, []

def write(self, data):
    if os.path.basename(self.path) == "last.ckpt":
        seen.append(self.path)
        if len(seen) == nth:
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            open(signal_file, "w").close()
            time.sleep(600)
    return real_write(self, data)

LocalFileOpener.write = write
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_kill_while_writing_last_ckpt_resumes_to_the_uninterrupted_weights(tmp_path, one_thread):
    args = [*SMALL_FIT, "data.batch_size=16", "trainer.max_epochs=4"]
    train(compose_train(args, tmp_path / "full"))
    killed, writing, scratch = tmp_path / "killed", tmp_path / "writing", tmp_path / "scratch"
    scratch.mkdir()  # the checkpoint writer's temp files (mkstemp: tmp*) go here, so the half-written one can be seen
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CHECKPOINT_CHILD, str(writing), "3", str(REPO_ROOT / "train.py"), *args,
                             f"hydra.run.dir={killed}"], cwd=REPO_ROOT, env={**os.environ, **ONE_THREAD, "TMPDIR": str(scratch)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_once_marked(proc, writing, 240, "the run never reached its third last.ckpt")
    assert [p.stat().st_size > 0 for p in scratch.glob("tmp*")] == [True], "the kill landed halfway through writing a checkpoint"
    assert not (killed / "metrics.json").exists()
    last = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1, "last.ckpt is still the complete one of the epoch before the kill"
    # a damaged last.ckpt (what a writer without temp file + rename would leave) is refused in one line
    damaged = tmp_path / "damaged"
    (damaged / "checkpoints").mkdir(parents=True)
    data = (killed / "checkpoints" / "last.ckpt").read_bytes()
    (damaged / "checkpoints" / "last.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match=r"checkpoint \S+/damaged/checkpoints/last.ckpt is not a readable nasrank checkpoint \(\w+\)$"):
        train(compose_train([*args, "ckpt_path=last"], damaged))
    before = {p.name: p.stat().st_mtime_ns for p in (killed / "checkpoints").glob("epoch_*.ckpt")}
    proc = cli("train.py", *args, f"hydra.run.dir={killed}", "ckpt_path=last", env=ONE_THREAD)
    assert f"Restoring states from the checkpoint path at {killed / 'checkpoints' / 'last.ckpt'}" in proc.stderr, proc.stderr[-2000:]
    after = {p.name: p.stat().st_mtime_ns for p in (killed / "checkpoints").glob("epoch_*.ckpt")}
    # a fresh fit would reach the same weights too (same seed); only a resume leaves epochs 0-1 unwritten
    assert all(after[k] == before[k] for k in ("epoch_000.ckpt", "epoch_001.ckpt")) and "epoch_003.ckpt" in after, (before, after)
    full, resumed = last_weights(tmp_path / "full"), last_weights(killed)
    assert full.keys() == resumed.keys() and all(torch.equal(full[k], resumed[k]) for k in full)
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "full", killed))
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
