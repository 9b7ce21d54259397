"""Across-seed statistics for the reproduction: means, 95% intervals, and claim verdicts.

A claim such as "SimCLR with a linear projector beats no projector" is judged from K seeds,
each seed training every method once (same data order, augmentation stream and test images).
The judge is the **paired difference** per seed, ``d_s = a_s - b_s``, and the two-sided 95%
Student-t interval of its mean, ``mean(d) +- t_{0.975, K-1} * sd(d) / sqrt(K)``:

* an ordering claim ``a > b`` **holds** when the interval lies above 0, **fails** when no part
  of it lies above 0, and is **inconclusive** otherwise (it straddles 0);
* an "about the same" claim with margin ``m`` **holds** when the interval lies inside
  ``[-m, m]``, **fails** when it lies wholly outside it, and is **inconclusive** otherwise;
* an existence claim ("the embedding has collapsed dimensions") is the same test on the
  per-seed values themselves: it holds when their interval lies above 0.

With one seed there is no interval: every verdict is ``inconclusive``.

**Zero variance.** When all K values are equal (a deterministic quantity such as the raw pixels'
RankMe, or a count that comes out the same in every seed), the t-interval has zero width and
would decide from any two seeds. It does not decide here: the verdict then comes from a **sign
test**, whose only evidence is that all K seeds agree. Under the null hypothesis (each seed's
difference as likely above as below the line) that happens by chance with probability
``2 ** -(K - 1)`` (two-sided), which is at most ``1 - CONFIDENCE = 0.05`` only from
:data:`SIGN_TEST_SEEDS` = 6 seeds (5 seeds: 0.0625). So with fewer than 6 seeds a zero-variance
comparison is ``inconclusive``; with 6 or more it decides like the interval would. Ties carry
no sign: when every difference is exactly 0 (e.g. two methods with 0 collapsed dimensions in
every seed) the sign test has no evidence at all, p = 1, and the verdict is ``inconclusive``
whatever the number of seeds.

**Levels.** Every verdict is read at the 95% level *per claim*. Each judgement also carries the
two-sided p-value of the decision it states (:class:`Judgement`; decisive exactly when
``p <= 0.05``), so that a family of claims can be adjusted with Holm's step-down method
(:func:`holm`): a verdict survives when its Holm-adjusted p-value is at most 0.05, which bounds
the chance of any wrong decision in the family by 5% whatever the dependence between claims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import t as student_t

VERDICTS = ("holds", "fails", "inconclusive")
CONFIDENCE = 0.95
#: The level a decision is read at (two-sided), per claim or after Holm's adjustment.
ALPHA = 1.0 - CONFIDENCE


def sign_test_seeds(confidence: float = CONFIDENCE) -> int:
    """The fewest seeds K whose unanimous agreement a two-sided sign test accepts:
    ``2 ** -(K - 1) <= 1 - confidence`` (6 at 95%)."""
    k = 2
    while 2.0 ** -(k - 1) > (1.0 - confidence) * (1 + 1e-12):
        k += 1
    return k


#: With zero variance, the fewest seeds that may decide (:func:`sign_test_seeds`).
SIGN_TEST_SEEDS = sign_test_seeds()


@dataclass(frozen=True)
class Judgement:
    """One test's outcome: ``verdict``, the ``ci95`` it was read from, ``p`` (two-sided p-value
    of the decision the verdict states, or of the nearer one when inconclusive; None without a
    test) and ``rule`` (``"t"``, ``"sign"`` for zero variance, ``"none"`` for one seed)."""

    verdict: str
    ci95: list[float] | None
    p: float | None
    rule: str

    def pair(self) -> tuple[str, list[float] | None]:
        return self.verdict, self.ci95


def _t_sf(x: float, df: int) -> float:
    """The upper tail ``P(T_df > x)`` of Student's t (SciPy)."""
    return float(student_t.sf(x, df))


def is_constant(values: Sequence[float]) -> bool:
    """All values equal (to rounding: 1e-12 of their magnitude)."""
    vals = [float(v) for v in values]
    scale = max([1.0] + [abs(v) for v in vals])
    return bool(vals) and max(vals) - min(vals) <= 1e-12 * scale


def _sign_judgement(value: float, k: int, holds: bool) -> Judgement:
    """Zero variance: K agreeing seeds decide only from :data:`SIGN_TEST_SEEDS` on. Ties carry
    no sign: when every difference is 0 there is no evidence either way (p = 1)."""
    if value == 0.0:
        return Judgement("inconclusive", [value, value], 1.0, "sign")
    p = 2.0 ** -(k - 1)
    if k < SIGN_TEST_SEEDS:
        return Judgement("inconclusive", [value, value], p, "sign")
    return Judgement("holds" if holds else "fails", [value, value], p, "sign")


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    vals = [float(v) for v in values]
    k = len(vals)
    m = sum(vals) / k
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (k - 1))
    return m, sd / math.sqrt(k)


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value ``t_{(1+confidence)/2, df}`` (SciPy)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    return float(student_t.ppf(0.5 + confidence / 2, df))


