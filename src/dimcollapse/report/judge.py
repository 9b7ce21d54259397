"""The judge of the claims: per-seed values read out of a reproduction's manifest, judged from
their paired differences, and appended as claims with their elementary tests.

:mod:`~dimcollapse.report.claims` (the orderings and "about the same" claims of Table 1 and
section 6.3, the sanity checks, Holm's adjustment) and
:mod:`~dimcollapse.report.collapse_claims` (Figs. 2, 7b and 9c) both judge through a
:class:`Judge` and record each test with :func:`test_record`; neither imports the other's
claims, so the judge sits below both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dimcollapse.aggregate import per_seed
from dimcollapse.manifest import Manifest
from dimcollapse.report.numbers import interval, number, signed
from dimcollapse.report.run_groups import paper_manifest
from dimcollapse.stats import (
    Judgement,
    judge_greater,
    judge_same,
    mean,
    paired_differences,
    verdict_all,
)


def diff_text(diffs: Sequence[float], ci: Sequence[float] | None, unit: str = "") -> str:
    """``+0.8 [-1.7, 3.3]``: the mean paired difference and its interval."""
    return f"{signed(mean(diffs))}{unit}{interval(ci)}"


def test_record(label: str, judgement: Judgement, runs: Sequence[str]) -> dict[str, Any]:
    """One elementary test of a claim (before Holm's adjustment)."""
    return {
        "label": label,
        "verdict": judgement.verdict,
        "ci95": judgement.ci95,
        "p": judgement.p,
        "rule": judgement.rule,
        "runs": sorted(set(runs)),
    }


class Judge:
    """Reads per-seed values out of a manifest's paper's runs
    (:func:`~dimcollapse.report.run_groups.paper_manifest`: runs beyond the paper are never
    judged) and appends judged claims."""

    def __init__(self, manifest: Manifest | Mapping[str, Any]) -> None:
        self.manifest = manifest = paper_manifest(manifest)
        self.runs = manifest.runs
        self.paper = manifest.paper.top1
        self.sub_paper = manifest.paper.subvector_top1
        self.baselines = manifest.baselines
        self.claims: list[dict[str, Any]] = []

    def top1(self, name: str, features: str = "full") -> list[float] | None:
        if name not in self.runs:
            return None
        vals = per_seed(self.runs[name], ("probe", features, "top1"))
        return None if vals is None else [100 * v for v in vals]

    def baseline_top1(self, key: str) -> list[float] | None:
        if key not in self.baselines:
            return None
        vals = per_seed(self.baselines[key], ("probe", "top1"))
        return None if vals is None else [100 * v for v in vals]

    def rep(self, name: str, metric: str, space: str = "representation") -> list[float] | None:
        return None if name not in self.runs else per_seed(self.runs[name], (space, metric))

    def add(
        self,
        claim: str,
        paper: str,
        ours: str,
        tests: Sequence[dict[str, Any]],
        *,
        kind: str = "paper",
        notes: Sequence[str] = (),
    ) -> None:
        verdict = verdict_all([t["verdict"] for t in tests]) if tests else "inconclusive"
        cis = [t["ci95"] for t in tests]
        self.claims.append(
            {
                "id": len(self.claims) + 1,
                "claim": claim,
                "paper": paper,
                "ours": ours,
                "verdict": verdict,
                "ci95": cis[0] if len(cis) == 1 else (cis or None),
                "holds": {"holds": True, "fails": False}.get(verdict),
                "kind": kind,
                "tests": list(tests),
                "notes": list(notes),
                "runs": sorted({r for t in tests for r in t["runs"]}),
            }
        )

    def unavailable(self, claim: str, paper: str, kind: str = "paper") -> None:
        self.add(claim, paper, "not measured in this run", [], kind=kind)

    def order(self, claim: str, names: Sequence[str]) -> None:
        """``names[0] > names[1] > ...`` in linear top-1: every pair of the chain, by seed."""
        paper = " > ".join(f"{self.paper.get(n, 'n/a')}" for n in names)
        vals = [self.top1(n) for n in names]
        if any(v is None for v in vals) or len({len(v) for v in vals}) != 1:  # type: ignore[arg-type]
            self.unavailable(claim, paper)
            return
        tests, parts = [], []
        pairs = list(zip(range(len(names)), range(1, len(names))))
        if len(names) > 2:
            pairs.append((0, len(names) - 1))  # every link: MLP vs none too
        for i, j in pairs:
            diffs = paired_differences(vals[i], vals[j])  # type: ignore[arg-type]
            judgement = judge_greater(diffs)
            label = f"{names[i]} > {names[j]}"
            tests.append(test_record(label, judgement, (names[i], names[j])))
            parts.append(f"{names[i]} - {names[j]}: {diff_text(diffs, judgement.ci95)}")
        means = " vs ".join(number(mean(v)) for v in vals)  # type: ignore[arg-type]
        notes = [self._all_labels_line(names[i], names[j], judge_greater) for i, j in pairs]
        self.add(claim, paper, f"{means}; {'; '.join(parts)}", tests, notes=_present(notes))

    def _all_labels_line(
        self, a: str, b: str, test: Callable[[list[float]], Judgement]
    ) -> str | None:
        """``test`` of ``a - b`` on the all-labels probe, a line beside the verdict (outside
        Holm); None when that probe row was not run."""
        va, vb = self.top1(a, "all_labels"), self.top1(b, "all_labels")
        if va is None or vb is None or len(va) != len(vb):
            return None
        diffs = paired_differences(va, vb)
        judgement = test(diffs)
        return (
            f"all labels (beside, does not decide): {a} - {b}: "
            f"{diff_text(diffs, judgement.ci95)}, {judgement.verdict}"
        )

    def same(self, claim: str, a: str, b: str, margin: float | None) -> None:
        paper = f"{self.paper.get(a, 'n/a')} vs {self.paper.get(b, 'n/a')}"
        va, vb = self.top1(a), self.top1(b)
        if va is None or vb is None or len(va) != len(vb):
            self.unavailable(claim, paper)
            return
        diffs = paired_differences(va, vb)
        text = f"{number(mean(va))} vs {number(mean(vb))}; {a} - {b}: "
        if margin is None:
            text += f"{signed(mean(diffs))}; no margin (no positive no-projector gap to scale it)"
            self.add(claim, paper, text, [])
            return
        judgement = judge_same(diffs, margin)
        text += f"{diff_text(diffs, judgement.ci95)} (margin +-{number(margin, 2)})"
        notes = [self._all_labels_line(a, b, lambda d: judge_same(d, margin))]  # type: ignore[arg-type]
        test = test_record(f"|{a} - {b}| < margin", judgement, (a, b))
        self.add(claim, paper, text, [test], notes=_present(notes))


def _present(lines: Sequence[str | None]) -> list[str]:
    """The lines that exist."""
    return [line for line in lines if line]
