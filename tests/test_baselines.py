"""Table baselines (`nasrank.models.baselines`), the ranking benchmark script and its report.

Real data: AnalogNAS-Bench (NB201 cells, embedded in its PyPI package), so nothing here needs the
shared data folder.  The benchmark scripts are loaded from `benchmarks/` by path (not a package).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script, skip_without_data
from scipy.stats import kendalltau

from nasrank.benchmarks.analognas import load_analognas
from nasrank.core import ConfigError, DataNotFoundError, REPO_ROOT
from nasrank.encodings.onehot import onehot_features
from nasrank.models.baselines import GBDT, MLPEnsemble

TARGET = "cifar10/baseline_acc"


ranking = load_script("ranking")
make_report = load_script("make_report")


@pytest.fixture(scope="module")
def analog(tmp_path_factory: pytest.TempPathFactory):
    try:
        return load_analognas(cache_dir=tmp_path_factory.mktemp("cache"))
    except DataNotFoundError as exc:  # the analog-nasbench package is not installed
        skip_without_data(str(exc))


@pytest.fixture(scope="module")
def subset(analog) -> tuple[np.ndarray, np.ndarray]:
    """A real 200-cell subset: 100 training and 100 test rows."""
    rows = np.random.default_rng(0).choice(len(analog), 200, replace=False)
    return rows[:100], rows[100:]


def ktau(model, analog, test: np.ndarray) -> float:
    return kendalltau(model.score(test), analog.target(TARGET)[test]).statistic


def test_onehot_features_are_the_30_nb201_edge_op_dims(analog) -> None:
    x = onehot_features(analog)
    assert x.shape == (len(analog), 30) and x.dtype == np.float32
    assert (x.sum(1) == 6).all()  # one op per edge
    first = analog.archs[0].op_indices
    assert x[0].reshape(6, 5).argmax(1).tolist() == list(first)


def test_mlp_ensemble_ranks_far_better_than_random(analog, subset) -> None:
    train, test = subset
    model = MLPEnsemble(analog, TARGET, seed=0, epochs=50).fit(train)
    assert ktau(model, analog, test) > 0.3
    # a row's score does not depend on which other rows are scored
    np.testing.assert_allclose(model.score()[test], model.score(test), rtol=1e-5, atol=1e-6)


def test_mlp_ensemble_is_reproducible(analog, subset) -> None:
    train, test = subset
    a = MLPEnsemble(analog, TARGET, seed=3, epochs=20, members=2).fit(train).score(test)
    b = MLPEnsemble(analog, TARGET, seed=3, epochs=20, members=2).fit(train).score(test)
    c = MLPEnsemble(analog, TARGET, seed=4, epochs=20, members=2).fit(train).score(test)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_gbdt_fits_and_scores(analog, subset) -> None:
    pytest.importorskip("lightgbm")
    train, test = subset
    model = GBDT(analog, TARGET, seed=0, n_estimators=200).fit(train)
    scores = model.score(test)
    assert scores.shape == (100,) and np.isfinite(scores).all()
    assert ktau(model, analog, test) > 0.2


def test_bad_rows_and_unfitted_models_are_one_line_errors(analog) -> None:
    model = MLPEnsemble(analog, TARGET, epochs=1)
    with pytest.raises(ConfigError, match="before fit"):
        model.score([0, 1])
    with pytest.raises(ConfigError, match="row indices in 0..15624"):
        model.fit([0, len(analog)])
    with pytest.raises(ConfigError, match="row indices"):
        model.fit([0.5, 1.5])
    with pytest.raises(ConfigError, match="at least 2 rows"):
        model.fit([7])
    with pytest.raises(ConfigError, match="epochs"):
        MLPEnsemble(analog, TARGET, epochs=0)


def test_method_names_map_to_hydra_overrides() -> None:
    assert ranking.method_overrides("gbdt") is None
    assert ranking.method_overrides("gin_regressor") == ["model=regressor"]
    assert ranking.method_overrides("gin+listnet") == ["model=regressor", "loss=listnet"]
    assert ranking.method_overrides("gin_regressor+listnet") == ["model=regressor", "loss=listnet"]
    assert ranking.method_overrides("renas") == ["model=renas"]
    assert ranking.method_overrides("nar_gin") == ["model=nar", "model/encoder=gin"]
    assert ranking.method_overrides("best_nb201") == ["experiment=best_nb201"]  # a recipe by its name
    assert ranking.method_overrides("nar_recipe", "nb201_cifar100") == ["experiment=nar_nb201"]
    assert ranking.method_overrides("nar_paper_nb101", "nb101_cifar10") == ["experiment=nar_paper_nb101"]
    with pytest.raises(ConfigError, match="no recipe for 'nbgraph_cora'"):
        ranking.method_overrides("nar_recipe", "nbgraph_cora")
    with pytest.raises(ConfigError, match="bad method name"):
        ranking.method_overrides("gin+")


def test_grids_filter_by_options() -> None:
    args = ranking.parse(["--grid", "nar", "--methods", "gbdt", "--datasets", "nb101_cifar10", "--seeds", "0", "1"])
    rows = ranking.select_rows(args)
    assert [(r.n_train, r.n_val, r.seed) for r in rows] == [(424, 256, 0), (424, 256, 1), (4236, 256, 0), (4236, 256, 1)]
    quick = ranking.select_rows(ranking.parse(["--quick"]))
    assert {r.benchmark for r in quick} == {"nb201_cifar10"} and {r.n_train for r in quick} == {156, 1563}
    loss_methods = {r.method for r in ranking.select_rows(ranking.parse(["--grid", "losses"]))}
    assert {f"gin+{p.stem}" for p in (REPO_ROOT / "conf" / "loss").glob("*.yaml")} <= loss_methods
    custom = ranking.select_rows(ranking.parse(["--methods", "gbdt", "--sizes", "100", "300", "--n-val", "10"]))
    assert [(r.n_train, r.n_val) for r in custom] == [(100, 10), (300, 10)]
    with pytest.raises(ConfigError, match="--methods gbdt not in grid 'baseline'; allowed: gin_regressor"):
        ranking.select_rows(ranking.parse(["--grid", "baseline", "--methods", "gbdt"]))
    with pytest.raises(ConfigError, match="--sizes 999 not in grid"):
        ranking.select_rows(ranking.parse(["--grid", "nar", "--sizes", "156", "999"]))


def test_rows_resume_and_failures_are_recorded(tmp_path: Path, analog) -> None:
    pytest.importorskip("lightgbm")
    out = tmp_path / "r.jsonl"
    common = ["--datasets", "analognas_cifar10", "--sizes", "80", "--n-val", "20", "--threads", "1", "--out", str(out)]
    # the CLI forks one child per row; a test process that already ran torch ops must not fork (libgomp)
    cli = [sys.executable, str(REPO_ROOT / "benchmarks" / "ranking.py"), "--methods", "gbdt", "no_such_model", *common]
    assert subprocess.run(cli, capture_output=True, timeout=300).returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ok, failed = rows
    assert ok["method"] == "gbdt" and ok["target"] == TARGET and ok["n_test"] == len(analog) - 100
    assert 0.1 < ok["test_ktau"] <= 1 and ok["peak_rss_mb"] >= ok["rss_start_mb"] > 0 and ok["score_rows"] == len(analog)
    assert ok["command"].startswith("python benchmarks/ranking.py --methods gbdt no_such_model")
    assert "no_such_model" in failed["error"] and "test_ktau" not in failed
    ranking.main(["--methods", "gbdt", "no_such_model", "--in-process", *common])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["method"] for r in rows] == ["gbdt", "no_such_model", "no_such_model"]  # done row skipped, failure retried


def test_rows_go_to_their_benchmarks_file_and_resume_from_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(ranking, "RESULTS", tmp_path)
    done = ranking.Row("gbdt", "nb201_cifar100", 80, 20, 0)
    # a row stored under another benchmark's file is not this benchmark's: only its own file counts
    for benchmark in ("nb201_cifar100", "nb201_cifar10"):
        ranking.append(ranking.results_file(benchmark, None), {**asdict(done), "overrides": [], "test_ktau": 0.5})
    assert ranking.results_file("nb201_cifar100", None) == tmp_path / "ranking_nb201_cifar100.jsonl"
    assert ranking.results_file("nb201_cifar100", tmp_path / "x.jsonl") == tmp_path / "x.jsonl"
    args = ["--methods", "gbdt", "--datasets", "nb201_cifar100", "nb201_imagenet16", "--sizes", "80", "--n-val", "20", "--seeds", "0", "--list"]
    assert ranking.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 rows, 1 already in ") and "ranking_nb201_imagenet16.jsonl" in out.splitlines()[0]
    assert "nb201_imagenet16" in out.splitlines()[1] and len(out.splitlines()) == 2


def write_rows(path: Path) -> None:
    base = dict(benchmark="nb201_cifar10", target="cifar10/test_acc", n_val=64, fit_s=1.0, score_s=0.5, peak_rss_mb=400.0,
                command="python benchmarks/ranking.py --grid baseline", machine="x86_64, 2 cores", threads=1, load_avg=1.0)
    rows = [dict(base, method=m, n_train=n, seed=s, test_ktau=k)
            for m, n, s, k in [("gbdt", 78, 0, 0.5), ("gbdt", 78, 1, 0.7), ("gbdt", 156, 0, 0.6),
                               ("mlp_ensemble", 78, 0, 0.8), ("mlp_ensemble", 156, 0, 0.9), ("mlp_ensemble", 156, 1, 0.7)]]
    rows += [dict(base, method="nar", n_train=78, seed=s, test_ktau=k, val_ktau=k, transfer={"cifar100/test_acc": k - 0.1})
             for s, k in [(0, 0.66), (1, 0.68)]]
    probe = dict(base, method="renas", benchmark="nb101_cifar10", n_train=424, n_val=256, overrides=["data.batch_size=64"])
    rows += [dict(probe, overrides=[], seed=s, test_ktau=0.61, val_ktau=0.6) for s in range(3)] + [dict(probe, seed=0, test_ktau=0.5, val_ktau=0.9)]
    rows.append(dict(method="renas", benchmark="nb201_cifar10", n_train=78, n_val=64, seed=0, error="ConfigError: unknown model option 'renas'"))
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")


def test_make_report_renders_tables_sections_and_failures(tmp_path: Path) -> None:
    write_rows(tmp_path / "ranking.jsonl")
    (tmp_path / "zz_search.md").write_text("## Search section\n\nfrom another script\n")
    out = tmp_path / "BENCHMARKS.md"
    assert make_report.main(["--results", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "python benchmarks/ranking.py --grid baseline" in text and "python benchmarks/make_report.py" in text
    assert text.index("## Which ranker to use") < text.index("## Ranking quality") < text.index("## Appendix: commands")
    # the summary: the ranker chosen on validation beside the two table baselines, fit seconds of the choice
    assert "| NB201 CIFAR-10 | 78 | `model=nar` | 0.670 ± 0.014 (2) | 0.800 (1) | 0.600 ± 0.141 (2) | -0.130 | 1 |" in text
    assert "| NB101 CIFAR-10 | 424 | `model=renas` | 0.610 ± 0.000 (3) | – | – | – | 1 |" in text
    assert "### nb201_cifar10 — cifar10/test_acc" in text
    assert ("Machine: x86_64, 2 cores, 1 thread(s) per row, accelerator cpu.  Median of the 1-min load average (timings are "
            "only comparable at similar load) over the 12 rows that record it: 1.0.") in " ".join(text.split("\n"))
    # NAR against its target (0.64 at n=78) and the best baseline with ≥ 3 seeds (none here)
    assert "| nb201_cifar10 | 78 | nar | 0.670 (2) | 0.64 | yes | – | – | – |" in text
    # ReNAS: a one-seed probe with a higher val KTau is shown (by name) but not chosen over the 3-seed default
    assert "| renas, batch 64 | 0.500 (1) |" in text
    assert "| nb101_cifar10 | 424 | renas | 0.610 (3) | 0.66 | no | – | – | – |" in text
    assert "cross-dataset" not in text.lower()  # transfer rows are those at n_train 1000 only
    assert "| mlp_ensemble | 0.800 (1) | 0.800 ± 0.141 (2) | 1.0 | 0.50 | 400 |" in text
    assert "| gbdt | 0.600 ± 0.141 (2) | 0.600 (1) |" in text
    assert text.index("| mlp_ensemble |") < text.index("| gbdt |")  # best at the largest size first
    assert "`renas` on nb201_cifar10: ConfigError: unknown model option 'renas'" in text
    assert "## Search section\n\nfrom another script" in text and "`ranking.jsonl`:" in text


def test_make_report_refuses_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert make_report.main(["--results", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_recorded_commands_carry_no_machine_paths() -> None:
    command_line = load_script("command_line")
    inside = str(REPO_ROOT / "benchmarks" / "results" / "r.jsonl")
    assert command_line.recorded_command("benchmarks/ranking.py", ["--out", "/elsewhere/out/r.jsonl", "--methods", "nar"]) == \
        "python benchmarks/ranking.py --out r.jsonl --methods nar"
    assert command_line.recorded_command("benchmarks/ranking.py", ["--out", inside]) == \
        "python benchmarks/ranking.py --out benchmarks/results/r.jsonl"
