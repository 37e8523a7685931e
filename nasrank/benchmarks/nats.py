"""Loaders for the official NAS-Bench-201 / NATS-Bench topology (TSS) files.

Users who have the authors' files can use them instead of the shared CSV table, and get what the CSV
lacks: validation accuracies, the 12-epoch budget, FLOPs, parameters and latency.  Two formats:

- ``NAS-Bench-201-v1_1-096897.pth`` (or ``v1_0-e61699``): one `torch.save`d dict ``{'meta_archs':
  [arch str], 'arch2infos': {index: {'less': ArchResults state, 'full': ArchResults state}},
  'evaluated_indexes': ...}``; ``less`` is the 12-epoch budget and ``full`` the 200-epoch one.
- ``NATS-tss-v1_0-3ffb9-simple/``: ``meta.pickle.pbz2`` (``{'meta_archs': [...], ...}``) and one
  bz2-compressed pickle per arch, ``<index:06d>.pickle.pbz2`` holding ``{'12': ArchResults state,
  '200': ArchResults state}``.

An ArchResults state is a plain dict whose ``all_results`` maps ``(dataset, seed)`` to a
ResultsCount state: ``eval_acc1es`` (``'<set>@<epoch>'`` -> accuracy %), ``epochs``, ``flop`` (M),
``params`` (M), ``latency`` (list of s).  Both formats hold only builtin containers, OrderedDicts and
numpy scalars, so they are read with torch's weights-only unpickler or our `safe_load`, never with a
plain unpickler: the official APIs (``nas_201_api``, ``nats_bench``) use plain `pickle`/`torch.load`,
which is why this module does not delegate to them even when they are installed.

Values follow the official API's ``get_more_info(..., is_random=False)``: the last-epoch accuracy,
averaged over the seeds of the chosen budget.  A value the file does not have is NaN; a target or
cost no arch has is left out.  Parsing the real files takes minutes, so the arrays are cached.
"""

from __future__ import annotations

import bz2
import importlib
import math
import pickle
import re
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.safe_pickle import NUMPY_GLOBALS, safe_load
from nasrank.core import (
    cached_arrays,
    ConfigError,
    CorruptDataError,
    DataNotFoundError,
    InvalidArchError,
    UnsafePickleError,
)
from nasrank.spaces.nb201 import SPACE

#: Training budgets (epochs) of the topology benchmarks, and their key in the NAS-Bench-201 `.pth`.
PTH_HP_KEYS: dict[str, str] = {"12": "less", "200": "full"}
#: Our target -> (official dataset name, eval set), as NB201 users read them: CIFAR-10 validation is
#: the ``cifar10-valid`` run's x-valid, CIFAR-10 test the ``cifar10`` (train+valid) run's ori-test.
TARGETS: dict[str, tuple[str, str]] = {
    "cifar10/test_acc": ("cifar10", "ori-test"),
    "cifar10/valid_acc": ("cifar10-valid", "x-valid"),
    "cifar100/test_acc": ("cifar100", "x-test"),
    "cifar100/valid_acc": ("cifar100", "x-valid"),
    "imagenet16/test_acc": ("ImageNet16-120", "x-test"),
    "imagenet16/valid_acc": ("ImageNet16-120", "x-valid"),
}
#: Our dataset name -> the official run whose costs we report.
COST_DATASETS: dict[str, str] = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}

PTH_HELP = ("expected NAS-Bench-201-v1_1-096897.pth (or NAS-Bench-201-v1_0-e61699.pth); "
            "download it via https://github.com/D-X-Y/NAS-Bench-201#preparation-and-download")
DIR_HELP = ("expected the extracted NATS-tss-v1_0-3ffb9-simple directory; download NATS-tss-v1_0-3ffb9-simple.tar "
            "via https://github.com/D-X-Y/NATS-Bench#preparation-and-download and extract it")
PICKLE_EXT = ".pickle.pbz2"
#: Globals the `-simple` pickles need besides builtin containers (protocol 4 pickles sets natively).
DIR_ALLOWED: frozenset[tuple[str, str]] = NUMPY_GLOBALS | {("collections", "OrderedDict")}
_LAYOUT_VERSION = "1"  # bump when the cached array layout of this module changes


