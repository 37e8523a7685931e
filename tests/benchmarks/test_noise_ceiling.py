"""The replicate-measurement ceiling: classes of isomorphic rows, KTau between their members, the Gaussian ceiling."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_script

nc = load_script("noise_ceiling")


def test_classes_with_two_or_more_rows():
    assert nc.replicate_classes(["a", "b", "a", "c", "b", "a"]) == [[0, 2, 5], [1, 4]]


def test_identical_replicates_rank_alike_and_reversed_ones_oppositely():
    classes = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert nc.replicate_ktau(np.repeat([1.0, 2.0, 3.0], 3), classes, draws=4) == [1.0] * 4
    # within each class one member is high and one low, in opposite order to the other classes' ranks: the
    # draw decides which member comes first, so the tau of two draws differs, but it stays within [-1, 1]
    taus = nc.replicate_ktau(np.array([1.0, 9.0, 1.0, 2.0, 8.0, 2.0, 3.0, 7.0, 3.0]), classes, draws=50, seed=1)
    assert min(taus) < 0 < max(taus)


def test_implied_ceiling_by_hand():
    # tau 0.5 -> rho = sin(pi/4) = 0.7071 -> sqrt = 0.8409 -> 2/pi * asin(0.8409) = 2/pi * 0.9989 = 0.6359
    assert nc.implied_ceiling(0.5) == pytest.approx(0.6359, abs=1e-4)
    assert nc.implied_ceiling(1.0) == pytest.approx(1.0) and nc.implied_ceiling(0.0) == 0.0
