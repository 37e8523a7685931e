"""Search spaces by name: what an architecture string, a benchmark and a trained ranker all refer to."""

from __future__ import annotations

import json
from typing import Any

from nasrank.core import ConfigError, InvalidArchError
from nasrank.spaces.base import Arch, Space
from nasrank.spaces.nb101 import SPACE as NB101
from nasrank.spaces.nb201 import SPACE as NB201
from nasrank.spaces.nbgraph import SPACE as NBGRAPH

SPACES: dict[str, Space] = {s.name: s for s in (NB201, NB101, NBGRAPH)}


def get_space(name: str) -> Space:
    """The space called `name`; an unknown name is one line listing the allowed ones."""
    if name not in SPACES:
        raise ConfigError(f"unknown search space {name!r}; allowed: {', '.join(SPACES)}")
    return SPACES[name]



def as_arch(space: Space, item: Any) -> Arch:
    """One architecture of `space` from what a user has at hand, in the form the space's benchmarks
    store it (NB101: the canonical labelling of its isomorphism class).

    Accepted: an arch object of the space; its string (`to_str`, e.g. NB201 ``|nor_conv_3x3~0|+|...|``);
    NB101 ``(matrix, ops)`` or ``{"matrix": ..., "ops": ...}`` (also as a JSON string: the cell is
    pruned as nasbench's ``ModelSpec`` does); a NAS-Bench-Graph integer key.  Anything else is one line.
    """
    if isinstance(item, Arch):
        if not isinstance(item, space.arch_type):
            raise InvalidArchError(f"{type(item).__name__} is not a cell of the {space.name} space")
        arch = item
    elif space.name == "nb101" and isinstance(item, (tuple, list, dict)):
        matrix, ops = (item["matrix"], item["ops"]) if isinstance(item, dict) else item
        arch = space.from_spec(matrix, ops)
    elif space.name == "nb101" and isinstance(item, str) and item.lstrip().startswith("{"):
        try:
            spec = json.loads(item)
        except json.JSONDecodeError:
            raise InvalidArchError(f"malformed NB101 JSON cell {item!r}: expected {{\"matrix\": [[...]], \"ops\": [...]}}") from None
        if not isinstance(spec, dict) or not {"matrix", "ops"} <= set(spec):
            raise InvalidArchError(f"NB101 JSON cell {item!r} needs the keys 'matrix' and 'ops'")
        arch = space.from_spec(spec["matrix"], spec["ops"])
    elif space.name == "nbgraph" and (isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit())):
        arch = space.from_key(int(item))
    elif isinstance(item, str):
        arch = space.from_str(item)
    else:
        raise InvalidArchError(f"cannot read a {space.name} cell from {type(item).__name__} {item!r}; "
                               "give its string form (or, NB101, matrix + ops; NAS-Bench-Graph, its key)")
    return arch.canonical() if hasattr(arch, "canonical") else arch


__all__ = ["Arch", "SPACES", "Space", "as_arch", "get_space"]
