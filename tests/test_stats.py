"""Across-seed statistics: intervals against NumPy/SciPy, verdict rules on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from dimcollapse.stats import (
    SIGN_TEST_SEEDS,
    Judgement,
    holm,
    holm_verdict,
    interval95,
    judge_greater,
    judge_same,
    paired_differences,
    sign_test_seeds,
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
    # identical differences: a zero-width interval that does not decide from few seeds
    assert verdict_greater([2.0, 2.0]) == ("inconclusive", [2.0, 2.0])
    assert verdict_greater([0.0, 0.0, 0.0])[0] == "inconclusive"


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


def test_the_sign_rule_needs_six_agreeing_seeds_at_95_percent():
    # 2^-(K-1) <= 0.05 first at K = 6 (2^-5 = 0.031; K = 5 gives 0.0625)
    assert SIGN_TEST_SEEDS == sign_test_seeds(0.95) == 6
    assert sign_test_seeds(0.9) == 5 and sign_test_seeds(0.99) == 8
    for k in range(2, 6):
        j = judge_greater([1.0] * k)
        assert (j.verdict, j.rule, j.ci95) == ("inconclusive", "sign", [1.0, 1.0])
        assert j.p == pytest.approx(2.0 ** -(k - 1))
    assert judge_greater([1.0] * 6).verdict == "holds"
    assert judge_greater([-0.5] * 7).verdict == "fails"
    # ties carry no sign: a difference (or count) that is 0 in every seed is no evidence
    # either way, p = 1, however many seeds (the report says the effect does not appear)
    for k in (3, 6, 10):
        j = judge_greater([0.0] * k)
        assert (j.verdict, j.p, j.rule) == ("inconclusive", 1.0, "sign")
    assert judge_same([0.0] * 6, 1.0).p == 1.0
    # the same rule for "about the same", both ways
    assert judge_same([0.2] * 3, 1.0).verdict == "inconclusive"
    assert judge_same([0.2] * 6, 1.0).verdict == "holds"
    assert judge_same([3.0] * 6, 1.0).verdict == "fails"
    # equal only to rounding still counts as zero variance
    assert judge_greater([339.3, 339.3 + 1e-13, 339.3]).rule == "sign"


def test_p_values_match_scipy_and_agree_with_the_interval():
    rng = np.random.default_rng(1)
    for k in (2, 3, 5, 8):
        for shift in (0.0, 0.5, 2.0, -1.5):
            d = rng.normal(shift, 1.0, size=k)
            j = judge_greater(d.tolist())
            ref = sps.ttest_1samp(d, 0.0).pvalue
            assert j.p == pytest.approx(ref, rel=1e-9)
            # decisive exactly when p <= 0.05, on the side the mean is on
            assert (j.verdict != "inconclusive") == (j.p <= 0.05)
            if j.verdict == "holds":
                assert d.mean() > 0


def test_equivalence_p_is_two_one_sided_tests_at_the_95_percent_interval():
    rng = np.random.default_rng(2)
    for _ in range(40):
        k = int(rng.integers(2, 9))
        d = rng.normal(rng.normal(0, 1), rng.uniform(0.1, 1.0), size=k)
        margin = float(rng.uniform(0.2, 2.0))
        j = judge_same(d.tolist(), margin)
        # each one-sided test against a bound, from SciPy
        lower = sps.ttest_1samp(d, -margin, alternative="greater").pvalue
        upper = sps.ttest_1samp(d, margin, alternative="less").pvalue
        if j.verdict == "holds":
            assert j.p == pytest.approx(min(1.0, 2 * max(lower, upper)), rel=1e-9)
        assert (j.verdict != "inconclusive") == (j.p <= 0.05 + 1e-12)


def test_holm_on_a_hand_example():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06)
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # the step-down stops at 0.03: 0.04 alone would pass 0.05 but is not rejected
    verdicts = [holm_verdict(Judgement("holds", [1, 2], p, "t"), a) for p, a in
                zip([0.01, 0.04, 0.03, 0.005], adjusted)]  # fmt: skip
    assert verdicts == ["holds", "inconclusive", "inconclusive", "holds"]
    # None is not a test: left out of m
    assert holm([None, 0.02, 0.04]) == [None, pytest.approx(0.04), pytest.approx(0.04)]
    assert holm([0.5, 0.9]) == [pytest.approx(1.0), pytest.approx(1.0)]
    # adjustment never turns an inconclusive verdict into a decision
    assert holm_verdict(Judgement("inconclusive", [-1, 1], 0.001, "t"), 0.001) == "inconclusive"
    assert holm_verdict(Judgement("fails", [-2, -1], 0.01, "t"), 0.04) == "fails"
