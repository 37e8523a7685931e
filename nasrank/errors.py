"""User-facing errors.

Every error a user can cause (bad arch string, missing file, bad override) is a `NasrankError`, so
the entry points can print it as one line instead of a traceback.  Subclasses that describe bad
values also derive from `ValueError`, so library callers can catch the standard type.
"""

import numbers


class NasrankError(Exception):
    """Base class of every error meant to be shown to a user as one line."""


class InvalidArchError(NasrankError, ValueError):
    """An architecture (string, index, matrix, key) is not a member of its search space."""


class ConfigError(NasrankError, ValueError):
    """A configuration value is out of range or unknown."""


class DataNotFoundError(NasrankError, FileNotFoundError):
    """A benchmark file is missing: the message names the path and how to get it."""


class DownloadError(DataNotFoundError):
    """A missing benchmark file could not be fetched (offline, HTTP error, cut-off download, unwritable
    folder): the message names the URL or folder and how to get the file by hand."""


class CorruptDataError(NasrankError, ValueError):
    """A benchmark or cache file exists but cannot be read as what it claims to be."""


class UnsafePickleError(CorruptDataError):
    """A pickle asked for a class outside the loader's allow-list; nothing was executed."""


def check_at_least(group: str, minimum: int, **values: object) -> None:
    """One-line `ConfigError` unless every value is an integer ≥ minimum (booleans are not integers),
    named as the user writes it: `<group>.<name>`."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ConfigError(f"{group}.{name}={value!r}; allowed: an integer ≥ {minimum}")
