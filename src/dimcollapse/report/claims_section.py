"""The end of the report's section 2: the paper's claims, checked (per claim and after Holm),
with the tests behind each verdict, the margin of "about the same" and the runs each rests on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.manifest import Manifest
from dimcollapse.report.claims import (
    MARGIN_WHY,
    equivalence_margin,
    family_size,
    how_judged,
    tests_text,
)
from dimcollapse.report.document import Document
from dimcollapse.report.numbers import interval, number, signed, verdict_text
from dimcollapse.stats import verdict_counts


def verdict_summary(claims: Sequence[Mapping[str, Any]]) -> str:
    """``3 hold, 2 fail, 5 inconclusive at 95% per claim; after Holm (12 tests): ...``."""
    paper = [c for c in claims if c.get("kind", "paper") != "sanity"]
    per_claim = verdict_counts([c["verdict"] for c in paper])
    text = f"{per_claim} at 95% per claim"
    if all(c.get("verdict_holm") for c in paper):
        adjusted = verdict_counts([c["verdict_holm"] for c in paper])
        text += f"; after Holm's adjustment over their {family_size(claims)} tests: {adjusted}"
    return text


def claims_checked(
    doc: Document,
    manifest: Manifest,
    drawn: Mapping[str, str],
    claims: list[dict[str, Any]],
) -> None:
    """Every claim with its verdicts, the tests and notes behind them, and the accuracy figure."""
    doc.heading(3, "The paper's claims, checked")
    doc.table(
        ["#", "claim", "paper", "ours: means; paired differences [95% CI]", "verdict (95%)",
         "after Holm"],
        [
            [
                c["id"],
                c["claim"],
                c["paper"],
                c["ours"],
                verdict_text(c["verdict"]),
                "-" if c.get("verdict_holm") is None else verdict_text(c["verdict_holm"]),
            ]
            for c in claims
        ],
    )  # fmt: skip
    details = [_detail(c) for c in claims if c["tests"] or c["notes"]]
    if details:
        doc.paragraph("The tests behind each verdict (two-sided p-values, then Holm's):")
        doc.bullets(details)
    margin = equivalence_margin(manifest)
    doc.paragraph(_margin_text(margin))
    sharing = _shared_runs(claims)
    if sharing:
        doc.paragraph(
            "Verdicts that read the same runs are not independent evidence (Holm's adjustment "
            "holds whatever the dependence): " + "; ".join(sharing) + "."
        )
    doc.how_to_read(
        how_judged(margin["margin"])
        + " Accuracies are in points; differences are paired by seed (the same seed trains "
        "every method on the same images, in the same order). A chain such as MLP > linear > "
        "none holds when every pair of it holds (MLP vs none included) and fails when any "
        "fails. Sanity checks are outside the family (no Holm column)."
        + (
            " A quick run has too few seeds and epochs to separate methods a point or two "
            "apart: expect inconclusive orderings."
            if manifest.settings.scale == "quick"
            else ""
        )
    )
    if "accuracy" in drawn:
        doc.image(
            drawn["accuracy"],
            "Offline linear top-1 per method (left, with the raw-pixel "
            "and random-backbone baselines) and the paper's (right).",
        )


def _detail(claim: Mapping[str, Any]) -> str:
    parts = [tests_text(claim)] if claim["tests"] else []
    parts += list(claim["notes"])
    return f"Claim {claim['id']}: " + "; ".join(parts)


def _margin_text(margin: Mapping[str, Any]) -> str:
    text = f"Margin of 'about the same': +-{number(margin['margin'], 2)} points. " + MARGIN_WHY
    if margin["gap"] is not None:
        gap = f"{signed(margin['gap'])}{interval(margin['gap_ci95'])} points"
        text += f" For scale, this run's no-projector gap (simclr-mlp - simclr-none) is {gap}."
    return text


def _shared_runs(claims: Sequence[Mapping[str, Any]]) -> list[str]:
    """``simclr-none: claims 1, 3, 9, 10`` for each run more than one paper claim reads."""
    by_run: dict[str, list[int]] = {}
    for c in claims:
        if c.get("kind") == "sanity":
            continue
        for run in c.get("runs", []):
            by_run.setdefault(run, []).append(c["id"])
    return [
        f"`{run}`: claims {', '.join(str(i) for i in ids)}"
        for run, ids in by_run.items()
        if len(ids) > 1
    ]
