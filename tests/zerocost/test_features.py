"""The zero-cost table: resumable chunked cache, lookup by cell, the encoder option, the one-line errors."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from nasrank.core import ConfigError, cached_arrays
from nasrank.encodings.archs import EncodedArchs, EncodingSpec
from nasrank.encodings.graph import dense_graphs
from nasrank.models import encoders
from nasrank.models.flow import FlowEncoder
from nasrank.models.transformer import TokenTransformer
from nasrank.spaces import get_space
from nasrank.zerocost import features
from nasrank.zerocost.features import FEATURES, ZeroCostRecipe, chunked_scores, score_cells, space_table, standardized

CELLS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
         "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"]
RECIPE = ZeroCostRecipe(batch_size=8)


class Killed(Exception):
    """Stands in for the process dying between two chunks."""


def _fake_scores(job) -> np.ndarray:
    """Distinct values per cell, so a chunk read back in the wrong place would show."""
    return np.array([[CELLS.index(c)] * 5 for c in job[1]], dtype=np.float64)


def test_chunks_survive_a_kill_and_resume(tmp_path):
    calls: list[list[str]] = []

    def dies_on_second(job):
        if calls:
            raise Killed
        calls.append(job[1])
        return _fake_scores(job)

    with pytest.raises(Killed):
        chunked_scores("nb201", CELLS, RECIPE, tmp_path, chunk_size=1, scorer=dies_on_second)
    folder = tmp_path / "zerocost-nb201-chunks"
    assert len(list(folder.glob("chunk-*.npz"))) == 1 and not list(folder.glob(".*.tmp"))

    resumed: list[list[str]] = []
    scores = chunked_scores("nb201", CELLS, RECIPE, tmp_path, chunk_size=1,
                            scorer=lambda job: resumed.append(job[1]) or _fake_scores(job))
    assert resumed == [[CELLS[1]], [CELLS[2]]]  # the finished chunk is read, not recomputed
    np.testing.assert_array_equal(scores[:, 0], [0, 1, 2])


def test_real_cell_scores_are_seeded(one_thread, monkeypatch):
    """The same cell and recipe give the same values in any run (the cache relies on it); a random batch
    stands in for the digits, whose loading costs seconds."""
    gen = torch.Generator().manual_seed(0)
    batch = torch.randn(8, 3, 8, 8, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    monkeypatch.setattr(features, "image_batch", lambda recipe: batch)
    first, again = (score_cells("nb201", CELLS[:1], RECIPE) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert first[0, FEATURES.index("synflow")] > 0  # this cell reaches the output


def test_no_table_is_one_line_naming_the_command(tmp_path):
    with pytest.raises(ConfigError, match=r"no zero-cost features of space 'nb201'.*python -m nasrank.data zerocost nb201") as err:
        space_table("nb201", tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="space 'nb101' are not computed here; allowed: nb201"):
        space_table("nb101", tmp_path)
    with pytest.raises(ConfigError, match="allowed: nb201"):
        EncodingSpec("nbgraph", zero_cost=True)


def _plant(cache_dir: Path) -> np.ndarray:
    """A stand-in table (random values, NaN/-inf where dead networks put them) in `cache_dir`."""
    raw = np.random.default_rng(0).lognormal(size=(15625, len(FEATURES)))
    raw[0, FEATURES.index("jacob_cov")], raw[0, FEATURES.index("naswot")] = np.nan, -np.inf
    return cached_arrays("zerocost-nb201", [], lambda: {"raw": raw, "representative": np.arange(15625)}, cache_dir,
                         features._table_key("nb201", ZeroCostRecipe()))["raw"]


@pytest.fixture
def planted_table(tmp_path, monkeypatch) -> np.ndarray:
    """The stand-in table in a fresh cache dir."""
    monkeypatch.setenv("NASRANK_CACHE_DIR", str(tmp_path))
    return _plant(tmp_path)


def test_standardized_features_are_space_z_scores_with_dead_networks_worst(planted_table):
    z = standardized(planted_table)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    for name in ("jacob_cov", "naswot"):
        assert z[0, FEATURES.index(name)] == z[:, FEATURES.index(name)].min()


def _encoded(space_cells: list[int]) -> EncodedArchs:
    space = get_space("nb201")
    archs = [space.from_index(i) for i in space_cells]
    return EncodedArchs(dense_graphs(archs, space), EncodingSpec("nb201", tensors=("nar",), zero_cost=True))


def test_batches_carry_each_cells_features(planted_table):
    rows = [0, 7, 15624]
    batch = _encoded(rows).collate(np.arange(3))
    np.testing.assert_allclose(batch.zc.numpy(), standardized(planted_table)[rows])
    assert _encoded(rows).data_info(5)["zero_cost_dim"] == len(FEATURES)


@pytest.mark.parametrize("factory, width", [(partial(encoders.GINEncoder, hidden=8, layers=1), 16),
                                            (partial(FlowEncoder, hidden=8, layers=1, heads=2), 16)])
def test_graph_encoders_append_the_features(planted_table, factory, width):
    enc = _encoded([1, 2, 3])
    model = encoders.build(factory, enc.data_info(5))
    out = model(enc.collate(np.arange(3)))
    assert model.out_dim == width + len(FEATURES) and out.shape == (3, model.out_dim)
    torch.testing.assert_close(out[:, width:], enc.collate(np.arange(3)).zc)


def test_token_encoders_get_one_more_token(planted_table):
    enc = _encoded([1, 2, 3])
    info = enc.data_info(5)
    plain = encoders.build(partial(TokenTransformer, hidden=8, layers=1, heads=2), {**info, "zero_cost_dim": 0})
    model = encoders.build(partial(TokenTransformer, hidden=8, layers=1, heads=2), info)
    h, pad = model(enc.collate(np.arange(3)))
    assert model.num_tokens == plain.num_tokens + 1 and h.shape == (3, model.num_tokens, 8)
    assert pad.shape == (3, model.num_tokens) and not pad[:, -1].any()


def test_zero_cost_baselines_score_by_the_space_table(planted_table):
    from nasrank.benchmarks.benchmark import Benchmark
    from nasrank.models.baselines import BASELINES

    space = get_space("nb201")
    rows = [5, 0, 15624, 321]
    bench = Benchmark("tiny", space, [space.from_index(i) for i in rows], {"cifar10/test_acc": np.arange(4.0)})
    z = standardized(planted_table)
    synflow = BASELINES["zc_synflow"](bench, "cifar10/test_acc").fit([0, 1])
    np.testing.assert_allclose(synflow.score(), z[rows, FEATURES.index("synflow")])
    ranks = BASELINES["zc_rank_sum"](bench, "cifar10/test_acc").fit([0, 1]).score()
    assert np.argsort(ranks).tolist() == np.argsort(np.argsort(z, 0).sum(1)[rows]).tolist()
    with pytest.raises(ConfigError, match="allowed: synflow"):
        BASELINES["zc_synflow"].func(bench, "cifar10/test_acc", feature="zen")


def test_nar_reads_them_and_its_artifact_scores_alike(tmp_path, one_thread):
    """NAR (token encoder) with zero-cost inputs on the embedded AnalogNAS cells (NB201): the saved ranker
    reloads the features and scores any cell exactly as the fitted model did.  The stand-in table goes
    into the session's cache, where the AnalogNAS table is parsed once for every test."""
    from conftest import compose_train

    from nasrank import Ranker
    from nasrank.training import train

    _plant(Path(os.environ["NASRANK_CACHE_DIR"]))
    overrides = ["model=nar", "model.encoder.hidden=16", "model.encoder.layers=1", "model.decoder_layers=1",
                 "model.tier_hidden=16", "model.score_hidden=16", "data.zero_cost=true",
                 "data.n_train=40", "data.n_val=20", "trainer.max_epochs=1", "data.batch_size=16", "logger=none",
                 "callbacks=none", "+trainer.enable_progress_bar=false", "test=false"]
    _, objs = train(compose_train(overrides, tmp_path / "run"))
    dm, model = objs["datamodule"], objs["model"]
    assert dm.data_info()["zero_cost_dim"] == len(FEATURES) and model.nets[0].encoder.num_tokens == 9
    rows = dm.split.test[:50]
    with torch.inference_mode():
        expected = model.eval()(dm.collate(rows)).double().numpy()
    scores = Ranker.load(tmp_path / "run").score([dm.benchmark.archs[i] for i in rows])
    np.testing.assert_array_equal(scores, expected)


def test_pretraining_can_predict_each_cells_features(planted_table):
    from nasrank.pretrain import pretext_targets

    rows = [15624, 3, 0]
    space = get_space("nb201")
    graphs = dense_graphs([space.from_index(i) for i in rows], space)
    np.testing.assert_allclose(pretext_targets(("zero_cost",), graphs, space, "cifar10"), standardized(planted_table)[rows])


def test_pretraining_without_the_table_names_the_option(tmp_path, monkeypatch):
    from nasrank.pretrain import pretext_targets

    monkeypatch.setenv("NASRANK_CACHE_DIR", str(tmp_path))
    space = get_space("nb201")
    with pytest.raises(ConfigError, match="nasrank.data zerocost nb201.*or drop zero_cost from pretrain.targets"):
        pretext_targets(("zero_cost",), dense_graphs([space.from_index(1)], space), space, "cifar10")
