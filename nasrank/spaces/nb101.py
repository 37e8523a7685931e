"""NAS-Bench-101 search space: DAG cells of at most 7 vertices and 9 edges.

A cell is an upper-triangular 0/1 adjacency matrix (``matrix[i][j] == 1``: edge i -> j) and one op
per vertex; vertex 0 is ``input``, the last is ``output``, interior vertices hold one of three ops.
`OPS` is the single op ordering of this space (ReNAS op code = index + 1): every encoder imports it.

Exactness with the official benchmark is the point of this module:
- `NB101Arch.iso_key()` is nasbench's ``graph_util.hash_module`` (the benchmark's key), reproduced
  exactly, including its integer op labels (``config['available_ops']`` order, not `OPS` order);
- `NB101Arch.canonical()` and `NB101Space.enumerate()` give, per isomorphism class, the cell that
  nasbench's ``generate_graphs.py`` met first (matrices by increasing bit mask, then labellings in
  lexicographic order): the (matrix, ops) the benchmark itself stores, so search results can be looked
  up in a table with `Benchmark.index_of`.

String form (`to_str`): short op names joined by ``|``, then ``;``, then the matrix rows as 0/1
strings joined by ``|``, e.g. ``input|conv3x3|output;010|001|000`` (the shared table's columns).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from nasrank.core import ConfigError, InvalidArchError
from nasrank.spaces.base import Arch, Space

OPS: tuple[str, ...] = ("input", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output")
INTERIOR_OPS: tuple[str, ...] = OPS[1:-1]
#: Integer labels of nasbench's hash and enumeration (its ``available_ops`` order; -1/-2 = input/output).
NASBENCH_LABELS: dict[str, int] = {"conv3x3-bn-relu": 0, "conv1x1-bn-relu": 1, "maxpool3x3": 2, "input": -1, "output": -2}
_BY_LABEL: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
#: Names used by `to_str` and the shared table.
SHORT_NAMES: dict[str, str] = {"input": "input", "conv1x1-bn-relu": "conv1x1", "conv3x3-bn-relu": "conv3x3",
                               "maxpool3x3": "maxpool3x3", "output": "output"}
_LONG_NAMES = {short: long for long, short in SHORT_NAMES.items()}
MAX_VERTICES = 7
MAX_EDGES = 9
NUM_CELLS = 423_624

Matrix = tuple[tuple[int, ...], ...]


def _as_matrix(matrix: Sequence[Sequence[int]] | np.ndarray) -> Matrix:
    """Nested tuples of 0/1 ints; rejects non-square shapes and other values."""
    try:
        rows = tuple(tuple(int(x) for x in row) for row in matrix)
    except (TypeError, ValueError):
        raise InvalidArchError("NB101 matrix must be a square 2-D array of 0/1 integers") from None
    if any(len(row) != len(rows) for row in rows):
        raise InvalidArchError(f"NB101 matrix must be square, got row lengths {[len(r) for r in rows]} for {len(rows)} rows")
    if any(x not in (0, 1) for row in rows for x in row):
        raise InvalidArchError("NB101 matrix entries must be 0 or 1")
    return rows


def _structure_problem(matrix: Matrix, ops: tuple[str, ...]) -> str | None:
    """Why (matrix, ops) is not a labelled DAG in nasbench's form (before pruning), or None."""
    for op in ops:
        if op not in OPS:
            return f"unknown NB101 op {op!r}; allowed: {', '.join(OPS)}"
    if len(matrix) != len(ops):
        return f"NB101 matrix is {len(matrix)}x{len(matrix)} but there are {len(ops)} ops; they must match"
    if len(ops) < 2 or ops[0] != "input" or ops[-1] != "output" or any(op not in INTERIOR_OPS for op in ops[1:-1]):
        return f"NB101 ops must be 'input', then any of {', '.join(INTERIOR_OPS)}, then 'output'; got {', '.join(ops)}"
    for i, row in enumerate(matrix):
        if any(row[: i + 1]):
            return f"NB101 matrix row {i} has an entry on or below the diagonal; it must be strictly upper-triangular (a DAG in vertex order)"
    return None


