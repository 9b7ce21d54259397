"""The section beyond the paper: non-contrastive methods (VICReg, Barlow Twins) beside Table 1's.

Present only when the reproduction trained methods beyond the paper (``reproduce --extras``:
the runs of :data:`~dimcollapse.report.run_groups.EXTRA_GROUPS`), so that a report without them
is unchanged. The paper measures neither method and no claim about them was fixed before the
runs, so the section judges nothing: one table (Table 1's methods and the extra ones: their
probes, and the collapse of r and of z by the cliff rule; means over seeds with 95% intervals),
one figure (their spectra of r and z) and a sentence read off the table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.manifest import Manifest
from dimcollapse.methods import METHOD_INFO, RECIPES
from dimcollapse.report.document import Document
from dimcollapse.report.numbers import count, duration, percent_with_interval
from dimcollapse.report.run_groups import EXTRA_GROUPS, runs_of_groups, split_runs
from dimcollapse.report.spectrum_figures import figure_both_spectra
from dimcollapse.report.table1 import linear_header, loss_and_head, spectrum_cells
from dimcollapse.report.tail import mean_rule_collapse, measured_summary

HEADING = "Beyond the paper: non-contrastive methods"
FIGURE = "figures/extras_spectra.png"
#: The groups the section shows, in order: Table 1's methods, then those beyond the paper.
SHOWN_GROUPS: tuple[str, ...] = ("table1", *EXTRA_GROUPS)


def section_runs(manifest: Manifest) -> list[Mapping[str, Any]]:
    """The runs the section shows, in its order: those of :data:`SHOWN_GROUPS`; none when the
    manifest has no run beyond the paper (then there is no section)."""
    if not split_runs(manifest).extra:
        return []
    return runs_of_groups(manifest.runs, SHOWN_GROUPS)


def extras_figure(manifest: Manifest, path: str | os.PathLike[str]) -> None:
    """The spectra of r and z of every run the section shows."""
    figure_both_spectra(
        section_runs(manifest),
        path,
        title="Beyond the paper: spectra of Table 1's methods and the non-contrastive ones",
    )


def section(doc: Document, manifest: Manifest, drawn: Mapping[str, str]) -> None:
    """Beyond the paper: what the methods are, the table, what it shows, the figure."""
    runs = section_runs(manifest)
    if not runs:
        return
    extra = runs_of_groups(split_runs(manifest).extra, EXTRA_GROUPS)
    doc.heading(2, HEADING)
    doc.paragraph(
        "Not part of the reproduction: non-contrastive methods, trained beside Table 1's "
        "because `reproduce --extras` asked for them. "
        + "; ".join(_about(run) for run in extra)
        + ". "
        + _expander_text(extra, manifest.settings.rep_dim)
    )
    doc.paragraph(
        "The paper cites VICReg and Barlow Twins among the non-contrastive methods (section 2: "
        "redundancy reduction) and recalls that non-contrastive methods were seen to collapse along some "
        "dimensions (Hua et al. 2021), but it measures neither. No claim about them was fixed "
        "before these runs, so **nothing here is a verdict**: the table describes this run "
        "(means over seeds with their 95% Student-t intervals, as elsewhere in this report) "
        "and no test is made. They train on the same images, with the same backbone, seeds, "
        "optimiser and schedule as the SimCLR runs (not tuned for them), and are probed under "
        "the same protocol."
    )
    doc.table(_header(manifest), [_row(run) for run in runs])
    doc.paragraph(_collapse_text(runs))
    if "extras" in drawn:
        doc.image(
            drawn["extras"],
            "Beyond the paper: singular values of the covariance of the representation r "
            "(left) and of the embedding z (right), sorted, log scale, one line per method.",
        )
    doc.how_to_read(
        "One row per method of Table 1 and per method beyond the paper, in that order. "
        "*collapsed dims* counts the covariance singular values past a cliff (a drop of at "
        "least 3 orders between neighbours) or under float32's rounding floor, dead (constant) "
        "coordinates set apart, as in Table 1; *RankMe* is the effective rank; both of the "
        "row-normalised vectors when the run recorded them. Read a count against its "
        "dimension: z is the output of each method's head (r itself without a projector, "
        "r[:d0] for DirectCLR). " + _time_text(extra)
    )


def _header(manifest: Manifest) -> list[str]:
    return [
        "method",
        "loss",
        "head",
        linear_header(manifest),
        "kNN top-1 k=20 (%) [95% CI]",
        "RankMe of r [95% CI]",
        "collapsed dims of r (cliff rule; dead apart)",
        "RankMe of z [95% CI]",
        "collapsed dims of z (cliff rule; dead apart)",
        "dim of z",
    ]


def _row(run: Mapping[str, Any]) -> list[Any]:
    probe = run["probe"]["full"]
    r_collapsed, r_rankme = spectrum_cells(run, "representation")
    z_collapsed, z_rankme = spectrum_cells(run, "embedding")
    return [
        f"`{run['name']}`",
        *loss_and_head(run),
        percent_with_interval(probe),
        percent_with_interval(probe, "knn_top1_k20"),
        r_rankme,
        r_collapsed,
        z_rankme,
        z_collapsed,
        measured_summary(run, "embedding")["dim"],
    ]


def _about(run: Mapping[str, Any]) -> str:
    """What the run's method is (its recipe's ``about``, else its loss and head), with the
    recipe's option defaults filled in."""
    recipe = RECIPES[run["method"]]
    options = {o.name: o.default for o in recipe.options}
    text = recipe.about or "**{label}**: the {loss_label} loss, head: {projector}"
    return text.format(
        label=recipe.label, loss_label=recipe.loss_label, projector=recipe.projector, **options
    )


