"""The paper's claims, judged from a reproduction's per-seed results.

Each claim compares methods trained with the same seeds. The verdict (``holds``, ``fails``,
``inconclusive``) comes from the **paired differences across seeds** and their 95% Student-t
interval (:mod:`dimcollapse.stats`), never from two single numbers:

* orderings of Table 1 and section 6.3 (``a > b``): linear-probe top-1 in points;
* "about the same" (section 6.3): the interval of the difference must lie inside
  +-:data:`SAME_WITHIN_POINTS` points;
* collapse of the embedding (Fig. 2): the interval of the per-seed count of collapsed dimensions
  (singular values below 1e-5 of the largest) must lie above 0;
* the representation spectra (Figs. 7b, 9c): the RankMe of r, paired across seeds.

Two sanity checks that are not the paper's claims are judged the same way: every pretrained
backbone beats a random one, and the best one beats a linear classifier on the raw pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.aggregate import per_seed
from dimcollapse.report.numbers import interval, number
from dimcollapse.stats import (
    mean,
    paired_differences,
    verdict_all,
    verdict_greater,
    verdict_same,
)

#: Two accuracies count as "about the same" when the interval of their difference lies within
#: this many percentage points (the paper's own pairs differ by 0.4 and 0.9 points).
SAME_WITHIN_POINTS = 2.0

HOW_JUDGED = (
    "Each verdict comes from the paired differences between the methods across seeds (every seed "
    "trains every method once) and their 95% Student-t interval: a claim holds when the interval "
    "lies on the claimed side of 0 (for 'about the same': inside +-{margin:g} points), fails when "
    "it lies on the other side, and is inconclusive when it straddles the line; with one seed "
    "there is no interval and every verdict is inconclusive."
)


def _diff_text(diffs: Sequence[float], ci: Sequence[float] | None, unit: str = "") -> str:
    average = mean(diffs)
    sign = "+" if average is not None and average >= 0 else ""
    return f"{sign}{number(average)}{unit}{interval(ci)}"


class _Judge:
    """Reads per-seed values out of a manifest and appends judged claims."""

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self.runs = manifest.get("runs", {})
        self.paper = manifest.get("paper", {}).get("top1", {})
        self.sub_paper = manifest.get("paper", {}).get("subvector_top1")
        self.baselines = manifest.get("baselines", {})
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

    def add(self, claim: str, paper: str, ours: str, verdict: str, ci, kind="paper") -> None:
        holds = {"holds": True, "fails": False}.get(verdict)
        self.claims.append(
            {
                "claim": claim,
                "paper": paper,
                "ours": ours,
                "verdict": verdict,
                "ci95": ci,
                "holds": holds,
                "kind": kind,
            }
        )

    def unavailable(self, claim: str, paper: str, kind: str = "paper") -> None:
        self.add(claim, paper, "not measured in this run", "inconclusive", None, kind)

    def order(self, claim: str, names: Sequence[str]) -> None:
        """``names[0] > names[1] > ...`` in linear top-1, each adjacent pair paired by seed."""
        paper = " > ".join(f"{self.paper.get(n, 'n/a')}" for n in names)
        vals = [self.top1(n) for n in names]
        if any(v is None for v in vals) or len({len(v) for v in vals}) != 1:  # type: ignore[arg-type]
            self.unavailable(claim, paper)
            return
        verdicts, parts, cis = [], [], []
        for (na, a), (nb, b) in zip(zip(names, vals), zip(names[1:], vals[1:])):
            diffs = paired_differences(a, b)  # type: ignore[arg-type]
            verdict, ci = verdict_greater(diffs)
            verdicts.append(verdict)
            cis.append(ci)
            parts.append(f"{na} - {nb}: {_diff_text(diffs, ci)}")
        means = " vs ".join(number(mean(v)) for v in vals)  # type: ignore[arg-type]
        self.add(
            claim,
            paper,
            f"{means}; {'; '.join(parts)}",
            verdict_all(verdicts),
            cis[0] if len(cis) == 1 else cis,
        )

    def same(self, claim: str, a: str, b: str) -> None:
        paper = f"{self.paper.get(a, 'n/a')} vs {self.paper.get(b, 'n/a')}"
        va, vb = self.top1(a), self.top1(b)
        if va is None or vb is None or len(va) != len(vb):
            self.unavailable(claim, paper)
            return
        diffs = paired_differences(va, vb)
        verdict, ci = verdict_same(diffs, SAME_WITHIN_POINTS)
        self.add(
            claim,
            paper,
            f"{number(mean(va))} vs {number(mean(vb))}; {a} - {b}: {_diff_text(diffs, ci)}",
            verdict,
            ci,
        )


def check_claims(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every claim with the paper's evidence, ours (means and intervals), and its verdict.

    Each entry: ``claim``, ``paper``, ``ours`` (text), ``verdict`` (``holds`` | ``fails`` |
    ``inconclusive``), ``ci95`` (the interval the verdict was read from, or a list of them for
    a chain of orderings), ``holds`` (True / False / None for inconclusive) and ``kind``
    (``paper`` or ``sanity``).
    """
    judge = _Judge(manifest)
    judge.order(
        "A projector helps: SimCLR MLP > linear > no projector (Table 1)",
        ["simclr-mlp", "simclr-linear", "simclr-none"],
    )
    judge.order(
        "DirectCLR beats SimCLR with a linear projector (Table 1)", ["directclr", "simclr-linear"]
    )
    judge.order(
        "DirectCLR beats SimCLR without a projector (Table 1)", ["directclr", "simclr-none"]
    )
    judge.order("SimCLR with the MLP projector stays best (Table 1)", ["simclr-mlp", "directclr"])
    judge.same(
        "A fixed low-rank projector does about as well as DirectCLR (6.3)",
        "fixed-lowrank",
        "directclr",
    )
    judge.same(
        "A trainable diagonal projector does about as well as a linear one (6.3)",
        "diagonal",
        "simclr-linear",
    )
    _subvector_claim(judge)
    _embedding_collapse_claim(judge)
    _representation_claims(judge)
    _sanity_claims(judge)
    return judge.claims