def mean(values: Sequence[float]) -> float | None:
    """The mean of ``values``, or None when there are none."""
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else None


def interval95(values: Sequence[float]) -> list[float] | None:
    """The 95% t-interval ``[lo, hi]`` of the mean of ``values``; None for fewer than 2 values."""
    vals = [float(v) for v in values]
    k = len(vals)
    if k < 2:
        return None
    m = sum(vals) / k
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (k - 1))
    half = t_quantile(k - 1) * sd / math.sqrt(k)
    return [m - half, m + half]


def paired_differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a_s - b_s`` for each seed ``s`` (the two lists are in the same seed order)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same seeds: {len(a)} vs {len(b)}")
    return [float(x) - float(y) for x, y in zip(a, b)]


def judge_greater(differences: Sequence[float]) -> Judgement:
    """Test of ``a > b`` from the paired differences ``a_s - b_s`` (see the module's rules)."""
    k = len(differences)
    if k < 2:
        return Judgement("inconclusive", None, None, "none")
    if is_constant(differences):
        value = float(differences[0])
        return _sign_judgement(value, k, holds=value > 0)
    ci = interval95(differences)
    assert ci is not None
    m, se = _mean_se(differences)
    p = min(1.0, 2.0 * _t_sf(abs(m) / se, k - 1))
    if ci[0] > 0:
        return Judgement("holds", ci, p, "t")
    if ci[1] <= 0:
        return Judgement("fails", ci, p, "t")
    return Judgement("inconclusive", ci, p, "t")


def judge_same(differences: Sequence[float], margin: float) -> Judgement:
    """Test of ``|a - b| <= margin`` from the paired differences (two one-sided tests, each at
    2.5%: the 95% interval inside ``[-margin, margin]``)."""
    if margin <= 0:
        raise ValueError(f"the margin must be positive, got {margin}")
    k = len(differences)
    if k < 2:
        return Judgement("inconclusive", None, None, "none")
    if is_constant(differences):
        value = float(differences[0])
        return _sign_judgement(value, k, holds=abs(value) <= margin)
    ci = interval95(differences)
    assert ci is not None
    m, se = _mean_se(differences)
    df = k - 1
    p_holds = 2.0 * max(_t_sf((m + margin) / se, df), _t_sf((margin - m) / se, df))
    p_fails = 2.0 * min(_t_sf((m - margin) / se, df), _t_sf((-margin - m) / se, df))
    if -margin <= ci[0] and ci[1] <= margin:
        return Judgement("holds", ci, min(1.0, p_holds), "t")
    if ci[0] > margin or ci[1] < -margin:
        return Judgement("fails", ci, min(1.0, p_fails), "t")
    return Judgement("inconclusive", ci, min(1.0, p_holds, p_fails), "t")


def verdict_greater(differences: Sequence[float]) -> tuple[str, list[float] | None]:
    """Verdict of ``a > b`` from the paired differences ``a_s - b_s``; returns (verdict, CI)."""
    return judge_greater(differences).pair()


def verdict_same(differences: Sequence[float], margin: float) -> tuple[str, list[float] | None]:
    """Verdict of ``|a - b| <= margin`` from the paired differences; returns (verdict, CI)."""
    return judge_same(differences, margin).pair()


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the order given (None: not a test; left out).

    Sorted ascending, ``p_(i)`` (i = 1..m) becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    a hypothesis is rejected at level alpha when its adjusted value is at most alpha.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * float(p)))
        out[i] = running
    return out


def holm_verdict(judgement: Judgement, adjusted_p: float | None) -> str:
    """The judgement's verdict if its Holm-adjusted p-value is at most :data:`ALPHA`, else
    ``inconclusive`` (adjustment never turns an inconclusive verdict into a decision)."""
    if judgement.verdict == "inconclusive" or adjusted_p is None:
        return "inconclusive"
    return judgement.verdict if adjusted_p <= ALPHA * (1 + 1e-12) else "inconclusive"


def verdict_all(verdicts: Sequence[str]) -> str:
    """A conjunction of sub-claims (``a > b > c``): holds if all hold, fails if any fails."""
    if any(v == "fails" for v in verdicts):
        return "fails"
    if verdicts and all(v == "holds" for v in verdicts):
        return "holds"
    return "inconclusive"


def verdict_counts(verdicts: Sequence[str]) -> str:
    """``"7 hold, 1 fails, 2 inconclusive"`` (only the non-zero counts)."""
    n = {v: sum(1 for x in verdicts if x == v) for v in VERDICTS}
    parts = []
    if n["holds"]:
        parts.append(f"{n['holds']} hold" + ("s" if n["holds"] == 1 else ""))
    if n["fails"]:
        parts.append(f"{n['fails']} fail" + ("s" if n["fails"] == 1 else ""))
    if n["inconclusive"]:
        parts.append(f"{n['inconclusive']} inconclusive")
    return ", ".join(parts) or "no claims"
