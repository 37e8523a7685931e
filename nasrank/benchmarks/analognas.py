"""AnalogNAS-Bench (PyPI `analog-nasbench`): NB201 cells trained on CIFAR-10 for analog hardware.

The package's own import fails on current setuptools (`pkg_resources`), and its data file is a
pickle of its own classes, so the file is read here through the restricted unpickler with bare
stand-in classes: none of the package's code runs.  Its keys use another op code and edge order
than NB201 (mapping verified in ../shared/data/README.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from nasrank.benchmarks.benchmark import Benchmark
from nasrank.benchmarks.safe_pickle import NUMPY_GLOBALS, plain_class, safe_load
from nasrank.core import cached_arrays, CorruptDataError, require_file
from nasrank.spaces.nb201 import EDGES, OPS, SPACE, NB201Arch

#: AnalogNAS op code -> NB201 op name.
KEY_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: NB201 edge k (arch-string order) is stored at key position KEY_POS[k].
KEY_POS = (0, 1, 3, 2, 4, 5)
ACCURACIES = ("baseline", "ptq", "qat", "noisy", "analog")
DRIFTS = tuple(f"{kind}_drift_{t}" for kind in ("baseline", "analog") for t in (60, 3600, 86400, 2592000))
_STAND_INS = {("analognasbench.data", n): plain_class("analognasbench.data", n) for n in ("Architecture", "DriftMeasurement")}
HOW_TO_GET = "install it with `pip install analog-nasbench`"


def default_path() -> Path:
    """`data.anb` inside the installed package, found without importing it (its import is broken)."""
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or not spec.submodule_search_locations:
        return Path("analognasbench/data.anb")
    return Path(list(spec.submodule_search_locations)[0]) / "data.anb"


def key_to_arch(key: tuple[int, ...]) -> NB201Arch:
    """Map an AnalogNAS 6-tuple key to the NB201 cell it denotes."""
    return NB201Arch(tuple(KEY_OPS[key[KEY_POS[k]]] for k in range(len(EDGES))))


def _parse(path: Path) -> dict[str, np.ndarray]:
    table = safe_load(path, NUMPY_GLOBALS, _STAND_INS)
    if not isinstance(table, dict) or not table:
        raise CorruptDataError(f"AnalogNAS file {path}: expected a non-empty dict of architectures, got {type(table).__name__}")
    keys = sorted(table)
    try:
        ops = np.array([key_to_arch(k).op_indices for k in keys], dtype=np.int8)
        out = {f"{a}_acc": np.array([float(getattr(table[k], f"{a}_accuracy")) for k in keys]) for a in ACCURACIES}
        for d in DRIFTS:
            out[d] = np.array([float(getattr(table[k], d).value) for k in keys])
    except (AttributeError, IndexError, TypeError, ValueError) as err:
        raise CorruptDataError(f"AnalogNAS file {path}: unexpected entry layout ({err})") from None
    return {"ops": ops, **out}


def load_analognas(path: str | Path | None = None, cache_dir: Path | None = None) -> Benchmark:
    """15,625 NB201 cells; targets `cifar10/<kind>_acc` (digital `baseline_acc`, ptq, qat, noisy,
    analog) and `cifar10/<kind>_drift_<seconds>` (accuracy after drift), all in percent."""
    src = require_file(Path(path) if path else default_path(), "AnalogNAS-Bench data file", HOW_TO_GET)
    arrays = cached_arrays("analognas", [src], lambda: _parse(src), cache_dir)
    archs = [NB201Arch(tuple(OPS[i] for i in row)) for row in arrays["ops"].tolist()]
    targets = {f"cifar10/{k}": v for k, v in arrays.items() if k != "ops"}
    return Benchmark("analognas", SPACE, archs, targets, {})
