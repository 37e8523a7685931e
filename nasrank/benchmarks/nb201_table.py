"""NB201 / NATS-Bench TSS from the shared CSV table (200-epoch test accuracy on three datasets), and
that table converted from the official NATS-Bench TSS archive for users who lack it."""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.fetch import Recipe, Source, locate
from nasrank.benchmarks.nats import load_nats_dir
from nasrank.core import (
    cached_arrays,
    CorruptDataError,
    DataNotFoundError,
    InvalidArchError,
    require_file,
    verify_sha256,
)
from nasrank.spaces.nb201 import OPS, SPACE, NB201Arch

RELPATH = "nb201/nats_tss_200ep_test_acc.csv"
SHA256 = "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e"
COLUMNS = {
    "cifar10/test_acc": "CIFAR10TestAccuracy200Epochs",
    "cifar100/test_acc": "CIFAR100TestAccuracy200Epochs",
    "imagenet16/test_acc": "ImageNetTestAccuracy200Epochs",
}
ARCH_COLUMN = "ArchitectureString"
#: The official NATS-Bench TSS archive (MIT licence); no checksum is published, so the converted
#: table is checked instead: its size and the NB201 paper's best test accuracies (%, 3 decimals).
ARCHIVE = "NATS-tss-v1_0-3ffb9-simple"
ARCHIVE_ID = "17_saCsj_krKjlCBLOJEpNtzPXArMCqxU"
ARCHIVE_SOURCE = Source(f"https://drive.usercontent.google.com/download?id={ARCHIVE_ID}&confirm=t", f"{ARCHIVE}.tar")
NUM_ARCHS = 15_625
BEST = {"cifar10/test_acc": 94.373, "cifar100/test_acc": 73.513, "imagenet16/test_acc": 47.311}
HOW_TO_GET = (f"download {ARCHIVE}.tar from https://drive.google.com/file/d/{ARCHIVE_ID} and run `python -m nasrank.data "
              "fetch nb201 --from <its folder>`, or read the official files directly (nasrank.benchmarks.nats.load_nats_dir "
              "on the extracted archive, load_nats_pth on NAS-Bench-201-v1_1-096897.pth)")


def _parse(path: Path, checksum: str | None) -> dict[str, np.ndarray]:
    if checksum:
        verify_sha256(path, checksum, "NB201 table")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in [*COLUMNS.values(), ARCH_COLUMN] if c not in (reader.fieldnames or [])]
        if missing:
            raise CorruptDataError(f"NB201 table {path} lacks column(s) {', '.join(missing)}; expected {', '.join([*COLUMNS.values(), ARCH_COLUMN])}")
        rows = list(reader)
    if not rows:
        raise CorruptDataError(f"NB201 table {path} has no rows")
    try:
        ops = np.array([SPACE.from_str(r[ARCH_COLUMN]).op_indices for r in rows], dtype=np.int8)
        values = {k: np.array([float(r[c]) for r in rows], dtype=np.float64) for k, c in COLUMNS.items()}
    except (InvalidArchError, ValueError, TypeError) as err:
        raise CorruptDataError(f"NB201 table {path}: bad row ({err})") from None
    for key, arr in values.items():
        if not np.isfinite(arr).all():
            raise CorruptDataError(f"NB201 table {path}: column {COLUMNS[key]} has NaN/inf values")
    return {"ops": ops, **{k.replace("/", "__"): v for k, v in values.items()}}


def load_nb201_table(data_dir: str | Path | None = None, cache_dir: Path | None = None, path: str | Path | None = None,
                     download: bool = False) -> Benchmark:
    """All 15,625 NB201 cells in NATS index order with test accuracy (%) on cifar10/cifar100/imagenet16.

    The table is looked for in `data_dir`, then among tables fetched into `cache_dir`; `download`
    fetches it there when missing (the official archive, about 1 GB).  `path` overrides the file (a
    copy with another checksum is accepted only then: the published checksum is enforced for the
    data folder's file, where a mismatch means a damaged download; a fetched table was checked when
    it was converted).
    """
    if path:
        src, checksum = require_file(Path(path), "NB201 table", HOW_TO_GET), None
    else:
        src, fetched = locate(RECIPE, data_dir, cache_dir, download)
        checksum = None if fetched else SHA256
    arrays = cached_arrays("nb201_table", [src], lambda: _parse(src, checksum), cache_dir)
    archs = [NB201Arch(tuple(OPS[i] for i in row)) for row in arrays["ops"].tolist()]
    targets = {k: arrays[k.replace("/", "__")] for k in COLUMNS}
    return Benchmark("nb201", SPACE, archs, targets, {})


def convert_archive(files: Sequence[Path], scratch: Path, num_archs: int = NUM_ARCHS,
                    best: dict[str, float] = BEST) -> bytes:
    """The table (this module's CSV layout) from the official archive, checked to hold `num_archs`
    rows whose best accuracies are `best`; the archive and its extraction are deleted as they are used."""
    from torch_geometric.data import extract_tar  # only a fetch needs torch; the table loader stays light

    (archive,) = files
    try:
        extract_tar(str(archive), str(scratch), mode="r", log=False)
    except (tarfile.TarError, EOFError) as err:
        raise CorruptDataError(f"{archive.name} is not a complete tar archive ({err}); {HOW_TO_GET}") from None
    archive.unlink()  # frees about 1 GB before the conversion
    root = scratch / ARCHIVE
    if not (root / "meta.pickle.pbz2").is_file():
        raise CorruptDataError(f"{archive.name} has no {ARCHIVE}/meta.pickle.pbz2; not the NATS-Bench TSS archive? {HOW_TO_GET}")
    try:
        bench = load_nats_dir(root, "200", cache_dir=scratch / "cache")
    except (DataNotFoundError, CorruptDataError) as err:
        raise CorruptDataError(f"{archive.name} is incomplete or damaged: {err}") from None
    missing = [key for key in COLUMNS if key not in bench.targets]
    if missing:
        raise CorruptDataError(f"{archive.name} has no {', '.join(missing)} values; {HOW_TO_GET}")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*COLUMNS.values(), ARCH_COLUMN])
    values = zip(*(bench.target(key).tolist() for key in COLUMNS))
    writer.writerows([*(repr(v) for v in row), arch.to_str()] for row, arch in zip(values, bench.archs))
    table = scratch / "table.csv"
    table.write_text(text.getvalue())
    _check_converted(_parse(table, None), archive.name, num_archs, best)
    return table.read_bytes()


def _check_converted(arrays: dict[str, np.ndarray], name: str, num_archs: int, best: dict[str, float]) -> None:
    if len(arrays["ops"]) != num_archs:
        raise CorruptDataError(f"{name} converts to {len(arrays['ops']):,} cells, expected {num_archs:,}; {HOW_TO_GET}")
    for key, value in best.items():
        if round(float(arrays[key.replace("/", "__")].max()), 3) != value:
            raise CorruptDataError(f"{name}: best {key} is {arrays[key.replace('/', '__')].max():.3f}, expected {value} "
                                   f"(the NB201 paper's); {HOW_TO_GET}")


RECIPE = Recipe("nb201", "NB201 table", RELPATH, (ARCHIVE_SOURCE,), convert_archive,
                "an archive of about 1 GB from Google Drive, and 2 GB free disk while converting", HOW_TO_GET)
