"""search.py as a user runs it: what it prints and saves, and one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import compose_train, needs_nb201

from nasrank.core import REPO_ROOT
from nasrank.search.history import History
from nasrank.search.runner import search

pytestmark = needs_nb201
TINY_NAR = ["model.encoder.hidden=16", "model.encoder.layers=1", "model.tier_hidden=16", "model.score_hidden=16", "ranker.epochs=2"]


def run_cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, str(REPO_ROOT / "search.py"), *args, f"hydra.run.dir={tmp_path}/run"],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)


NAR_RUN = ["sampler=nar_tier", "data=nb201_cifar100", "budget=24", "seed=0", "sampler.n_init=12", "sampler.pool_size=300", *TINY_NAR]


def check_printed_and_saved(out: str, run_dir) -> None:
    assert "sampler nar_tier on nb201 cifar100/test_acc, seed 0: 24 queries used (budget 24)" in out
    assert "best cell: |" in out and "true cifar100/test_acc:" in out and "rank in the space:" in out
    history = History.from_json((run_dir / "history.json").read_text())
    assert len(history) == 24 and history.strategy == "nar_tier" and history.extra["ranker_fits"] == 2
    assert f"rank in the space: {history.ranks[history.best_index]} of 15625" in out
    assert len((run_dir / "history.csv").read_text().splitlines()) == 25
    assert (run_dir / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved: {run_dir / 'history.json'}, {run_dir / 'history.csv'}, {run_dir / 'regret.png'}" in out


def test_nar_tier_run_prints_and_saves(tmp_path, capsys) -> None:
    """What search.py's main prints, in-process (the subprocess variant below is slow)."""
    spec = importlib.util.spec_from_file_location("search_entry", REPO_ROOT / "search.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    cfg = compose_train(NAR_RUN, tmp_path / "run", "search")
    entry.main.__wrapped__(cfg)
    check_printed_and_saved(capsys.readouterr().out, tmp_path / "run")


@pytest.mark.slow
def test_nar_tier_run_prints_and_saves_subprocess(tmp_path) -> None:
    proc = run_cli(tmp_path, *NAR_RUN)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_printed_and_saved(proc.stdout, tmp_path / "run")


@pytest.mark.parametrize("sampler", ["random", "evolution", "topk", "nar_tier", "predictor_evolution"])
def test_every_sampler_config_composes_and_saves(sampler, tmp_path) -> None:
    """Each sampler through the composed search config (cheap settings), as search.py runs it."""
    fast = {"topk": ["sampler.n_init=10", "sampler.pool_size=300", "+model.encoder.conv_channels=[4]", "+model.encoder.fc=[16]"],
            "nar_tier": ["sampler.n_init=10", "sampler.pool_size=300", *TINY_NAR[:-1]],
            "predictor_evolution": ["sampler.population=10", "sampler.mutants=20", *TINY_NAR[:-1]],
            "evolution": ["sampler.population=10"]}.get(sampler, [])
    cfg = compose_train([f"sampler={sampler}", "data=nb201_imagenet16", "budget=15", "ranker.epochs=1", *fast], tmp_path, "search")
    history, paths = search(cfg)
    assert len(history) == 15 and history.target == "imagenet16/test_acc" and history.strategy == sampler
    assert sorted(p.name for p in paths) == ["history.csv", "history.json", "regret.png"]
    assert json.loads(paths[0].read_text())["rows"] == history.rows.tolist()


def test_constrained_run_saves_the_pareto_front(tmp_path) -> None:
    """A params-constrained random search: the history says so, and pareto.csv holds exactly the
    queried cells that no other queried cell beats on both value and params."""
    cfg = compose_train(["data=nb201_cifar100", "budget=40", "constraint.params_max=0.4"], tmp_path, "search")
    history, paths = search(cfg)
    assert [p.name for p in paths] == ["history.json", "history.csv", "regret.png", "pareto.csv", "pareto.png"]
    assert History.from_json(paths[0].read_text()).extra["constraint"] == {"params_max": 0.4}
    header, *rows = [line.split(",") for line in paths[3].read_text().splitlines()]
    assert header == ["query", "row", "arch", "value", "params"]
    front = sorted((float(r[4]), -float(r[3])) for r in rows)
    queried = {int(r[1]) for r in rows}
    assert queried <= set(history.rows.tolist()) and [c for c, _ in front] == sorted(float(r[4]) for r in rows)
    assert all(a[1] > b[1] for a, b in zip(front, front[1:])), "cheaper front cells must be less accurate"
    assert all(float(r[4]) <= 0.4 for r in rows) and paths[4].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, expected", [
    (["sampler=topk", "budget=15"], "budget=15 is too small for sampler topk: it needs at least 21 queries"),
    (["sampler=nar_tier", "ranker.name=mlp_ensemble"], "ranker mlp_ensemble has none"),
    (["sampler=nar_tier", "budget=7000"], "budget=7000; allowed: an integer in 1..6466"),
    (["constraint.params_max=0.08", "budget=200"], "budget=200; allowed: an integer in 1..127 (the non-isomorphic cells of nb201 within params_max=0.08)"),
    (["pareto=latency"], "nb201 has no latency cost on cifar10; available: params, flops"),
    (["data.fit_on=valid"], "data.fit_on=valid does not apply to a search: its ranker is fitted on what the search queries (data.target)"),
    (["sampler=nar_tier_paper", "ranker.name=gbdt"], "sampler nar_tier_paper keeps cells predicted in tier 1; ranker gbdt has no tiers"),
])
def test_errors_are_one_line(args, expected, tmp_path, capsys) -> None:
    """The entry point's error path (cli.guard) in-process: exit code 2 and one line naming the problem."""
    from nasrank import cli

    cfg = compose_train(["data=nb201_cifar10", *args], tmp_path, "search")
    with pytest.raises(SystemExit) as exit_info:
        cli.guard(search)(cfg)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and expected in err and err.strip().count("\n") == 0, err


def test_unknown_sampler_is_one_line() -> None:
    from nasrank.cli import check_group_overrides

    assert check_group_overrides(["sampler=bayesopt"]) == \
        "unknown sampler option 'bayesopt'; allowed: evolution, nar_tier, nar_tier_paper, predictor_evolution, random, topk"


@pytest.mark.slow
@pytest.mark.parametrize("args, expected", [
    (["sampler=bayesopt"], "unknown sampler option 'bayesopt'; allowed: evolution, nar_tier, nar_tier_paper, predictor_evolution, random, topk"),
    (["sampler=topk", "budget=15"], "budget=15 is too small for sampler topk: it needs at least 21 queries"),
])
def test_errors_are_one_line_subprocess(args, expected, tmp_path) -> None:
    proc = run_cli(tmp_path, "data=nb201_cifar10", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert not (tmp_path / "run").exists()  # a run that failed on bad input leaves no run dir