def _reachable(matrix: Matrix, start: int, forward: bool) -> set[int]:
    n, seen, stack = len(matrix), {start}, [start]
    while stack:
        v = stack.pop()
        for w in range(n):
            if w not in seen and (matrix[v][w] if forward else matrix[w][v]):
                seen.add(w)
                stack.append(w)
    return seen


def _prune(matrix: Matrix, ops: tuple[str, ...]) -> tuple[Matrix, tuple[str, ...]] | None:
    """Drop vertices not on an input->output path (nasbench ``ModelSpec._prune``); None if no path."""
    keep = sorted(_reachable(matrix, 0, True) & _reachable(matrix, len(ops) - 1, False))
    if len(ops) - 1 not in keep or 0 not in keep:
        return None
    return tuple(tuple(matrix[i][j] for j in keep) for i in keep), tuple(ops[i] for i in keep)


def _space_problem(matrix: Matrix, ops: tuple[str, ...]) -> str | None:
    """Why a structurally valid cell is outside the benchmark's space (or not pruned), or None."""
    if len(ops) > MAX_VERTICES:
        return f"NB101 cell has {len(ops)} vertices; at most {MAX_VERTICES} allowed"
    edges = sum(map(sum, matrix))
    if edges > MAX_EDGES:
        return f"NB101 cell has {edges} edges; at most {MAX_EDGES} allowed"
    pruned = _prune(matrix, ops)
    if pruned is None:
        return "NB101 cell has no input->output path"
    if len(pruned[1]) != len(ops):
        return "NB101 cell has vertices on no input->output path; build it with NB101Arch.from_spec to prune them"
    return None


def spec_hash(matrix: Matrix, ops: Sequence[str]) -> str:
    """nasbench ``graph_util.hash_module``: WL-style md5 over (out-degree, in-degree, label), V rounds."""
    n = len(ops)
    ins = [[w for w in range(n) if matrix[w][v]] for v in range(n)]
    outs = [[w for w in range(n) if matrix[v][w]] for v in range(n)]
    md5 = hashlib.md5
    hashes = [md5(str((len(outs[v]), len(ins[v]), NASBENCH_LABELS[ops[v]])).encode()).hexdigest() for v in range(n)]
    for _ in range(n):
        hashes = [md5(("".join(sorted([hashes[w] for w in ins[v]])) + "|" + "".join(sorted([hashes[w] for w in outs[v]]))
                       + "|" + hashes[v]).encode()).hexdigest() for v in range(n)]
    return md5(str(sorted(hashes)).encode()).hexdigest()


def _edge_bit(src: int, dst: int) -> int:
    """Bit of edge src -> dst in nasbench's mask (column-major upper triangle, ``gen_is_edge_fn``)."""
    return src + dst * (dst - 1) // 2


def _interior_perms(n: int) -> list[tuple[int, ...]]:
    """Vertex maps p (old v -> new p[v]) that fix input and output: the only isomorphisms, as their labels are unique."""
    return [(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))]


