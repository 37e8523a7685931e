"""A trained ranker as a product: the artifact every train.py run leaves, `nasrank.Ranker`, rank.py and
`data=custom`.  Everything trains on the embedded AnalogNAS table (NB201 cells), so no data dir is needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_train
from scipy.stats import kendalltau

from nasrank import Ranker
from nasrank.artifact import FILENAME
from nasrank.benchmarks.analognas import load_analognas
from nasrank.core import REPO_ROOT
from nasrank.metrics import ranking_metrics
from nasrank.training import ranker_of, train

TARGET = "cifar10/baseline_acc"
TINY = ["data.n_train=100", "data.n_val=40", "trainer.max_epochs=5", "data.batch_size=16", "logger=none", "callbacks=none",
        "+trainer.enable_progress_bar=false"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


@pytest.fixture(scope="module")
def analog():
    return load_analognas()


def cells(analog, n: int = 400, seed: int = 5) -> list[str]:
    rows = np.random.default_rng(seed).choice(len(analog), n, replace=False)
    return [analog.archs[i].to_str() for i in rows]


def score_in_subprocess(path: Path, archs: list[str], tmp_path: Path) -> np.ndarray:
    """Scores from a fresh interpreter that only loads the artifact (no table, no Hydra)."""
    (tmp_path / "archs.txt").write_text("\n".join(archs))
    code = ("import sys, numpy as np; from nasrank import Ranker; "
            "r = Ranker.load(sys.argv[1]); np.save(sys.argv[3], r.score(open(sys.argv[2]).read().split()))")
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "archs.txt"), str(tmp_path / "s.npy")],
                   check=True, env={**ENV, "NASRANK_DATA_DIR": str(tmp_path / "no_data")}, cwd=tmp_path)
    return np.load(tmp_path / "s.npy")


@pytest.mark.parametrize("overrides", [["model=nar"], ["model=renas_dgin"], ["model=renas", "model/encoder=flow"],
                                       ["model=nar", "ensemble=renas_dgin", "ensemble.trainer.renas_dgin.max_epochs=5"]],
                         ids=["nar", "renas_dgin", "renas_flow", "ensemble"])
def test_train_save_load_scores_identically(overrides, analog, tmp_path, one_thread):
    out = tmp_path / "run"
    cfg = compose_train([*overrides, *TINY, "test=false"], out)
    _, objs = train(cfg)
    archs = cells(analog)
    in_process = ranker_of(cfg, objs["datamodule"], objs["model"]).score(archs)
    # the artifact scores the rows exactly as the fitted model did on its own datamodule
    rows = [analog.index_of(a) for a in Ranker.load(out).archs(archs)]
    with torch.inference_mode():
        model_scores = objs["model"](objs["datamodule"].collate(rows)).double().numpy()
    np.testing.assert_array_equal(in_process, model_scores)
    np.testing.assert_array_equal(score_in_subprocess(out, archs, tmp_path), in_process)
    saved = torch.load(out / FILENAME, weights_only=True)
    assert saved["space"] == "nb201" and len(saved["members"]) == (2 if "ensemble=renas_dgin" in overrides else 1)
    assert (saved["ensemble"] is not None) == ("ensemble=renas_dgin" in overrides)
    # the scores rank the unseen cells: a broken artifact (wrong weights, shuffled encoding) could not
    truth = analog.target(TARGET)[rows]
    assert kendalltau(in_process, truth)[0] > 0.4


def test_weight_averaging_reaches_the_test_and_the_artifact(analog, tmp_path, one_thread):
    """With callbacks=ema the best checkpoint holds averaged weights beside the raw ones; the test must score
    the averaged ones, as the saved ranker does (reloading the checkpoint in trainer.test would restore the raw)."""
    out = tmp_path / "run"
    tiny = [o for o in TINY if o not in ("callbacks=none", "+trainer.enable_progress_bar=false")]
    ema = ["callbacks=ema", "callbacks.ema.decay=0.9", "~callbacks.progress_bar"]
    metrics, objs = train(compose_train(["model=renas_gin", *tiny, *ema], out))
    ckpt = torch.load(objs["trainer"].checkpoint_callback.best_model_path, weights_only=False)
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged)
    assert all(torch.equal(v, averaged[k]) for k, v in objs["model"].state_dict().items())
    dm = objs["datamodule"]
    test_rows = dm.split.test
    scores = Ranker.load(out).score([analog.archs[i].to_str() for i in test_rows])
    artifact = ranking_metrics(torch.from_numpy(scores), torch.from_numpy(dm.values[test_rows]))["ktau"]
    assert metrics["test/ktau"] == pytest.approx(artifact, abs=1e-4)  # float32 (test) vs float64 (artifact) ties


def test_fit_from_python_equals_train_py(analog, tmp_path, one_thread):
    overrides = ["model=renas_gin", *TINY, "seed=3"]
    subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={tmp_path / 'cli'}"], check=True, cwd=REPO_ROOT,
                   env=ENV, capture_output=True)
    from_python = Ranker.fit(*overrides[:2], output_dir=tmp_path / "py", **{k.replace(".", "__"): v for k, v in
                                                                           (o.split("=") for o in overrides[2:])})
    archs = cells(analog, 300)
    np.testing.assert_allclose(from_python.score(archs), Ranker.load(tmp_path / "cli").score(archs), rtol=0, atol=1e-6)
    assert (tmp_path / "py" / FILENAME).is_file() and (tmp_path / "py" / "metrics.json").is_file()


def test_fit_on_measurements_then_rank_the_rest(analog, tmp_path, one_thread):
    """data=custom from Python and from the command line: the measured cells train a ranker that ranks
    the unmeasured rest about as well as the built-in table does with as many cells."""
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(analog))
    measured, rest = rows[:300], rows[300:2300]
    values = analog.target(TARGET)
    ranker = Ranker.fit("model=renas_gin", "logger=none", "callbacks=none", archs=[analog.archs[i] for i in measured],
                        accuracies=values[measured], space="nb201", output_dir=tmp_path / "fit", trainer__max_epochs=30)
    (tmp_path / "rest.txt").write_text("# unmeasured cells\n" + "\n".join(analog.archs[i].to_str() for i in rest) + "\n")
    proc = subprocess.run([sys.executable, "rank.py", f"ranker={tmp_path / 'fit'}", f"archs={tmp_path / 'rest.txt'}", "k=5",
                           f"hydra.run.dir={tmp_path / 'rank'}"], cwd=REPO_ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = np.genfromtxt(tmp_path / "rank" / "ranking.csv", delimiter=",", names=True, dtype=None, encoding=None)
    assert len(table) == len(rest) and list(table["rank"][:3]) == [1, 2, 3]
    assert np.all(np.diff(table["score"]) <= 0)
    assert table["arch"][0] in proc.stdout
    tau = kendalltau(table["score"], values[[analog.index_of(analog.space.from_str(a)) for a in table["arch"]]])[0]
    np.testing.assert_allclose(table["score"], ranker.score(table["arch"]), rtol=0, atol=1e-5)
    # the same model on the built-in table with as many training cells
    builtin = train(compose_train(["model=renas_gin", "logger=none", "callbacks=none", "data.n_train=210", "data.n_val=45",
                                   "trainer.max_epochs=30"], tmp_path / "builtin"))[0]["test/ktau"]
    assert tau > 0.45 and abs(tau - builtin) < 0.12, (tau, builtin)


def test_top_and_score_space(analog, tmp_path, one_thread):
    train(compose_train(["model=renas_gin", *TINY], tmp_path))
    ranker = Ranker.load(tmp_path)
    archs, scores = ranker.score_space()
    assert len(archs) == 15625 and scores.shape == (15625,)
    best = ranker.top("space", k=3)
    assert [s for _, s in best] == sorted(scores, reverse=True)[:3]
    assert [a for a, _ in best] == [archs[i].to_str() for i in np.argsort(-scores, kind="stable")[:3]]
    # a cell's score does not depend on the other cells scored with it (batched kernels may round differently)
    few = ranker.top(archs[:10], k=10)
    np.testing.assert_allclose(sorted((s for _, s in few), reverse=True), sorted(scores[:10], reverse=True), rtol=0, atol=1e-5)
    assert {a for a, _ in few} == {a.to_str() for a in archs[:10]}
    copy = ranker.save(tmp_path / "copy.pt")
    np.testing.assert_array_equal(Ranker.load(copy).score(archs[:50]), ranker.score(archs[:50]))


def test_readme_python_example_runs(tmp_path, one_thread, monkeypatch):
    """The README's "Use a trained ranker" snippet, run as written after a train.py run."""
    readme = (REPO_ROOT / "README.md").read_text()
    snippet = re.search(r"## Use a trained ranker.*?```python\n(.*?)```", readme, re.S).group(1)
    train(compose_train(["model=renas_gin", *TINY], tmp_path / "outputs" / "train" / "runs" / "2026-01-01_00-00-00"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - the project's own README
    assert len(namespace["best"]) == 5 and namespace["scores"].shape == (2,)


@pytest.mark.parametrize("overrides", [["model=regressor"], ["model=regressor", "model/encoder=mlp"], ["model=renas"],
                                       ["model=renas", "model.tensors=[renas_edge]"],
                                       ["model=nar_paper_nb201", "model.encoder.hidden=16", "model.encoder.layers=1",
                                        "model.decoder_layers=1", "model.tier_hidden=16", "model.score_hidden=16"],
                                       ["model=nar", "+model/encoder@model.extra_encoders.gin=gin"],
                                       ["model=renas_gin", "self_training=pseudo_labels", "self_training.count=50",
                                        "self_training.teacher_epochs=1", "self_training.max_epochs=1"]],
                         ids=["regressor", "mlp", "renas", "renas_edge", "nar_paper_nb201", "nar_mixed", "self_training"])
def test_every_model_kind_round_trips(overrides, analog, tmp_path, one_thread):
    _, objs = train(compose_train([*overrides, *TINY[:2], "trainer.max_epochs=1", *TINY[4:], "test=false"], tmp_path))
    rows = objs["datamodule"].split.test[:300]
    with torch.inference_mode():
        expected = objs["model"].eval()(objs["datamodule"].collate(rows)).double().numpy()
    np.testing.assert_array_equal(Ranker.load(tmp_path).score([analog.archs[i] for i in rows]), expected)


def test_search_saves_and_reuses_its_ranker(tmp_path, one_thread):
    """search.py save_ranker=true leaves a ranker.pt; a second search uses it as is (ranker.epochs=0)."""
    from nasrank.core import NasrankError
    from nasrank.search.runner import search

    base = ["data=analognas_cifar10", "sampler=topk", "model=renas_gin", "budget=30", "sampler.n_init=20", "ranker.epochs=2"]
    history, paths = search(compose_train([*base, "save_ranker=true"], tmp_path / "a", "search"))
    assert tmp_path / "a" / FILENAME in paths
    again, _ = search(compose_train([*base, f"ranker.checkpoint={tmp_path / 'a'}", "ranker.epochs=0"], tmp_path / "b", "search"))
    assert again.extra["ranker"].startswith("saved:") and len(again.rows) == 30
    with pytest.raises(NasrankError, match="table baselines are not saveable"):
        search(compose_train([*base, "ranker.name=gbdt", "save_ranker=true"], tmp_path / "c", "search"))