def _expander_text(runs: Sequence[Mapping[str, Any]], rep_dim: int) -> str:
    """The width of the expanders, from the runs' z (the papers put 8192 on a 2048-d r)."""
    widths = {measured_summary(r, "embedding")["dim"] for r in runs if _head(r) == "expander"}
    if len(widths) != 1:
        return ""
    (width,) = widths
    return (
        "The head is a trainable 3-layer expander (Linear-BatchNorm-ReLU twice, then Linear) "
        f"between r and the loss, {width} wide here: {width / rep_dim:g} x r's {rep_dim} "
        "dimensions, as the papers' 8192 on a ResNet-50's 2048."
    )


def _head(run: Mapping[str, Any]) -> str | None:
    info = METHOD_INFO.get(run["method"])
    return info.head if info else None


def _collapse_text(runs: Sequence[Mapping[str, Any]]) -> str:
    """Which methods have collapsed dimensions in z and in r, and how many, by the table."""
    parts = []
    for space, name in (
        ("embedding", "the embedding z"),
        ("representation", "the representation r"),
    ):
        collapsed, clean = [], []
        for run in runs:
            mean = mean_rule_collapse(run, space)[0]
            dim = measured_summary(run, space)["dim"]
            if mean > 0:
                collapsed.append(f"`{run['name']}` ({count(mean)} of {dim})")
            else:
                clean.append(f"`{run['name']}`")
        if not collapsed:
            parts.append(f"{name} has no cliff in any of these methods")
        elif not clean:
            parts.append(f"{name} has collapsed dimensions in every method: {_and(collapsed)}")
        else:
            parts.append(
                f"{name} has collapsed dimensions in {_and(collapsed)}, none in {_and(clean)}"
            )
    return "In this run, by the cliff rule (mean over seeds), " + "; ".join(parts) + "."


def _time_text(runs: Sequence[Mapping[str, Any]]) -> str:
    """How long the runs beyond the paper took (the wall-time section lists the paper's)."""
    seconds = [r.get("seconds") or {} for r in runs]
    if any(s.get("train") is None or s.get("probe") is None for s in seconds):
        return ""
    train, probe = sum(s["train"] for s in seconds), sum(s["probe"] for s in seconds)
    return (
        f"Pretraining these {len(runs)} methods took {duration(train)} and their probes and "
        f"spectra {duration(probe)} (sums over their seeds); the wall-time section lists the "
        "paper's runs only, its totals include these."
    )


def _and(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
