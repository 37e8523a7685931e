"""Loaders of the NB201 shared table and the two PyPI benchmarks, on the real data."""

import shutil

import numpy as np
import pytest
from conftest import NB201_CSV, needs_nb201
from scipy.stats import spearmanr

from nasrank.benchmarks.analognas import load_analognas
from nasrank.benchmarks.nb201_table import load_nb201_table
from nasrank.benchmarks.nbgraph import DATASETS, load_nbgraph
from nasrank.core import ConfigError, CorruptDataError, DataNotFoundError, InvalidArchError
from nasrank.spaces.nb201 import SPACE


@needs_nb201
def test_nb201_table_best_values_and_order(tmp_path):
    bench = load_nb201_table(cache_dir=tmp_path)
    assert len(bench) == 15625
    best = {k: round(float(v.max()), 3) for k, v in bench.targets.items()}
    assert best == {"cifar10/test_acc": 94.373, "cifar100/test_acc": 73.513, "imagenet16/test_acc": 47.311}
    first = SPACE.from_str("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|")
    assert bench.index_of(first) == 0
    assert bench.archs[1].to_str().startswith("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|")


@needs_nb201
def test_nb201_cached_load_is_identical(tmp_path):
    """Its speed is a row of benchmarks/speed.py (nb201_warm_load_s), not a bound here."""
    cold = load_nb201_table(cache_dir=tmp_path)
    warm = load_nb201_table(cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert warm.archs == cold.archs
    assert all(np.array_equal(warm.targets[k], cold.targets[k]) for k in cold.targets)


@needs_nb201
def test_nb201_bad_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="NB201 table not found at .*NASRANK_DATA_DIR"):
        load_nb201_table(data_dir=tmp_path / "nowhere", cache_dir=tmp_path)
    lines = NB201_CSV.read_text().splitlines()
    # the default file with the wrong checksum (a truncated download) is refused, and no cache is written
    data_dir = tmp_path / "data"
    (data_dir / "nb201").mkdir(parents=True)
    (data_dir / "nb201" / NB201_CSV.name).write_text("\n".join(lines[:100]) + "\n")
    with pytest.raises(CorruptDataError, match="sha256"):
        load_nb201_table(data_dir=data_dir, cache_dir=tmp_path / "c1")
    assert not list((tmp_path / "c1").glob("*.npz"))
    missing_col = tmp_path / "missing.csv"
    missing_col.write_text("\n".join(line.rsplit(",", 3)[0] + "," + line.rsplit(",", 1)[1] for line in lines[:5]))
    with pytest.raises(CorruptDataError, match="lacks column"):
        load_nb201_table(path=missing_col, cache_dir=tmp_path)
    bad_arch = tmp_path / "bad.csv"
    bad_arch.write_text(lines[0] + "\n" + lines[1].replace("avg_pool_3x3~0", "max_pool~0") + "\n")
    with pytest.raises(CorruptDataError, match="max_pool"):
        load_nb201_table(path=bad_arch, cache_dir=tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CorruptDataError, match="empty"):
        load_nb201_table(path=empty, cache_dir=tmp_path)


@needs_nb201
def test_analognas_mapping_matches_nats(tmp_path):
    analog = load_analognas(cache_dir=tmp_path)
    nats = load_nb201_table(cache_dir=tmp_path)
    assert len(analog) == 15625 and len(set(analog.archs)) == 15625
    rows = [nats.index_of(a) for a in analog.archs]
    rho = spearmanr(analog.target("cifar10/baseline_acc"), nats.target("cifar10/test_acc")[rows]).statistic
    assert rho >= 0.99
    best = int(np.argmax(analog.target("cifar10/baseline_acc")))
    assert round(float(analog.target("cifar10/baseline_acc")[best]), 4) == 94.0664


def test_analognas_targets_known_spearman(tmp_path):
    bench = load_analognas(cache_dir=tmp_path)
    base = bench.target("cifar10/baseline_acc")
    for kind, expected in (("ptq", 0.995), ("qat", 0.942), ("analog", 0.827), ("noisy", 0.486)):
        assert round(spearmanr(base, bench.target(f"cifar10/{kind}_acc")).statistic, 3) == expected
    assert "cifar10/analog_drift_86400" in bench.targets
    with pytest.raises(ConfigError, match="allowed: .*baseline_acc"):
        bench.target("cifar10/digital")


@pytest.mark.parametrize("dataset", DATASETS)
def test_nbgraph_all_datasets(dataset, tmp_path):
    bench = load_nbgraph(dataset, cache_dir=tmp_path)
    assert len(bench) == (2021 if dataset == "proteins" else 26206)
    acc = bench.target(f"{dataset}/test_acc")
    assert 0 < acc.min() and acc.max() <= 100 and np.isfinite(bench.cost(f"{dataset}/latency")).all()
    if dataset == "proteins":
        used = {op for a in bench.archs for op in a.ops}
        assert used <= {"gcn", "sage", "arma", "fc", "skip"}


def test_nbgraph_errors(tmp_path):
    with pytest.raises(ConfigError, match="allowed: cora"):
        load_nbgraph("coraa")
    with pytest.raises(DataNotFoundError, match="not found"):
        load_nbgraph("cora", path=tmp_path / "x.bench")


def test_index_of_unknown_arch(tmp_path):
    bench = load_nbgraph("proteins", cache_dir=tmp_path)
    from nasrank.spaces.nbgraph import NBGraphArch

    with pytest.raises(InvalidArchError, match="not in this benchmark"):
        bench.index_of(NBGraphArch(0, ("gat",) * 4))


def test_truncated_package_file_is_refused(tmp_path):
    from nasrank.benchmarks.nbgraph import default_path

    src = default_path("proteins")
    half = tmp_path / "proteins.bench"
    half.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(CorruptDataError, match="truncated or corrupt"):
        load_nbgraph("proteins", path=half, cache_dir=tmp_path)
    copy = tmp_path / "ok.bench"
    shutil.copy(src, copy)
    assert len(load_nbgraph("proteins", path=copy, cache_dir=tmp_path)) == 2021