def _subvector_claim(judge: _Judge) -> None:
    claim = "DirectCLR's r beyond r[:d0] carries information: probe on r[:d0] < on r (6.3)"
    paper = f"{judge.sub_paper} < {judge.paper.get('directclr', 'n/a')}"
    full, sub = judge.top1("directclr"), judge.top1("directclr", "subvector")
    if full is None or sub is None:
        judge.unavailable(claim, paper)
        return
    diffs = paired_differences(full, sub)
    verdict, ci = verdict_greater(diffs)
    judge.add(
        claim,
        paper,
        f"{number(mean(sub))} vs {number(mean(full))}; r - r[:d0]: {_diff_text(diffs, ci)}",
        verdict,
        ci,
    )


def _embedding_collapse_claim(judge: _Judge) -> None:
    claim = "The embedding of SimCLR (MLP projector) has collapsed dimensions (Fig. 2)"
    paper = "about 30 of 128 singular values drop to zero"
    counts = judge.rep("simclr-mlp", "collapsed_dims", "embedding")
    if counts is None:
        judge.unavailable(claim, paper)
        return
    verdict, ci = verdict_greater(counts)
    dim = judge.runs["simclr-mlp"]["embedding"]["dim"]
    per = ", ".join(str(int(c)) for c in counts)
    judge.add(
        claim,
        paper,
        f"{number(mean(counts))}{interval(ci)} of {dim} collapsed (per seed: {per})",
        verdict,
        ci,
    )


def _representation_claims(judge: _Judge) -> None:
    for claim, collapsed, healthy, fig in (
        (
            "Without a projector the representation collapses more (lower rank) than with one",
            "simclr-none",
            "simclr-mlp",
            "Fig. 7b",
        ),
        (
            "DirectCLR keeps the representation from collapsing, unlike SimCLR without a projector",
            "simclr-none",
            "directclr",
            "Fig. 9c",
        ),
    ):
        full_claim = f"{claim} ({fig})"
        paper = "visibly more collapsed singular values without a projector"
        ra, rb = judge.rep(collapsed, "rankme"), judge.rep(healthy, "rankme")
        if ra is None or rb is None or len(ra) != len(rb):
            judge.unavailable(full_claim, paper)
            continue
        diffs = paired_differences(rb, ra)
        verdict, ci = verdict_greater(diffs)
        ca, cb = judge.rep(collapsed, "collapsed_dims"), judge.rep(healthy, "collapsed_dims")
        judge.add(
            full_claim,
            paper,
            f"RankMe of r {number(mean(ra))} ({collapsed}) vs {number(mean(rb))} ({healthy}); "
            f"{healthy} - {collapsed}: {_diff_text(diffs, ci)}; collapsed dims "
            f"{number(mean(ca or []))} vs {number(mean(cb or []))}",
            verdict,
            ci,
        )


def _sanity_claims(judge: _Judge) -> None:
    methods = {n: judge.top1(n) for n in judge.runs}
    methods = {n: v for n, v in methods.items() if v is not None}
    if not methods:
        return
    random_top1 = judge.baseline_top1("random")
    if random_top1 is not None:
        _beats_random_claim(judge, methods, random_top1)
    pixels_top1 = judge.baseline_top1("pixels")
    if pixels_top1 is not None:
        _beats_pixels_claim(judge, methods, pixels_top1)


def _beats_random_claim(
    judge: _Judge, methods: Mapping[str, list[float]], random_top1: list[float]
) -> None:
    """Every method against the random backbone; the text shows the closest one."""
    verdicts, closest = [], None
    for name, vals in methods.items():
        if len(vals) != len(random_top1):
            continue
        diffs = paired_differences(vals, random_top1)
        verdict, ci = verdict_greater(diffs)
        verdicts.append(verdict)
        if closest is None or mean(diffs) < closest[1]:  # type: ignore[operator]
            closest = (name, mean(diffs), ci, diffs)
    if closest is None:
        return
    name, _, ci, diffs = closest
    judge.add(
        "Sanity check (not a claim of the paper): every pretrained backbone beats a random one",
        "-",
        f"closest: {name} - random backbone {_diff_text(diffs, ci)} points",
        verdict_all(verdicts),
        ci,
        kind="sanity",
    )


def _beats_pixels_claim(
    judge: _Judge, methods: Mapping[str, list[float]], pixels_top1: list[float]
) -> None:
    best = max(methods, key=lambda n: mean(methods[n]) or 0.0)
    if len(methods[best]) != len(pixels_top1):
        return
    diffs = paired_differences(methods[best], pixels_top1)
    verdict, ci = verdict_greater(diffs)
    judge.add(
        "Sanity check (not a claim of the paper): the best pretrained backbone beats a "
        "linear classifier on the raw pixels",
        "-",
        f"{best} {number(mean(methods[best]))} vs raw pixels {number(mean(pixels_top1))}; "
        f"difference {_diff_text(diffs, ci)}",
        verdict,
        ci,
        kind="sanity",
    )
