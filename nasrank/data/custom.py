"""`data=custom`: the labelled datamodule over a user's own measurements CSV (`nasrank.benchmarks.custom`)."""

from __future__ import annotations

from pathlib import Path

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.custom import load_custom_csv
from nasrank.data.datamodule import ArchRankDataModule


def custom_datamodule(path: str | Path | None = None, space: str = "nb201", arch_column: str = "arch",
                      target_column: str = "accuracy", duplicates: str = "error", benchmark: Benchmark | None = None,
                      **kwargs) -> ArchRankDataModule:
    """An `ArchRankDataModule` over the CSV at `path` (or over `benchmark`, already read: ensemble members
    share the run's table); the other arguments are `ArchRankDataModule`'s."""
    if benchmark is None:
        benchmark = load_custom_csv(path, space, arch_column, target_column, duplicates)
    return ArchRankDataModule(benchmark, **kwargs)
