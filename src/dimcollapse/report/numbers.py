"""How the report writes numbers: percentages, intervals, durations, seeds and verdicts.

Results are fractions in ``[0, 1]`` for accuracies, plain numbers otherwise; a missing value
(``None``) is written ``n/a``. A result's 95% interval sits beside its value under the key
``<key>_ci95`` (absent or empty with one seed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def number(x: float | None, digits: int = 1) -> str:
    """``12.3``, or ``n/a``; a value that rounds to zero is ``0.0``, never ``-0.0``."""
    if x is None:
        return "n/a"
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def signed(x: float | None, digits: int = 1) -> str:
    """``+0.8``, ``-0.7``; ``0.0`` (no sign) for a value that rounds to zero."""
    text = number(x, digits)
    return text if text == "n/a" or text.startswith("-") or float(text) == 0 else "+" + text


def count(x: float | None) -> str:
    """A count, or a mean of counts: ``15`` when whole, else one decimal, ``15.3``."""
    if x is None:
        return "n/a"
    return f"{round(x):d}" if abs(x - round(x)) < 1e-9 else number(x, 1)


def ratio(x: float | None) -> str:
    """A small ratio such as sigma_k / sigma_1, in two significant digits: ``4.8e-05``."""
    return "n/a" if x is None else ("0" if x == 0 else f"{x:.1e}")


def threshold(t: float) -> str:
    """A collapse threshold (a fraction of sigma_1): ``1e-5``, ``3e-6``."""
    mantissa, exponent = f"{t:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def p_value(p: float | None) -> str:
    """``p = 0.012``; ``p < 0.001``; ``n/a``."""
    if p is None:
        return "n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage without the sign: ``0.812`` -> ``81.2``."""
    return "n/a" if fraction is None else f"{100 * fraction:.1f}"


def interval(ci: Sequence[float] | None, digits: int = 1) -> str:
    """`` [lo, hi]`` with its leading space, or nothing without an interval."""
    return "" if not ci else f" [{number(ci[0], digits)}, {number(ci[1], digits)}]"


def percent_with_interval(result: Mapping[str, Any], key: str = "top1") -> str:
    """A result's fraction as a percentage with its interval, ``81.2 [80.1, 82.3]``."""
    ci = result.get(f"{key}_ci95")
    return percent(result.get(key)) + interval(ci and [100 * ci[0], 100 * ci[1]])


def number_with_interval(result: Mapping[str, Any], key: str, digits: int = 1) -> str:
    """A result's value with its interval, ``41.7 [39.0, 44.4]``."""
    return number(result.get(key), digits) + interval(result.get(f"{key}_ci95"), digits)


def duration(seconds: float | None) -> str:
    """``95 s``; from two minutes on also in minutes, ``300 s (5.0 min)``."""
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def seeds_text(seeds: Sequence[int]) -> str:
    """``one seed (0)`` or ``3 seeds (0, 1, 2) per method``."""
    if len(seeds) == 1:
        return f"one seed ({seeds[0]})"
    return f"{len(seeds)} seeds ({', '.join(str(x) for x in seeds)}) per method"


def verdict_text(verdict: str) -> str:
    """A claim's verdict; a failing claim in bold, so that it stands out of its table."""
    return {"holds": "holds", "fails": "**fails**", "inconclusive": "inconclusive"}[verdict]
