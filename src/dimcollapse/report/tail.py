"""The collapsed tail of a run's spectra, counted as the paper looks at it.

The paper's Figs. 2, 7b and 9 show covariance singular values that "drop to zero" on a log
axis: a cliff; its code (``spectrum.py``) L2-normalises each vector first. So a run's collapse
is counted here

* by the cliff rule (:func:`rule_counts`, :func:`dimcollapse.spectrum.metrics.cliff_collapse`),
  with dead (constant) coordinates apart (:func:`dead_counts`): what the claims are decided on;

* at several thresholds, a secondary table (fractions of sigma_1, :data:`dimcollapse.spectrum.metrics.
  COLLAPSE_THRESHOLDS`, or those ``reproduce.json`` recorded), from each seed's own
  ``singular_values``;
* on the row-normalised vectors (``representation_normalized``, ``embedding_normalized``) when
  every seed has them, on the raw vectors otherwise (older ``reproduce.json``); both are shown.

A spectrum summary without ``singular_values`` (small hand-made results) still gives its
``collapsed_dims`` at its own ``rel_tol``; the other thresholds are then unknown (None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.manifest import Manifest
from dimcollapse.spectrum.metrics import (
    COLLAPSE_THRESHOLDS,
    DEFAULT_REL_TOL,
    FLOAT32_EPS,
    cliff_collapse,
    collapsed_counts,
    numerical_floor,
    smallest_ratio,
)

#: The threshold the claims are decided at (the others are shown beside it); it is
#: ``dimcollapse.spectrum.metrics.DEFAULT_REL_TOL``, repeated here to keep torch out of imports.
PRIMARY_THRESHOLD = 1e-5


def default_thresholds() -> tuple[float, ...]:

    assert DEFAULT_REL_TOL == PRIMARY_THRESHOLD
    return tuple(COLLAPSE_THRESHOLDS)


def thresholds_of(manifest: Manifest | Mapping[str, Any]) -> tuple[float, ...]:
    """The thresholds ``reproduce.json`` recorded (top level, or in a run's spectrum summary),
    else :data:`~dimcollapse.spectrum.metrics.COLLAPSE_THRESHOLDS`."""
    manifest = Manifest.of(manifest)
    recorded = manifest.collapse_thresholds
    if not recorded:
        for run in manifest.runs.values():
            recorded = (run.get("representation") or {}).get("collapse_thresholds")
            if recorded:
                break
    return tuple(float(t) for t in recorded) if recorded else default_thresholds()


def seeds_of(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Each seed's own result (a result without ``seeds`` counts as one seed)."""
    return list(run.get("seeds") or [run])


def has_normalized(run: Mapping[str, Any], space: str) -> bool:
    """Every seed (and the run) has the row-normalised summary of ``space``."""
    key = f"{space}_normalized"
    return isinstance(run.get(key), Mapping) and all(
        isinstance(s.get(key), Mapping) for s in seeds_of(run)
    )


def measured_space(run: Mapping[str, Any], space: str) -> str:
    """The summary the paper's measure reads: ``<space>_normalized`` when present, else
    ``space`` (raw vectors)."""
    return f"{space}_normalized" if has_normalized(run, space) else space


def measured_summary(run: Mapping[str, Any], space: str) -> Mapping[str, Any]:
    """The spectrum summary the paper's measure reads (:func:`measured_space`'s)."""
    return run[measured_space(run, space)]


def seed_counts(
    run: Mapping[str, Any], key: str, thresholds: Sequence[float]
) -> list[list[int | None]] | None:
    """Per seed, the collapsed count at each threshold (None where it cannot be known); None
    when a seed lacks the summary ``key``."""
    out = []
    for seed in seeds_of(run):
        summary = seed.get(key)
        if not isinstance(summary, Mapping):
            return None
        sv = summary.get("singular_values")
        if sv:
            out.append(list(collapsed_counts(sv, thresholds)))
            continue
        rel_tol = float(summary.get("rel_tol", PRIMARY_THRESHOLD))
        known = summary.get("collapsed_dims")
        out.append(
            [
                int(known) if known is not None and _same_threshold(t, rel_tol) else None
                for t in thresholds
            ]
        )
    return out


def counts_at(
    run: Mapping[str, Any], key: str, thresholds: Sequence[float], threshold: float
) -> list[float] | None:
    """Per seed, the collapsed count at one of ``thresholds``; None when any seed lacks it."""
    per_seed = seed_counts(run, key, thresholds)
    index = next((i for i, t in enumerate(thresholds) if _same_threshold(t, threshold)), None)
    if per_seed is None or index is None:
        return None
    values = [row[index] for row in per_seed]
    return None if any(v is None for v in values) else [float(v) for v in values]  # type: ignore[arg-type]


def _cliff_of(summary: Mapping[str, Any]) -> tuple[int, int, float | None] | None:
    """(collapsed, dead, largest drop in decades) of one seed's summary by the cliff rule: as
    recorded when the summary was counted by it, else recomputed from its singular values (an
    older ``reproduce.json``: dead coordinates unknown, taken as none; float32's floor). A
    summary without singular values gives its own ``collapsed_dims``."""
    recorded = summary.get("collapse_rule") == "cliff" or not summary.get("singular_values")
    if recorded and summary.get("collapsed_dims") is not None:  # hand-made: its own count
        dead = len(summary.get("dead_dims") or [])
        return int(summary["collapsed_dims"]), dead, summary.get("cliff_decades")
    sv = summary.get("singular_values")
    if not sv:
        return None
    floor = numerical_floor(FLOAT32_EPS, float(sum(sv)), float(max(sv)))
    cliff = cliff_collapse(sv, floor=floor)
    return cliff.collapsed, 0, cliff.drop_decades


def _per_seed_cliff(run: Mapping[str, Any], key: str, index: int) -> list[Any] | None:
    out = []
    for seed in seeds_of(run):
        summary = seed.get(key)
        got = _cliff_of(summary) if isinstance(summary, Mapping) else None
        if got is None:
            return None
        out.append(got[index])
    return out


def rule_counts(run: Mapping[str, Any], key: str) -> list[float] | None:
    """Per seed, the collapsed dimensions of summary ``key`` by the cliff rule (dead apart);
    None when a seed lacks them."""
    got = _per_seed_cliff(run, key, 0)
    return None if got is None else [float(v) for v in got]


def dead_counts(run: Mapping[str, Any], key: str) -> list[int] | None:
    """Per seed, how many dead (constant) coordinates summary ``key`` has."""
    got = _per_seed_cliff(run, key, 1)
    return None if got is None else [int(v) for v in got]


def mean_rule_collapse(run: Mapping[str, Any], space: str) -> tuple[float, float]:
    """The mean over seeds of the collapsed dimensions of ``space`` by the cliff rule and of
    its dead coordinates (set apart), on the summary the paper's measure reads
    (:func:`measured_space`); a summary that gives no per-seed count (a hand-made one) gives
    its own ``collapsed_dims`` and no dead coordinates."""
    key = measured_space(run, space)
    rule, dead = rule_counts(run, key), dead_counts(run, key)
    collapsed = run[key]["collapsed_dims"] if rule is None else sum(rule) / len(rule)
    return collapsed, (sum(dead) / len(dead) if dead else 0.0)


def largest_drops(run: Mapping[str, Any], key: str) -> list[float] | None:
    """Per seed, the largest drop between neighbouring live singular values, in decades."""
    got = _per_seed_cliff(run, key, 2)
    return None if got is None or any(v is None for v in got) else [float(v) for v in got]


def smallest_ratios(run: Mapping[str, Any], key: str) -> list[float] | None:
    """Per seed, ``sigma_min / sigma_1`` of the summary ``key`` (None without spectra)."""
    out = []
    for seed in seeds_of(run):
        summary = seed.get(key)
        sv = summary.get("singular_values") if isinstance(summary, Mapping) else None
        ratio = smallest_ratio(sv) if sv else None
        if ratio is None:
            return None
        out.append(ratio)
    return out


def mean_counts(
    run: Mapping[str, Any], key: str, thresholds: Sequence[float]
) -> list[float | None] | None:
    """The mean over seeds of the collapsed count at each threshold (for the figure)."""
    per_seed = seed_counts(run, key, thresholds)
    if per_seed is None:
        return None
    means: list[float | None] = []
    for i in range(len(thresholds)):
        column = [row[i] for row in per_seed]
        means.append(
            None if any(v is None for v in column) else sum(column) / len(column)  # type: ignore[arg-type,misc]
        )
    return means


def space_text(key: str) -> str:
    """``r (row-normalised)``, ``z (raw)``, ..."""
    letter = "r" if key.startswith("representation") else "z"
    return f"{letter} ({'row-normalised' if key.endswith('_normalized') else 'raw'})"


def _same_threshold(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= 1e-9 * max(abs(float(a)), abs(float(b)))
