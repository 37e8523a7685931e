"""NB101 space: validation, pruning, the official hash, canonical form, enumeration, sampling.

Known values come from outside this code: hashes quoted in ../shared/data/nb101/README.md, and the
shared table (hash + stored (matrix, ops) of every cell), used when present.  The enumeration is
also checked against a brute-force re-run of nasbench's generate_graphs.py on small cells.
"""

from __future__ import annotations

import dataclasses
import itertools
import pickle

import numpy as np
import pytest
from conftest import require_data

from nasrank.benchmarks.nb101 import TABLE_RELPATH, load_nb101_table
from nasrank.core import ConfigError, InvalidArchError, resolve_data_dir
from nasrank.spaces.nb101 import NASBENCH_LABELS, NUM_CELLS, OPS, SPACE, NB101Arch, spec_hash

C1, C3, MP = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
#: The table's best single run (README): hash ba0a27cafe7d648aa57f7d5dd64c0b48.
BEST = NB101Arch(((0, 1, 1, 0, 1, 0, 1), (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 1, 0, 0),
                  (0, 0, 0, 0, 0, 1, 0), (0, 0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 0, 0)),
                 ("input", C3, C3, C3, C3, C1, "output"))
BEST_HASH = "ba0a27cafe7d648aa57f7d5dd64c0b48"
#: README: matrix of google-research/nasbench issue #4 with these ops.
ISSUE4 = NB101Arch.from_spec([[int(c) for c in r] for r in "0100111|0010000|0001000|0000010|0000010|0000001|0000000".split("|")],
                             ["input", C3, MP, C3, C1, C3, "output"])
