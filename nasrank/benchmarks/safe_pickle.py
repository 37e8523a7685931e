"""Restricted unpickling for benchmark files made by others.

A pickle can run arbitrary code when loaded, so every pickle from outside the project goes through
an explicit allow-list of (module, name) globals.  Anything else raises `UnsafePickleError`
before the global is ever imported, so a malicious file cannot execute.
"""

from __future__ import annotations

import io
import pickle
import types
from pathlib import Path
from typing import Any, Callable, Iterable

from nasrank.core import CorruptDataError, UnsafePickleError

#: numpy globals that plain numpy arrays/scalars inside a pickle need (both numpy 1 and 2 names).
NUMPY_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("scalar", "_reconstruct")}
    | {("numpy", "dtype"), ("numpy", "ndarray")}
)


def plain_class(module: str, name: str) -> type:
    """A stand-in class for a pickled object whose real class must not be imported.

    Objects are rebuilt with `__new__` + `__dict__` update (the default BUILD), so a bare class with
    the same name carries all their attributes without running any of the original package's code.
    """
    return types.new_class(name, (), {}, lambda ns: ns.update({"__module__": module}))


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allowed globals; `stand_ins` replace classes we must not import."""

    def __init__(self, file: io.BufferedIOBase, allowed: Iterable[tuple[str, str]], stand_ins: dict | None = None,
                 encoding: str = "ASCII"):
        super().__init__(file, encoding=encoding)
        self._allowed = frozenset(allowed)
        self._stand_ins = stand_ins or {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._stand_ins:
            return self._stand_ins[(module, name)]
        if (module, name) not in self._allowed:
            raise UnsafePickleError(f"refused to load global {module}.{name}: not in the allow-list of this loader")
        return super().find_class(module, name)


def safe_load(path: Path, allowed: Iterable[tuple[str, str]] = (), stand_ins: dict | None = None,
              opener: Callable[[Path], io.BufferedIOBase] | None = None, encoding: str = "ASCII") -> Any:
    """Load a pickle file with an allow-list; truncated/garbled files raise `CorruptDataError`.

    `encoding` decodes Python 2 str objects (the official CIFAR batches need ``"latin1"``)."""
    path = Path(path)
    with (opener(path) if opener else open(path, "rb")) as fh:
        try:
            return RestrictedUnpickler(fh, allowed, stand_ins, encoding).load()
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{path}: {err}") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as err:
            raise CorruptDataError(f"{path}: not a readable pickle ({type(err).__name__}: {err}); the file is truncated or corrupt, download it again") from None
