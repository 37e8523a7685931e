"""DataModules of architecture-ranking splits: a benchmark table (`ArchRankDataModule`) or a user's own
measurements (`custom_datamodule`, `data=custom`); the supernet's image data lives in `nasrank.supernet`.

Both are imported on first use, so `python -m nasrank.data` (fetching a table, computing zero-cost
features), which imports this package first, starts without loading Lightning.
"""

from importlib import import_module
from typing import Any

_HOMES = {"ArchRankDataModule": "nasrank.data.datamodule", "custom_datamodule": "nasrank.data.custom"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
