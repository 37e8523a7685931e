import re

import numpy as np
import pytest

from nasrank.core import InvalidArchError
from nasrank.spaces.nbgraph import LINKS, OPS, SPACE, NBGraphArch


def test_key_round_trip_matches_readme_example():
    arch = NBGraphArch.from_key(88887)
    assert arch.link == 8 and arch.ops == ("skip", "skip", "skip", "fc")
    assert arch.key == 88887 and SPACE.from_str(arch.to_str()) == arch


def test_enumeration_and_keys_are_a_bijection():
    archs = list(SPACE.enumerate())
    assert len(archs) == len(LINKS) * len(OPS) ** 4
    assert len({a.key for a in archs}) == len(archs)


def test_node_graph_output_reads_leaves():
    labels, edges = NBGraphArch(3, ("gcn", "gat", "sage", "fc")).node_graph()  # links 0,0,1,2
    assert labels == ["input", "gcn", "gat", "sage", "fc", "output"]
    assert sorted(s for s, d in edges if d == 5) == [3, 4]


def test_mutation_keeps_wiring():
    rng = np.random.default_rng(1)
    arch = SPACE.random(rng)
    child = SPACE.mutate(arch, rng)
    assert child.link == arch.link and sum(a != b for a, b in zip(arch.ops, child.ops)) == 1


@pytest.mark.parametrize("key, part", [(-1, "out of range"), (90000, "out of range"), (19, "op digit 9")])
def test_bad_keys(key, part):
    with pytest.raises(InvalidArchError, match=part):
        NBGraphArch.from_key(key)


@pytest.mark.parametrize("text, error", [
    ("link:9|gcn,gcn,gcn,gcn", "link index 9 out of range; allowed: 0..8"),
    ("gcn,gcn,gcn,gcn", "expected 'link:<0-8>|op,op,op,op'"),
    ("link:1|gcn,gcn,gcn", "needs 4 ops, got 3"),
    ("link:1|gcn,gcn,gcn,mlp", "unknown NAS-Bench-Graph op 'mlp'; allowed: gat"),
])
def test_bad_strings(text, error):
    with pytest.raises(InvalidArchError, match=re.escape(error)):
        SPACE.from_str(text)