@dataclass(frozen=True, slots=True)
class NB101Arch(Arch):
    """One pruned NB101 cell, equal/hashable by its exact (matrix, ops); see `iso_key` for isomorphism."""

    matrix: Matrix
    ops: tuple[str, ...]
    _iso: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        matrix, ops = _as_matrix(self.matrix), tuple(str(op) for op in self.ops)
        if problem := _structure_problem(matrix, ops) or _space_problem(matrix, ops):
            raise InvalidArchError(problem)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", ops)

    @classmethod
    def from_spec(cls, matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> "NB101Arch":
        """Like nasbench's ``ModelSpec``: prune vertices on no input->output path, then validate."""
        matrix, ops = _as_matrix(matrix), tuple(str(op) for op in ops)
        if problem := _structure_problem(matrix, ops):
            raise InvalidArchError(problem)
        pruned = _prune(matrix, ops)
        if pruned is None:
            raise InvalidArchError("NB101 cell has no input->output path")
        return cls(*pruned)

    @classmethod
    def unchecked(cls, matrix: Matrix, ops: tuple[str, ...], iso_key: str | None = None) -> "NB101Arch":
        """No validation, for loaders building 423,624 cells from rows validated once (~0.5 us each).

        `iso_key`, when given, is trusted as the cell's hash (a checksummed benchmark's own key).
        """
        arch = object.__new__(cls)
        object.__setattr__(arch, "matrix", matrix)
        object.__setattr__(arch, "ops", ops)
        object.__setattr__(arch, "_iso", iso_key)
        return arch

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def op_indices(self) -> tuple[int, ...]:
        """Index of each vertex op in `OPS` (ReNAS op code = index + 1, 0 left for padding)."""
        return tuple(OPS.index(op) for op in self.ops)

    def edges(self) -> list[tuple[int, int]]:
        return [(i, j) for i, row in enumerate(self.matrix) for j, x in enumerate(row) if x]

    def iso_key(self) -> str:
        """The NAS-Bench-101 hash (memoised): equal exactly for isomorphic cells in this space."""
        if self._iso is None:
            object.__setattr__(self, "_iso", spec_hash(self.matrix, self.ops))
        return self._iso  # type: ignore[return-value]

    def canonical(self) -> "NB101Arch":
        """The member of this cell's isomorphism class that the benchmark stores (first in nasbench's
        generation order): minimal (edge bit mask, op labels) over interior vertex permutations."""
        n, edges = len(self.ops), self.edges()
        labels = [NASBENCH_LABELS[op] for op in self.ops]
        best: tuple[int, tuple[int, ...]] | None = None
        best_perm: tuple[int, ...] = tuple(range(n))
        for p in _interior_perms(n):
            if any(p[i] > p[j] for i, j in edges):
                continue
            new_labels = [0] * n
            for v, lab in enumerate(labels):
                new_labels[p[v]] = lab
            key = (sum(1 << _edge_bit(p[i], p[j]) for i, j in edges), tuple(new_labels))
            if best is None or key < best:
                best, best_perm = key, p
        rows = [[0] * n for _ in range(n)]
        for i, j in edges:
            rows[best_perm[i]][best_perm[j]] = 1
        ops = [""] * n
        for v, op in enumerate(self.ops):
            ops[best_perm[v]] = op
        return NB101Arch.unchecked(tuple(map(tuple, rows)), tuple(ops), self._iso)

    def to_str(self) -> str:
        return "|".join(SHORT_NAMES[op] for op in self.ops) + ";" + "|".join("".join(map(str, r)) for r in self.matrix)

    def node_graph(self) -> tuple[list[str], list[tuple[int, int]]]:
        """Ops are already on vertices: the node graph is the cell itself."""
        return list(self.ops), self.edges()


def _pairs(n: int) -> list[tuple[int, int]]:
    """Upper-triangle entries in nasbench's bit order (index == `_edge_bit`)."""
    return [(i, j) for j in range(1, n) for i in range(j)]


@functools.lru_cache(maxsize=None)
def _full_dags(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit masks (ascending) and their (mask, edge) 0/1 array of every `n`-vertex matrix nasbench's
    generator keeps: at most 9 edges, every vertex but the output with an out-edge, every vertex but
    the input with an in-edge (``is_full_dag``).  Read-only: shared by enumeration and sampling."""
    pairs = _pairs(n)
    masks = np.arange(1 << len(pairs), dtype=np.int64)
    bits = ((masks[:, None] >> np.arange(len(pairs))) & 1).astype(np.uint8)
    keep = bits.sum(1) <= MAX_EDGES
    for v in range(n):
        if v < n - 1:
            keep &= bits[:, [k for k, (i, _) in enumerate(pairs) if i == v]].any(1)
        if v > 0:
            keep &= bits[:, [k for k, (_, j) in enumerate(pairs) if j == v]].any(1)
    masks, bits = masks[keep], bits[keep].astype(np.int64)
    masks.flags.writeable = bits.flags.writeable = False
    return masks, bits


def _matrix_of(n: int, mask_bits: np.ndarray) -> Matrix:
    rows, pairs = [[0] * n for _ in range(n)], _pairs(n)
    for k in np.flatnonzero(mask_bits):
        i, j = pairs[k]
        rows[i][j] = 1
    return tuple(map(tuple, rows))


def _enumerate_vertices(n: int) -> Iterator[NB101Arch]:
    """Canonical cells with `n` vertices in nasbench's generation order, without hashing.

    A labelled DAG is first in its class iff no interior permutation keeping the matrix
    upper-triangular gives a smaller bit mask, and no automorphism of the matrix (a permutation giving
    the same mask) gives a lexicographically smaller labelling.  Both tests are vectorised over all
    masks / labellings, which makes the full space take seconds instead of hashing 1.3M labelled DAGs.
    """
    pairs = _pairs(n)
    masks, bits = _full_dags(n)
    perms = _interior_perms(n)
    backward = np.array([[p[i] > p[j] for i, j in pairs] for p in perms], dtype=np.int64)
    moved = np.array([[(1 << _edge_bit(p[i], p[j])) if p[i] < p[j] else 0 for i, j in pairs] for p in perms], dtype=np.int64)
    valid = (bits @ backward.T) == 0
    new_masks = bits @ moved.T
    canonical = ~(valid & (new_masks < masks[:, None])).any(1)
    automorphic = valid & (new_masks == masks[:, None])
    labellings = np.array(list(itertools.product(range(3), repeat=n - 2)), dtype=np.int64).reshape(3 ** (n - 2), n - 2)
    weights = 3 ** np.arange(n - 3, -1, -1, dtype=np.int64)  # code order == lexicographic order
    codes = labellings @ weights
    # the labelling that permutation p produces: new vertex p[v] carries old v's label
    permuted = np.stack([labellings[:, np.argsort(p[1:-1])] @ weights for p in perms])
    op_tuples = [("input", *(_BY_LABEL[x] for x in lab), "output") for lab in labellings.tolist()]
    minimal_cache: dict[bytes, list[int]] = {}
    for m in np.flatnonzero(canonical):
        autos = automorphic[m]
        if (kept := minimal_cache.get(autos.tobytes())) is None:
            kept = np.flatnonzero((codes[None, :] <= permuted[autos]).all(0)).tolist()
            minimal_cache[autos.tobytes()] = kept
        matrix = _matrix_of(n, bits[m])
        for c in kept:
            yield NB101Arch.unchecked(matrix, op_tuples[c])


class NB101Space(Space):
    """The 423,624-cell NAS-Bench-101 space (one cell per isomorphism class)."""

    name = "nb101"
    arch_type = NB101Arch
    node_ops = OPS
    max_nodes = MAX_VERTICES

    def from_str(self, text: str) -> NB101Arch:
        """Parse `NB101Arch.to_str()` output (``ops;matrix``, short op names); the cell must be pruned."""
        if not isinstance(text, str) or text.count(";") != 1:
            raise InvalidArchError(f"malformed NB101 arch string {text!r}: expected 'op|op|...;row|row|...'")
        ops_part, matrix_part = text.strip().split(";")
        ops = []
        for name in ops_part.split("|"):
            if name not in _LONG_NAMES:
                raise InvalidArchError(f"unknown NB101 op {name!r} in {text!r}; allowed: {', '.join(_LONG_NAMES)}")
            ops.append(_LONG_NAMES[name])
        rows = matrix_part.split("|")
        if any(set(r) - {"0", "1"} for r in rows):
            raise InvalidArchError(f"malformed NB101 matrix {matrix_part!r}: rows must be strings of 0/1")
        return NB101Arch(tuple(tuple(int(c) for c in r) for r in rows), tuple(ops))

    def from_spec(self, matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> NB101Arch:
        return NB101Arch.from_spec(matrix, ops)

    def enumerate(self, max_vertices: int = MAX_VERTICES) -> Iterator[NB101Arch]:
        """Every canonical cell with at most `max_vertices` vertices, in nasbench's generation order."""
        if not 2 <= max_vertices <= MAX_VERTICES:  # checked now, not at the first next()
            raise ConfigError(f"NB101 max_vertices={max_vertices!r} out of range; allowed: 2..{MAX_VERTICES}")
        return itertools.chain.from_iterable(_enumerate_vertices(n) for n in range(2, max_vertices + 1))

    def random(self, rng: np.random.Generator) -> NB101Arch:
        """Uniform over the 423,624 cells (isomorphism classes), by rejection.

        Proposal: a uniform labelled DAG of nasbench's generator (vertex count weighted by its number
        of labelled DAGs); accepted iff it is its class's canonical member, which each class has exactly
        one of.  nasbench's own ``random_spec`` (21 edges on with p=1/2, pruned) is not used: it is
        heavily biased to small cells (measured: 0.2 % of its samples have 7 vertices, vs 85 % of cells).
        """
        sizes = range(2, MAX_VERTICES + 1)
        weights = np.array([len(_full_dags(n)[0]) * 3 ** (n - 2) for n in sizes], dtype=np.float64)
        while True:
            n = int(rng.choice(sizes, p=weights / weights.sum()))
            bits = _full_dags(n)[1]
            ops = ("input", *(INTERIOR_OPS[i] for i in rng.integers(0, 3, n - 2)), "output")
            arch = NB101Arch.unchecked(_matrix_of(n, bits[rng.integers(len(bits))]), ops)
            if arch.canonical() == arch:
                return arch

    def mutate(self, arch: NB101Arch, rng: np.random.Generator, rate: float = 1.0) -> NB101Arch:
        """nasbench's evolution mutation: on the cell padded to 7 vertices (padding vertices unconnected,
        random ops), flip each edge with p=rate/7 and resample each interior op with p=rate/5, until the
        pruned result is valid and not isomorphic to `arch`; returned in canonical form."""
        if not rate > 0:
            raise ConfigError(f"NB101 mutation rate {rate!r} must be > 0 (expected changes per cell)")
        n = arch.num_vertices
        place = [*range(n - 1), MAX_VERTICES - 1]  # old vertex -> padded position
        while True:
            matrix = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
            for i, j in arch.edges():
                matrix[place[i], place[j]] = 1
            ops = ["input", *(INTERIOR_OPS[i] for i in rng.integers(0, 3, MAX_VERTICES - 2)), "output"]
            for v in range(1, n - 1):
                ops[v] = arch.ops[v]
            flips = np.triu(rng.random((MAX_VERTICES, MAX_VERTICES)) < rate / MAX_VERTICES, 1)
            matrix ^= flips
            for v in range(1, MAX_VERTICES - 1):
                if rng.random() < rate / (MAX_VERTICES - 2):
                    choices = [op for op in INTERIOR_OPS if op != ops[v]]
                    ops[v] = choices[int(rng.integers(len(choices)))]
            new = _valid_or_none(matrix, tuple(ops))
            if new is not None and new.iso_key() != arch.iso_key():
                return new.canonical()


def _valid_or_none(matrix: np.ndarray, ops: tuple[str, ...]) -> NB101Arch | None:
    """The pruned cell, or None when it is outside the space (rejection sampling without exceptions)."""
    pruned = _prune(_as_matrix(matrix), ops)
    if pruned is None or _space_problem(*pruned) is not None:
        return None
    return NB101Arch.unchecked(*pruned)


SPACE = NB101Space()
