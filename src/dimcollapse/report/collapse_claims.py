"""The paper's collapse claims (Figs. 2, 7b, 9c), judged on the collapsed tail.

The paper reads collapse off the right end of a log-scale spectrum: singular values of the
covariance that "drop to zero", a cliff of many orders. So these claims are decided by the
cliff rule (:func:`dimcollapse.spectrum.metrics.cliff_collapse`: the values past a drop of at
least 3 decades between neighbours, or under the input's rounding floor), counted per seed
(:mod:`dimcollapse.report.tail`) with dead (constant) coordinates apart, on the row-normalised
vectors when recorded (as the paper's ``spectrum.py`` does). The counts under thresholds
(1e-4 ... ) are a secondary line, RankMe another; neither decides. When the method that should
collapse shows no collapsed dimension in any seed, the text says that the effect does not
appear, with the largest drop its spectrum has, rather than reading the comparison as a
reversal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.report.judge import Judge, test_record
from dimcollapse.report.numbers import count, interval, number, ratio, threshold
from dimcollapse.report.tail import (
    counts_at,
    dead_counts,
    has_normalized,
    largest_drops,
    rule_counts,
    smallest_ratios,
    space_text,
    thresholds_of,
)
from dimcollapse.stats import judge_greater, mean, paired_differences

#: (claim, the run that should collapse, the run that should not, the paper's evidence)
REPRESENTATION_CLAIMS = (
    (
        "Without a projector the representation collapses more than with one (Fig. 7b)",
        "simclr-none",
        "simclr-mlp",
        "more singular values of r drop to zero without a projector",
    ),
    (
        "DirectCLR keeps the representation from collapsing, unlike SimCLR without a "
        "projector (Fig. 9c)",
        "simclr-none",
        "directclr",
        "SimCLR without a projector: more singular values of r drop to zero than DirectCLR's",
    ),
)


def collapse_claims(judge: Judge) -> None:
    """Append Fig. 2's claim and those of Figs. 7b and 9c to ``judge``."""
    thresholds = thresholds_of(judge.manifest)
    first = len(judge.claims)
    _embedding_claim(judge, thresholds)
    for claim, collapsed, healthy, paper in REPRESENTATION_CLAIMS:
        _representation_claim(judge, thresholds, claim, collapsed, healthy, paper)
    _note_shared_runs(judge.claims[first:])


def _embedding_claim(judge: Judge, thresholds: Sequence[float]) -> None:
    claim = "The embedding of SimCLR (MLP projector) has collapsed dimensions (Fig. 2)"
    paper = "about 30 of 128 singular values drop to zero"
    run = judge.runs.get("simclr-mlp")
    key = _key([run] if run else [], "embedding")
    counts = None if run is None else rule_counts(run, key)
    if run is None or counts is None:
        judge.unavailable(claim, paper)
        return
    judgement = judge_greater(counts)
    dim = (run.get(key) or run.get("embedding") or {}).get("dim", "?")
    per = ", ".join(count(c) for c in counts)
    ours = (
        f"by the cliff rule: {count(mean(counts))}{interval(judgement.ci95)} of {dim} collapsed "
        f"in {space_text(key)} (per seed: {per})"
    )
    ours += _drops_text(run, key)
    if all(c == 0 for c in counts):
        ours += "; " + _absent_text(run, key, "simclr-mlp", "z")
    notes = [
        _thresholds_line(run, key, thresholds, "simclr-mlp"),
        _dead_line(run, key, "simclr-mlp"),
    ]
    notes += _raw_beside(run, key, "simclr-mlp")
    test = test_record("collapsed dims of z (cliff rule) > 0", judgement, ("simclr-mlp",))
    judge.add(claim, paper, ours, [test], notes=[n for n in notes if n])


def _representation_claim(
    judge: Judge,
    thresholds: Sequence[float],
    claim: str,
    collapsed: str,
    healthy: str,
    paper: str,
) -> None:
    ra, rb = judge.runs.get(collapsed), judge.runs.get(healthy)
    key = _key([r for r in (ra, rb) if r], "representation")
    ca = None if ra is None else rule_counts(ra, key)
    cb = None if rb is None else rule_counts(rb, key)
    if ca is None or cb is None or len(ca) != len(cb):
        judge.unavailable(claim, paper)
        return
    diffs = paired_differences(ca, cb)
    judgement = judge_greater(diffs)
    ours = (
        f"collapsed dims of {space_text(key)} by the cliff rule: "
        f"{count(mean(ca))} ({collapsed}) vs {count(mean(cb))} ({healthy}); {collapsed} - "
        f"{healthy}: {number(mean(diffs))}{interval(judgement.ci95)}"
    )
    ours += _drops_text(ra, key, collapsed)  # type: ignore[arg-type]
    if all(c == 0 for c in ca):
        ours += "; " + _absent_text(ra, key, collapsed, "r")  # type: ignore[arg-type]
    others = _other_thresholds(ra, rb, key, thresholds, collapsed, healthy)  # type: ignore[arg-type]
    notes = [f"secondary, counts under thresholds (do not decide): {others}" if others else None]
    notes += [_dead_line(ra, key, collapsed), _dead_line(rb, key, healthy)]  # type: ignore[arg-type]
    notes.append(_rankme_line(judge, ra, rb, key, collapsed, healthy))  # type: ignore[arg-type]
    test = test_record(
        f"collapsed dims of r (cliff rule): {collapsed} > {healthy}",
        judgement,
        (collapsed, healthy),
    )
    judge.add(claim, paper, ours, [test], notes=[n for n in notes if n])


