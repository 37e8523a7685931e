import csv
import re

import numpy as np
import pytest
from conftest import NB201_CSV, needs_nb201

from nasrank.core import InvalidArchError
from nasrank.spaces.nb201 import NUM_ARCHS, OPS, SPACE, NB201Arch

BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def table() -> list[dict]:
    with open(NB201_CSV, newline="") as fh:
        return list(csv.DictReader(fh))


@needs_nb201
def test_round_trip_and_canonical_classes_match_table(table):
    archs = [SPACE.from_str(r["ArchitectureString"]) for r in table]
    assert [a.to_str() for a in archs] == [r["ArchitectureString"] for r in table]
    keys = [a.iso_key() for a in archs]
    assert len(set(keys)) == 6466
    # same partition as the table's UniqueString, row by row (here even the same strings)
    assert keys == [r["UniqueString"] for r in table]


def test_index_round_trip_covers_space():
    archs = list(SPACE.enumerate())
    assert len(archs) == NUM_ARCHS == 15625 and len(set(archs)) == NUM_ARCHS
    assert all(NB201Arch.from_index(a.index) == a for a in archs[::97])
    assert archs[1234] == SPACE.from_index(1234)


def test_mutation_changes_exactly_one_edge():
    rng = np.random.default_rng(0)
    arch = SPACE.from_str(BEST_C10)
    for _ in range(50):
        child = SPACE.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.ops, child.ops)) == 1


def test_node_graph_is_a_dag_with_edge_ops():
    labels, edges = SPACE.from_str(BEST_C10).node_graph()
    assert labels[0] == "input" and labels[-1] == "output" and len(labels) == 8
    assert all(s < d for s, d in edges)
    # output reads the three edges into node 3; every op node is reachable from the input
    assert sorted(s for s, d in edges if d == 7) == [4, 5, 6]


@pytest.mark.parametrize("bad, part", [
    ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "nor_conv_5x5"),
    ("|none~0|+|none~0|none~1|", "3 '+'-separated"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "op~0"),
    ("none~0+none~0|none~1+x", "node 1"),
])
def test_bad_strings_name_the_bad_part(bad, part):
    with pytest.raises(InvalidArchError, match=re.escape(part)):
        SPACE.from_str(bad)


@pytest.mark.parametrize("bad", [-1, NUM_ARCHS, 3.5])
def test_bad_index(bad):
    with pytest.raises(InvalidArchError, match="0..15624"):
        NB201Arch.from_index(bad)


def test_bad_op_count_and_name():
    with pytest.raises(InvalidArchError, match="6 edge ops"):
        NB201Arch(OPS[:3])
    with pytest.raises(InvalidArchError, match="allowed"):
        NB201Arch(("conv",) * 6)
