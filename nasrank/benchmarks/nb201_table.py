"""NB201 / NATS-Bench TSS from the shared CSV table (200-epoch test accuracy on three datasets)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.cache import cached_arrays
from nasrank.benchmarks.paths import require_file, resolve_data_dir, verify_sha256
from nasrank.errors import CorruptDataError, InvalidArchError
from nasrank.spaces.nb201 import OPS, SPACE, NB201Arch

RELPATH = "nb201/nats_tss_200ep_test_acc.csv"
SHA256 = "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e"
COLUMNS = {
    "cifar10/test_acc": "CIFAR10TestAccuracy200Epochs",
    "cifar100/test_acc": "CIFAR100TestAccuracy200Epochs",
    "imagenet16/test_acc": "ImageNetTestAccuracy200Epochs",
}
HOW_TO_GET = "it is the NATS-Bench TSS table of ../shared/data (nats_bench.csv of the public repo v-tao/nats-bench-landscape)"


def _parse(path: Path, checksum: str | None) -> dict[str, np.ndarray]:
    if checksum:
        verify_sha256(path, checksum, "NB201 table")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in [*COLUMNS.values(), "ArchitectureString"] if c not in (reader.fieldnames or [])]
        if missing:
            raise CorruptDataError(f"NB201 table {path} lacks column(s) {', '.join(missing)}; expected {', '.join([*COLUMNS.values(), 'ArchitectureString'])}")
        rows = list(reader)
    if not rows:
        raise CorruptDataError(f"NB201 table {path} has no rows")
    try:
        ops = np.array([SPACE.from_str(r["ArchitectureString"]).op_indices for r in rows], dtype=np.int8)
        values = {k: np.array([float(r[c]) for r in rows], dtype=np.float64) for k, c in COLUMNS.items()}
    except (InvalidArchError, ValueError, TypeError) as err:
        raise CorruptDataError(f"NB201 table {path}: bad row ({err})") from None
    for key, arr in values.items():
        if not np.isfinite(arr).all():
            raise CorruptDataError(f"NB201 table {path}: column {COLUMNS[key]} has NaN/inf values")
    return {"ops": ops, **{k.replace("/", "__"): v for k, v in values.items()}}


def load_nb201_table(data_dir: str | Path | None = None, cache_dir: Path | None = None, path: str | Path | None = None) -> Benchmark:
    """All 15,625 NB201 cells in NATS index order with test accuracy (%) on cifar10/cifar100/imagenet16.

    `path` overrides the file (a copy with another checksum is accepted only then: the published
    checksum is enforced for the default file, where a mismatch means a damaged download).
    """
    src = require_file(Path(path) if path else resolve_data_dir(data_dir) / RELPATH, "NB201 table", HOW_TO_GET)
    arrays = cached_arrays("nb201_table", [src], lambda: _parse(src, None if path else SHA256), cache_dir)
    archs = [NB201Arch(tuple(OPS[i] for i in row)) for row in arrays["ops"].tolist()]
    targets = {k: arrays[k.replace("/", "__")] for k in COLUMNS}
    return Benchmark("nb201", SPACE, archs, targets, {})
