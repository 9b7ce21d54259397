"""Across-seed statistics: intervals against NumPy/SciPy, verdict rules on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from dimcollapse.stats import (
    interval95,
    paired_differences,
    t_quantile,
    verdict_all,
    verdict_counts,
    verdict_greater,
    verdict_same,
)


def test_interval_matches_an_independent_float64_reference():
    rng = np.random.default_rng(0)
    for k in (2, 3, 5, 10):
        x = rng.normal(3.0, 2.0, size=k)
        lo, hi = interval95(x.tolist())
        ref = sps.t.interval(0.95, k - 1, loc=x.mean(), scale=sps.sem(x))
        assert lo == pytest.approx(ref[0], rel=1e-12) and hi == pytest.approx(ref[1], rel=1e-12)


def test_t_quantile_is_the_textbook_value():
    assert t_quantile(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(2) == pytest.approx(4.3027, abs=1e-4)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_one_seed_has_no_interval_and_no_verdict():
    assert interval95([1.0]) is None
    assert verdict_greater([5.0]) == ("inconclusive", None)
    assert verdict_same([0.0], 1.0) == ("inconclusive", None)


def test_ordering_verdicts():
    assert verdict_greater([1.0, 1.2, 0.9])[0] == "holds"
    assert verdict_greater([-1.0, -1.2, -0.9])[0] == "fails"
    assert verdict_greater([1.0, -1.0, 0.5])[0] == "inconclusive"
    # identical differences: a zero-width interval, all seeds agree
    assert verdict_greater([2.0, 2.0]) == ("holds", [2.0, 2.0])
    # no collapsed dimension in any seed: "has collapsed dimensions" fails
    assert verdict_greater([0.0, 0.0, 0.0])[0] == "fails"


def test_same_within_a_margin():
    assert verdict_same([0.1, -0.1, 0.05], 1.0)[0] == "holds"
    assert verdict_same([5.0, 5.2, 4.9], 1.0)[0] == "fails"
    assert verdict_same([0.5, 2.5, -1.0], 1.0)[0] == "inconclusive"
    with pytest.raises(ValueError):
        verdict_same([0.0, 0.0], 0.0)


def test_pairs_and_counts():
    assert paired_differences([3, 4], [1, 1]) == [2.0, 3.0]
    with pytest.raises(ValueError):
        paired_differences([1, 2], [1])
    assert verdict_all(["holds", "holds"]) == "holds"
    assert verdict_all(["holds", "fails"]) == "fails"
    assert verdict_all(["holds", "inconclusive"]) == "inconclusive"
    assert verdict_counts(["holds"] * 7 + ["fails"] + ["inconclusive"] * 2) == (
        "7 hold, 1 fails, 2 inconclusive"
    )
    assert verdict_counts(["holds"]) == "1 holds"