def load_nats_pth(path: str | Path, hp: str | int = "200", cache_dir: str | Path | None = None) -> Benchmark:
    """Benchmark from the NAS-Bench-201 `.pth` file; row i is the file's arch index i.

    `hp` is the training budget, ``"200"`` or ``"12"`` epochs.  A cache miss unpickles the whole
    file at once: on synthetic files, 6.6x its size in RAM and 0.11 s/MB through torch's
    weights-only unpickler, i.e. an estimated ~30 GB and ~10 min for the 4.7 GB v1_1 file.
    `load_nats_dir` reads one arch at a time.
    """
    path, hp = Path(path), _check_hp(hp)
    _require(path, is_dir=False, help_=PTH_HELP)

    def build() -> dict[str, np.ndarray]:
        data = _torch_load(path)
        archs = _meta_archs(data, path, PTH_HELP)
        infos = data.get("arch2infos")
        if not isinstance(infos, Mapping):
            raise CorruptDataError(f"{path}: 'arch2infos' is {type(infos).__name__}, not a dict; {PTH_HELP}")
        states = (_hp_state(infos.get(i), PTH_HP_KEYS[hp], path, i) for i in range(len(archs)))
        return _table(archs, states, path)

    arrays = cached_arrays("nats_pth", [path], build, cache_dir, f"pth|hp={hp}|{_LAYOUT_VERSION}")
    return _benchmark("nb201_pth", arrays)


def load_nats_dir(path: str | Path, hp: str | int = "200", cache_dir: str | Path | None = None) -> Benchmark:
    """Benchmark from the NATS-Bench TSS ``-simple`` archive directory; row i is arch index i.

    `hp` is the training budget, ``"200"`` or ``"12"`` epochs.  Every per-arch file must be present
    (a missing one means an incomplete extraction, not an unevaluated arch).
    """
    path, hp = Path(path), _check_hp(hp)
    _require(path, is_dir=True, help_=DIR_HELP)
    meta_path = path / f"meta{PICKLE_EXT}"
    archs = _meta_archs(_bz2_load(meta_path), meta_path, DIR_HELP)
    files = [_arch_file(path, i) for i in range(len(archs))]

    def build() -> dict[str, np.ndarray]:
        states = (_hp_state(_bz2_load(f), hp, f, i) for i, f in enumerate(files))
        return _table(archs, states, path)

    arrays = cached_arrays("nats_dir", [meta_path, *files], build, cache_dir, f"dir|hp={hp}|{_LAYOUT_VERSION}")
    return _benchmark("nats_tss", arrays)


def _check_hp(hp: str | int) -> str:
    if str(hp) not in PTH_HP_KEYS:
        raise ConfigError(f"unknown NB201/NATS training budget hp={hp!r}; allowed: {', '.join(PTH_HP_KEYS)}")
    return str(hp)


def _require(path: Path, is_dir: bool, help_: str) -> None:
    """Missing and wrong-kind paths fail up front with the download hint, before any parsing."""
    if not path.exists():
        raise DataNotFoundError(f"{path}: not found; {help_}")
    if path.is_dir() != is_dir:
        raise CorruptDataError(f"{path}: is a {'file' if is_dir else 'directory'}; {help_}")


