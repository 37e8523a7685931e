"""nasrank: learn to rank neural architectures from a few measured ones.

`Ranker` (loaded lazily: importing nasrank alone pulls in no torch) is the public API of a trained
ranker: `Ranker.load(run_dir)`, `.score(archs)`, `.top(archs_or_space, k)`, `Ranker.fit(...)`.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Ranker", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Ranker":
        from nasrank.ranker import Ranker

        return Ranker
    raise AttributeError(f"module 'nasrank' has no attribute {name!r}")
