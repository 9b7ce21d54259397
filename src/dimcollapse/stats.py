"""Across-seed statistics for the reproduction: means, 95% intervals, and claim verdicts.

A claim such as "SimCLR with a linear projector beats no projector" is judged from K seeds,
each seed training every method once (same data order, augmentation stream and test images).
The judge is the **paired difference** per seed, ``d_s = a_s - b_s``, and the two-sided 95%
Student-t interval of its mean, ``mean(d) +- t_{0.975, K-1} * sd(d) / sqrt(K)``:

* an ordering claim ``a > b`` **holds** when the interval lies above 0, **fails** when no part
  of it lies above 0 (so equal values in every seed fail ``a > b``), and is **inconclusive**
  otherwise (it straddles 0);
* an "about the same" claim with margin ``m`` **holds** when the interval lies inside
  ``[-m, m]``, **fails** when it lies wholly outside it, and is **inconclusive** otherwise;
* an existence claim ("the embedding has collapsed dimensions") is the same test on the
  per-seed values themselves: it holds when their interval lies above 0.

With one seed there is no interval: every verdict is ``inconclusive``. When all K values agree
exactly the interval has zero width (the test then reads as a sign test that all seeds agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

VERDICTS = ("holds", "fails", "inconclusive")
CONFIDENCE = 0.95


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value ``t_{(1+confidence)/2, df}`` (SciPy)."""
    from scipy.stats import t

    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    return float(t.ppf(0.5 + confidence / 2, df))


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


def verdict_greater(differences: Sequence[float]) -> tuple[str, list[float] | None]:
    """Verdict of ``a > b`` from the paired differences ``a_s - b_s``; returns (verdict, CI)."""
    ci = interval95(differences)
    if ci is None:
        return "inconclusive", None
    if ci[0] > 0:
        return "holds", ci
    if ci[1] <= 0:
        return "fails", ci
    return "inconclusive", ci


def verdict_same(differences: Sequence[float], margin: float) -> tuple[str, list[float] | None]:
    """Verdict of ``|a - b| <= margin`` from the paired differences; returns (verdict, CI)."""
    if margin <= 0:
        raise ValueError(f"the margin must be positive, got {margin}")
    ci = interval95(differences)
    if ci is None:
        return "inconclusive", None
    if -margin <= ci[0] and ci[1] <= margin:
        return "holds", ci
    if ci[0] > margin or ci[1] < -margin:
        return "fails", ci
    return "inconclusive", ci


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