def _torch_numpy_globals() -> list[Any]:
    """`NUMPY_GLOBALS` as torch's `safe_globals` entries, under both numpy 1 and 2 module names.

    The dtype classes are listed too because torch's unpickler only BUILDs (sets the state of)
    instances of allow-listed types, and a pickled dtype is rebuilt as e.g. `Float64DType`.
    """
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 1.26
        multiarray = importlib.import_module("numpy.core.multiarray")
    entries: list[Any] = [type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"]
    for module, name in NUMPY_GLOBALS:
        home = np if module == "numpy" else multiarray
        entries.append((getattr(home, name), f"{module}.{name}"))
    return entries


def _torch_load(path: Path) -> Any:
    """`torch.load(weights_only=True)` plus numpy scalars; refused globals never run."""
    import torch  # only this format needs torch; importing it lazily keeps the CSV loaders light

    try:
        with torch.serialization.safe_globals(_torch_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as err:  # torch reports damage as any of ~8 types (EOF, Index, Key, OS, Runtime...)
        if isinstance(err, pickle.UnpicklingError) and (refused := re.search(r"GLOBAL (\S+)", str(err))):
            raise UnsafePickleError(f"{path}: refused to load global {refused.group(1)}: not in the allow-list "
                                    f"of this loader; {PTH_HELP}") from None
        raise CorruptDataError(f"{path}: not a readable torch file ({type(err).__name__}); "
                               f"truncated or corrupt? {PTH_HELP}") from None


def _bz2_load(path: Path) -> Any:
    """One ``.pickle.pbz2`` file through `safe_load`; bad compression is corruption too."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: not found; {DIR_HELP}")
    try:
        return safe_load(path, DIR_ALLOWED, opener=_bz2_open)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{err}; {DIR_HELP}") from None
    except OSError as err:  # bz2 raises OSError("Invalid data stream") for non-bz2 bytes
        raise CorruptDataError(f"{path}: not a bz2-compressed pickle ({err}); {DIR_HELP}") from None


def _bz2_open(path: Path) -> bz2.BZ2File:
    return bz2.BZ2File(path, "rb")


def _arch_file(root: Path, index: int) -> Path:
    """Per-arch file name as the official API resolves it: zero-padded first, then plain."""
    for name in (f"{index:06d}{PICKLE_EXT}", f"{index}{PICKLE_EXT}"):
        if (root / name).is_file():
            return root / name
    raise DataNotFoundError(f"{root / f'{index:06d}{PICKLE_EXT}'}: not found (arch {index}); {DIR_HELP}")


def _meta_archs(data: Any, path: Path, help_: str) -> list[str]:
    archs = data.get("meta_archs") if isinstance(data, Mapping) else None
    if not isinstance(archs, (list, tuple)) or not archs:
        raise CorruptDataError(f"{path}: no 'meta_archs' list of arch strings found; {help_}")
    return [str(a) for a in archs]


def _hp_state(info: Any, key: str, path: Path, index: int) -> Mapping | None:
    """The ArchResults state of one budget, or None when the file has no results for it."""
    if info is None:
        return None
    if not isinstance(info, Mapping):
        raise CorruptDataError(f"{path}: arch {index} results are {type(info).__name__}, not a dict of budgets")
    return info.get(key)


def _table(archs: list[str], states: Iterable[Mapping | None], path: Path) -> dict[str, np.ndarray]:
    """Cacheable arrays: ``archs`` plus ``target:<key>`` / ``cost:<key>`` columns (all-NaN dropped)."""
    for i, arch in enumerate(archs):
        try:
            SPACE.from_str(arch)
        except InvalidArchError as err:
            raise CorruptDataError(f"{path}: meta_archs[{i}] is not an NB201 cell ({err})") from None
    rows = []
    for i, state in enumerate(states):
        try:
            rows.append(_row(state))
            stored = state.get("arch_str", archs[i]) if state is not None else archs[i]
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise CorruptDataError(f"{path}: arch {i} is not an ArchResults state dict "
                                   f"({type(err).__name__}: {err}); expected the official NB201/NATS layout") from None
        if stored != archs[i]:  # guards the row-i-is-index-i promise
            raise CorruptDataError(f"{path}: results of arch {i} are for {stored}, but meta_archs[{i}] is {archs[i]}")
    arrays = {"archs": np.array(archs)}
    for key in rows[0]:
        column = np.array([row[key] for row in rows], dtype=np.float64)
        if not np.isnan(column).all():
            arrays[key] = column
    return arrays


def _row(state: Mapping | None) -> dict[str, float]:
    """One arch's targets and costs from its ArchResults state (NaN where the file has none)."""
    results: Mapping = state["all_results"] if state is not None else {}
    row = {f"target:{key}": _seed_mean(results, dataset, partial(_last_acc, split=split))
           for key, (dataset, split) in TARGETS.items()}
    for name, dataset in COST_DATASETS.items():
        row[f"cost:{name}/flops"] = _seed_mean(results, dataset, lambda r: r["flop"])
        row[f"cost:{name}/params"] = _seed_mean(results, dataset, lambda r: r["params"])
        row[f"cost:{name}/latency"] = _seed_mean(results, dataset, _latency)
    return row


def _seed_mean(results: Mapping, dataset: str, value: Callable[[Mapping], Any]) -> float:
    """Mean of `value` over the seeds of `dataset` that have it; NaN when none does."""
    values = []
    for (name, _seed), result in results.items():
        if name == dataset and (v := value(result)) is not None:
            values.append(float(v))
    return float(np.mean(values)) if values else math.nan


def _last_acc(result: Mapping, split: str) -> Any:
    return result["eval_acc1es"].get(f"{split}@{result['epochs'] - 1}")


def _latency(result: Mapping) -> float | None:
    """Mean measured latency (s); the official API treats a missing or non-positive one as absent."""
    latency = result.get("latency")
    if not latency:
        return None
    value = sum(float(x) for x in latency) / len(latency)
    return value if value > 0 else None


def _benchmark(name: str, arrays: dict[str, np.ndarray]) -> Benchmark:
    targets = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("target:")}
    costs = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("cost:")}
    return Benchmark(name, SPACE, [SPACE.from_str(str(s)) for s in arrays["archs"]], targets, costs)