def _drops_text(run: Mapping[str, Any], key: str, name: str | None = None) -> str:
    """``; largest drop per seed: 0.4, 0.5, 9.1 decades`` (a cliff is >= 3)."""
    drops = largest_drops(run, key)
    if not drops:
        return ""
    who = f" of {name}" if name else ""
    per = ", ".join(f"{d:.1f}" for d in drops)
    return f"; largest drop between neighbours{who} per seed: {per} decades (a cliff is >= 3)"


def _dead_line(run: Mapping[str, Any] | None, key: str, name: str) -> str | None:
    """Dead (constant) coordinates, set apart: never counted as collapse."""
    dead = None if run is None else dead_counts(run, key)
    if not dead or not any(dead):
        return None
    return (
        f"{name}: dead (constant) coordinates of {space_text(key)}, set apart and not counted "
        f"as collapsed, per seed: {', '.join(str(d) for d in dead)}"
    )


def _thresholds_line(
    run: Mapping[str, Any], key: str, thresholds: Sequence[float], name: str
) -> str | None:
    """The secondary table: mean counts under each threshold (including dead coordinates'
    zeros when the spectrum was recorded with them)."""
    parts = []
    for t in thresholds:
        values = counts_at(run, key, thresholds, t)
        if values is not None:
            parts.append(f"{threshold(t)}: {count(mean(values))}")
    if not parts:
        return None
    return f"secondary, {name} counts under thresholds (do not decide): {', '.join(parts)}"


def _key(runs: Sequence[Mapping[str, Any]], space: str) -> str:
    """The normalised summary when every run compared has it, the raw one otherwise."""
    return f"{space}_normalized" if runs and all(has_normalized(r, space) for r in runs) else space


def _other_thresholds(
    ra: Mapping[str, Any],
    rb: Mapping[str, Any],
    key: str,
    thresholds: Sequence[float],
    collapsed: str,
    healthy: str,
) -> str:
    parts = []
    for t in thresholds:
        ca, cb = counts_at(ra, key, thresholds, t), counts_at(rb, key, thresholds, t)
        if ca is None or cb is None:
            continue
        verdict = judge_greater(paired_differences(ca, cb)).verdict
        parts.append(f"{threshold(t)}: {count(mean(ca))} vs {count(mean(cb))} ({verdict})")
    return ", ".join(parts)


def _absent_text(run: Mapping[str, Any], key: str, name: str, letter: str) -> str:
    """ "the effect does not appear: ..." with the largest drop and depth the spectrum has."""
    text = (
        f"the effect does not appear: no seed of {name} has a cliff in the spectrum of "
        f"{letter} (a drop of >= 3 decades between neighbours)"
    )
    ratios = smallest_ratios(run, key)
    if ratios:
        text += f"; smallest sigma_k/sigma_1 over its seeds: {ratio(min(ratios))}"
    return text


def _rankme_line(
    judge: Judge,
    ra: Mapping[str, Any],
    rb: Mapping[str, Any],
    key: str,
    collapsed: str,
    healthy: str,
) -> str | None:
    """RankMe of r as a second line (it does not decide the claim; outside Holm's family)."""
    a, b = judge.rep(collapsed, "rankme", key), judge.rep(healthy, "rankme", key)
    if a is None or b is None or len(a) != len(b):
        return None
    diffs = paired_differences(b, a)
    judgement = judge_greater(diffs)
    return (
        f"second line, RankMe of {space_text(key)} (does not decide): {number(mean(a))} "
        f"({collapsed}) vs {number(mean(b))} ({healthy}); {healthy} - {collapsed}: "
        f"{number(mean(diffs))}{interval(judgement.ci95)}, {judgement.verdict} at 95%"
    )


def _raw_beside(run: Mapping[str, Any], key: str, name: str) -> list[str]:
    """When the normalised vectors decide, the raw ones' count beside them."""
    if not key.endswith("_normalized"):
        return []
    raw_key = key.removesuffix("_normalized")
    raw = rule_counts(run, raw_key)
    if raw is None:
        return []
    return [
        f"{name}, {space_text(raw_key)} by the cliff rule: {count(mean(raw))} collapsed "
        f"(per seed: {', '.join(count(c) for c in raw)})"
    ]


def _note_shared_runs(claims: Sequence[dict[str, Any]]) -> None:
    """Tell each collapse claim which other ones rest on the same runs (not independent)."""
    for claim in claims:
        for other in claims:
            shared = sorted(set(claim["runs"]) & set(other["runs"]))
            if other is claim or not shared:
                continue
            figure = other["claim"].rsplit("(", 1)[-1].rstrip(")")
            claim["notes"].append(
                f"shares its {', '.join(shared)} runs with claim {other['id']} ({figure}): the "
                "two verdicts are not independent evidence"
            )