ISSUE4_HASH = "02e5a0247bbdcf2860b7e96f74961594"
CHAIN3 = NB101Arch(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", C3, "output"))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    require_data(resolve_data_dir() / TABLE_RELPATH, "shared NB101 table")
    return load_nb101_table(cache_dir=tmp_path_factory.mktemp("cache"))


def test_op_order_is_the_renas_one():
    assert OPS == ("input", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output")
    assert SPACE.name == "nb101" and SPACE.node_ops == OPS and SPACE.max_nodes == 7
    assert BEST.op_indices == (0, 2, 2, 2, 2, 1, 4)


def test_known_hashes():
    assert BEST.iso_key() == BEST_HASH
    assert ISSUE4.iso_key() == ISSUE4_HASH


def test_equality_hash_and_immutability():
    same = NB101Arch(np.array(BEST.matrix), np.array(BEST.ops))  # arrays/lists are normalised to tuples of int/str
    assert same == BEST and hash(same) == hash(BEST) and same.matrix == BEST.matrix
    assert type(same.ops[1]) is str and type(same.matrix[0][1]) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        BEST.ops = ()  # type: ignore[misc]
    swapped = NB101Arch(((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 0)), ("input", C3, C1, "output"))
    other = NB101Arch(((0, 1, 1, 0), (0, 0, 0, 1), (0, 0, 0, 1), (0, 0, 0, 0)), ("input", C1, C3, "output"))
    assert swapped != other and swapped.iso_key() == other.iso_key()
    assert pickle.loads(pickle.dumps(BEST)) == BEST


@pytest.mark.parametrize("matrix, ops, message", [
    (((0, 1), (0, 0)), ("input", "conv5x5"), "unknown NB101 op"),
    (((0, 1, 0), (0, 0, 1), (0, 0, 0)), (C3, C3, "output"), "must be 'input'"),
    (((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", C3, C3), "must be 'input'"),
    (((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", "output", "output"), "must be 'input'"),
    (((0, 1, 0), (0, 0, 1)), ("input", C3, "output"), "must be square"),
    (((0, 1), (0, 0)), ("input", C3, "output"), "must match"),
    (((0, 1, 0), (0, 0, 1), (0, 1, 0)), ("input", C3, "output"), "upper-triangular"),
    (((0, 1, 0), (0, 1, 1), (0, 0, 0)), ("input", C3, "output"), "upper-triangular"),
    (((0, 2, 0), (0, 0, 1), (0, 0, 0)), ("input", C3, "output"), "0 or 1"),
    (tuple(tuple(int(j == i + 1) for j in range(8)) for i in range(8)), ("input", *[C3] * 6, "output"), "at most 7"),
    (tuple(tuple(int(j > i) for j in range(5)) for i in range(5)), ("input", C3, C3, C3, "output"), "at most 9"),
    (((0, 1, 0), (0, 0, 0), (0, 0, 0)), ("input", C3, "output"), "no input->output path"),
    (((0, 1, 1), (0, 0, 0), (0, 0, 0)), ("input", C3, "output"), "from_spec"),
])
def test_bad_cells_raise(matrix, ops, message):
    with pytest.raises(InvalidArchError, match=message):
        NB101Arch(matrix, ops)


def test_from_spec_prunes_like_nasbench():
    # vertex 2 is not reachable from the input, vertex 3 does not reach the output
    matrix = [[0, 1, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    arch = NB101Arch.from_spec(matrix, ["input", C1, MP, C3, "output"])
    assert arch == NB101Arch(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", C1, "output"))
    # 8 vertices and 10 edges before pruning, 7 and 9 after: valid, as in nasbench (checks after pruning)
    big = np.zeros((8, 8), dtype=int)
    for i in range(6):
        big[i, i + 1] = 1
    big[0, 7] = big[5, 7] = 1
    big[1, 3] = big[2, 4] = 1
    pruned = NB101Arch.from_spec(big, ["input", *[C3] * 5, MP, "output"])
    assert pruned.num_vertices == 7 and MP not in pruned.ops
    with pytest.raises(InvalidArchError, match="no input->output path"):
        NB101Arch.from_spec([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", C3, "output"])
    with pytest.raises(InvalidArchError, match="upper-triangular"):
        NB101Arch.from_spec([[0, 1, 0], [0, 0, 1], [1, 0, 0]], ["input", C3, "output"])


def test_string_round_trip_and_errors():
    assert BEST.to_str() == "input|conv3x3|conv3x3|conv3x3|conv3x3|conv1x1|output;0110101|0000010|0001000|0000100|0000010|0000001|0000000"
    for arch in (BEST, ISSUE4, CHAIN3):
        assert SPACE.from_str(arch.to_str()) == arch
    for bad, message in [("input|output", "malformed"), ("input|conv5x5|output;010|001|000", "unknown NB101 op"),
                         ("input|conv3x3|output;010|0x1|000", "0/1"), ("input|conv3x3|output;011|000|000", "from_spec")]:
        with pytest.raises(InvalidArchError, match=message):
            SPACE.from_str(bad)


def test_node_graph():
    ops, edges = ISSUE4.node_graph()
    assert ops == list(ISSUE4.ops) and ops[0] == "input" and ops[-1] == "output"
    assert sorted(edges) == sorted((i, j) for i in range(7) for j in range(7) if ISSUE4.matrix[i][j])


def _relabel(arch: NB101Arch, perm: tuple[int, ...]) -> NB101Arch:
    """The same cell with vertex v moved to perm[v]."""
    n = arch.num_vertices
    rows = [[0] * n for _ in range(n)]
    for i, j in arch.edges():
        rows[perm[i]][perm[j]] = 1
    ops = [""] * n
    for v, op in enumerate(arch.ops):
        ops[perm[v]] = op
    return NB101Arch(rows, ops)


def _upper_relabelings(arch: NB101Arch) -> list[NB101Arch]:
    n = arch.num_vertices
    perms = [(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))]
    return [_relabel(arch, p) for p in perms if all(p[i] < p[j] for i, j in arch.edges())]


def test_canonical_is_shared_by_isomorphic_cells():
    forms = _upper_relabelings(ISSUE4)
    assert len(forms) > 1
    canon = {f.canonical() for f in forms}
    assert len(canon) == 1 and {f.iso_key() for f in forms} == {ISSUE4_HASH}
    (c,) = canon
    assert c.canonical() == c and c.iso_key() == ISSUE4_HASH


def _generate_graphs(max_vertices: int) -> list[NB101Arch]:
    """nasbench's generate_graphs.py, re-run literally: first (matrix, labelling) met per hash."""
    seen: dict[str, NB101Arch] = {}
    for n in range(2, max_vertices + 1):
        pairs = [(i, j) for j in range(1, n) for i in range(j)]
        for bits in range(2 ** len(pairs)):
            m = np.zeros((n, n), dtype=int)
            for k, (i, j) in enumerate(pairs):
                m[i, j] = (bits >> k) & 1
            if m.sum() > 9 or (m[:-1].sum(1) == 0).any() or (m[:, 1:].sum(0) == 0).any():
                continue
            for labels in itertools.product(range(3), repeat=n - 2):
                ops = ["input", *(next(o for o, v in NASBENCH_LABELS.items() if v == lab) for lab in labels), "output"]
                seen.setdefault(spec_hash(m, ops), NB101Arch(m, ops))
    return list(seen.values())


def test_enumeration_matches_generate_graphs_up_to_5_vertices():
    mine = list(SPACE.enumerate(max_vertices=5))
    assert mine == _generate_graphs(5)  # same cells, same representatives, same order
    assert len(mine) == 1 + 6 + 84 + 2441


def test_enumeration_bounds_are_checked_eagerly():
    with pytest.raises(ConfigError, match="2..7"):
        SPACE.enumerate(max_vertices=8)
    assert [a.to_str() for a in SPACE.enumerate(max_vertices=2)] == ["input|output;01|00"]


def test_full_enumeration():
    """Its speed is a row of benchmarks/speed.py (nb101_enumerate_s), not a bound here."""
    archs = list(SPACE.enumerate())
    assert len(archs) == NUM_CELLS == len(set(archs))
    sample = [archs[i] for i in np.random.default_rng(0).choice(len(archs), 300, replace=False)]
    assert all(a.canonical() == a for a in sample)
    assert len({a.iso_key() for a in sample}) == len(sample)


def test_random_and_mutate():
    rng = np.random.default_rng(0)
    cells = [SPACE.random(rng) for _ in range(2000)]
    assert all(c.canonical() == c and NB101Arch(c.matrix, c.ops) == c for c in cells[:300])
    # uniform over classes: 359,082 / 423,624 = 84.8 % of cells have 7 vertices (sd 0.8 % at n=2000)
    assert 0.81 < np.mean([c.num_vertices == 7 for c in cells]) < 0.88
    assert len(set(cells)) > 1990
    assert SPACE.random(np.random.default_rng(5)) == SPACE.random(np.random.default_rng(5))
    for parent in [*cells[:50], CHAIN3, NB101Arch(((0, 1), (0, 0)), ("input", "output"))]:
        child = SPACE.mutate(parent, rng)
        assert child.iso_key() != parent.iso_key()
        assert child.canonical() == child and NB101Arch(child.matrix, child.ops) == child
    with pytest.raises(ConfigError, match="rate"):
        SPACE.mutate(CHAIN3, rng, rate=0.0)


def test_enumeration_equals_the_table(table):
    assert len(table) == NUM_CELLS
    assert set(SPACE.enumerate()) == set(table.archs)  # the table stores nasbench's representatives


def test_table_hashes_sample(table):
    rows = np.random.default_rng(1).choice(len(table), 20_000, replace=False)
    for i in rows:
        a = table.archs[i]
        assert spec_hash(a.matrix, a.ops) == a.iso_key(), a.to_str()
    for i in rows[:500]:
        assert table.archs[i].canonical() == table.archs[i]
        assert NB101Arch(table.archs[i].matrix, table.archs[i].ops) == table.archs[i]  # every rule holds


@pytest.mark.slow
def test_table_hashes_all_rows(table):
    wrong = [a.to_str() for a in table.archs if spec_hash(a.matrix, a.ops) != a.iso_key()]
    assert not wrong, f"{len(wrong)} rows, first {wrong[0]}"
