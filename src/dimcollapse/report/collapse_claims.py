"""The paper's collapse claims (Figs. 2, 7b, 9c), judged on the collapsed tail.

The paper reads collapse off the right end of a log-scale spectrum: singular values of the
covariance that "drop to zero". So these claims are decided by how many singular values fall
below a threshold times sigma_1, counted per seed (:mod:`dimcollapse.report.tail`), on the
row-normalised vectors when recorded (as the paper's ``spectrum.py`` does), at the headline
threshold :data:`~dimcollapse.report.tail.PRIMARY_THRESHOLD`; the other thresholds are shown
beside it (Fig. 2: at how many of them the claim holds), and RankMe is a second line that does
not decide. When the method that should collapse shows no collapsed dimension in any seed, the
text says that the effect does not appear, with the depth its spectrum reached
(smallest sigma_k / sigma_1), rather than reading the comparison as a reversal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.report.judge import Judge, test_record
from dimcollapse.report.numbers import count, interval, number, ratio, threshold
from dimcollapse.report.tail import (
    PRIMARY_THRESHOLD,
    counts_at,
    has_normalized,
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
    counts = None if run is None else counts_at(run, key, thresholds, PRIMARY_THRESHOLD)
    if run is None or counts is None:
        judge.unavailable(claim, paper)
        return
    judgement = judge_greater(counts)
    dim = (run.get(key) or run.get("embedding") or {}).get("dim", "?")
    per = ", ".join(count(c) for c in counts)
    ours = (
        f"at {threshold(PRIMARY_THRESHOLD)} x sigma_1: {count(mean(counts))}{interval(judgement.ci95)} "
        f"of {dim} collapsed in {space_text(key)} (per seed: {per})"
    )
    held, judged, parts = 0, 0, []
    for t in thresholds:
        values = counts_at(run, key, thresholds, t)
        if values is None:
            continue
        judged += 1
        held += judge_greater(values).verdict == "holds"
        parts.append(f"{threshold(t)}: {count(mean(values))}")
    if judged > 1:
        ours += f"; holds at {held} of {judged} thresholds ({', '.join(parts)})"
    if all(c == 0 for c in counts):
        ours += "; " + _absent_text(run, key, "simclr-mlp", "z", thresholds)
    notes = _raw_beside(run, key, thresholds, "simclr-mlp")
    test = test_record(
        f"collapsed dims of z at {threshold(PRIMARY_THRESHOLD)} > 0", judgement, ("simclr-mlp",)
    )
    judge.add(claim, paper, ours, [test], notes=notes)


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
    ca = None if ra is None else counts_at(ra, key, thresholds, PRIMARY_THRESHOLD)
    cb = None if rb is None else counts_at(rb, key, thresholds, PRIMARY_THRESHOLD)
    if ca is None or cb is None or len(ca) != len(cb):
        judge.unavailable(claim, paper)
        return
    diffs = paired_differences(ca, cb)
    judgement = judge_greater(diffs)
    ours = (
        f"collapsed dims of {space_text(key)} at {threshold(PRIMARY_THRESHOLD)} x sigma_1: "
        f"{count(mean(ca))} ({collapsed}) vs {count(mean(cb))} ({healthy}); {collapsed} - "
        f"{healthy}: {number(mean(diffs))}{interval(judgement.ci95)}"
    )
    others = _other_thresholds(ra, rb, key, thresholds, collapsed, healthy)  # type: ignore[arg-type]
    if others:
        ours += f"; at the other thresholds: {others}"
    if all(c == 0 for c in ca):
        ours += "; " + _absent_text(ra, key, collapsed, "r", thresholds)  # type: ignore[arg-type]
    notes = [_rankme_line(judge, ra, rb, key, collapsed, healthy)]  # type: ignore[arg-type]
    test = test_record(
        f"collapsed dims of r at {threshold(PRIMARY_THRESHOLD)}: {collapsed} > {healthy}",
        judgement,
        (collapsed, healthy),
    )
    judge.add(claim, paper, ours, [test], notes=[n for n in notes if n])


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
        if abs(t - PRIMARY_THRESHOLD) <= 1e-9 * t:
            continue
        ca, cb = counts_at(ra, key, thresholds, t), counts_at(rb, key, thresholds, t)
        if ca is None or cb is None:
            continue
        verdict = judge_greater(paired_differences(ca, cb)).verdict
        parts.append(f"{threshold(t)}: {count(mean(ca))} vs {count(mean(cb))} ({verdict})")
    return ", ".join(parts)


def _absent_text(
    run: Mapping[str, Any],
    key: str,
    name: str,
    letter: str,
    thresholds: Sequence[float] = (),
) -> str:
    """ "the effect does not appear: ..." with the depth the spectrum reached."""
    text = (
        f"the effect does not appear: no seed of {name} has a collapsed dimension of {letter} "
        f"at {threshold(PRIMARY_THRESHOLD)}"
    )
    ratios = smallest_ratios(run, key)
    if ratios:
        text += f" (smallest sigma_k/sigma_1 over its seeds: {ratio(min(ratios))})"
    if thresholds:
        collapsing = [
            t for t in thresholds if any(c > 0 for c in counts_at(run, key, thresholds, t) or [])
        ]
        if not collapsing:
            text += f", nor at any threshold from {threshold(max(thresholds))} down to "
            text += threshold(min(thresholds))
        elif min(collapsing) > PRIMARY_THRESHOLD:
            looser = ", ".join(threshold(t) for t in sorted(collapsing, reverse=True))
            text += f"; it counts some only at the looser {looser}"
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


def _raw_beside(
    run: Mapping[str, Any], key: str, thresholds: Sequence[float], name: str
) -> list[str]:
    """When the normalised vectors decide, the raw ones' count beside them."""
    if not key.endswith("_normalized"):
        return []
    raw_key = key.removesuffix("_normalized")
    raw = counts_at(run, raw_key, thresholds, PRIMARY_THRESHOLD)
    if raw is None:
        return []
    return [
        f"{name}, {space_text(raw_key)} at {threshold(PRIMARY_THRESHOLD)}: {count(mean(raw))} collapsed "
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
