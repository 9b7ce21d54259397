"""Section 2 of the report: Table 1, our linear and kNN top-1 of every method beside the paper's,
the collapsed dimensions of r, DirectCLR's probe on r[:d0], and the baselines (raw pixels, a
random backbone) that every method must beat.

``manifest`` is ``reproduce.json`` read (:class:`~dimcollapse.manifest.Manifest`);
per-method facts come from :mod:`dimcollapse.methods`, the paper's column from the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dimcollapse.manifest import Manifest
from dimcollapse.methods import ABLATION_METHODS, METHOD_INFO, TABLE1_METHODS
from dimcollapse.report.document import Document
from dimcollapse.report.numbers import (
    count,
    number_with_interval,
    percent_with_interval,
)
from dimcollapse.report.protocol_sections import has_all_labels_row, labels_text
from dimcollapse.report.tail import mean_rule_collapse, measured_summary


def table1(doc: Document, manifest: Manifest) -> None:
    """2. Table 1 analogue: every method and baseline, ours beside the paper's top-1."""
    settings = manifest.settings
    runs = manifest.runs
    all_labels = has_all_labels_row(manifest)
    header = [
        "run",
        "loss",
        "projector",
        linear_header(manifest),
        *(["linear top-1, all labels (%) [95% CI]"] if all_labels else []),
        "kNN top-1 k=20 (%) [95% CI]",
        "collapsed dims of r (cliff rule; dead apart)",
        "RankMe of r [95% CI]",
        "paper top-1 (%), ImageNet",
    ]
    rows = _method_rows(manifest) + _baseline_rows(manifest.baselines)
    if not all_labels:
        rows = [r[:4] + r[5:] for r in rows]
    doc.heading(2, "2. Table 1 analogue: projectors, DirectCLR and the ablations")
    doc.table(header, rows)
    num_classes = next(iter(runs.values()), {}).get("num_classes", "a few")
    doc.how_to_read(
        "Ours: the mean over seeds, with its 95% Student-t interval in brackets (none with one "
        "seed), of the offline linear and kNN accuracy on held-out images of "
        f"{settings.dataset}"
        + (
            f" (the main linear row trains on {labels_text(manifest)} labelled images, the "
            "second on all training labels; see the probe protocol below)"
            if all_labels
            else ""
        )
        + ", and the collapse of the representation r (the backbone output the probe reads) "
        "on the same images: *collapsed dims* counts the covariance singular values past a "
        "cliff (a drop of at least 3 orders between neighbours) or under float32's rounding "
        "floor, dead (constant) coordinates set apart (mean over seeds, the dead count in "
        "brackets when there are any; section 3 gives the counts under thresholds), *RankMe* is the effective rank (Garrido et al. 2023; at "
        f"most {settings.rep_dim}); both of the row-normalised r when the run recorded it "
        "(the paper's measure), of the raw r otherwise. The paper's column is its ResNet-50, "
        "100-epoch ImageNet linear probe (Table 1 and section 6.3), for the ordering, not the "
        f"level: ImageNet has 1,000 classes and {settings.dataset} {num_classes}, so the "
        "levels differ; the raw-pixel and random-backbone rows show what no pretraining "
        "already gets: a pretraining that does not beat the random backbone has learned little."
        + _random_note(manifest.baselines)
    )


def linear_header(manifest: Manifest) -> str:
    """The main linear probe's column: its labelled images when an all-labels row beside it
    needs telling apart."""
    if has_all_labels_row(manifest):
        return f"linear top-1, {labels_text(manifest)} labels (%) [95% CI]"
    return "linear top-1 (%) [95% CI]"


def _random_note(baselines: Mapping[str, Any]) -> str:
    """Runs before the random baseline kept its residual branches live built it as pretraining
    starts: zero-initialised residual branches."""
    note = str((baselines.get("random") or {}).get("note", ""))
    if not note or "live" in note:
        return ""
    return (
        " The random backbone is the network as pretraining starts it: its residual branches "
        "are zero-initialised (torchvision's `zero_init_residual`, as in the paper's code), so "
        "untrained it is little more than its stem, the shortcut projections and the pooling."
    )


def _method_rows(manifest: Manifest) -> list[list[Any]]:
    """Table 1's methods in the paper's order (DirectCLR's sub-vector probe after it), then
    the ablations of section 6.3."""
    runs = manifest.runs
    paper_top1 = manifest.paper.top1
    rows = []
    for name in (n for n in TABLE1_METHODS if n in runs):
        rows.append(_method_row(runs[name], paper_top1.get(name)))
        if "subvector" in runs[name]["probe"]:  # only heads whose loss sees r[:d0] have one
            rows.append(_subvector_row(runs[name], manifest.paper.subvector_top1))
    for name in (n for n in ABLATION_METHODS if n in runs):
        rows.append(_method_row(runs[name], paper_top1.get(name)))
    return rows


def spectrum_cells(owner: Mapping[str, Any], space: str = "representation") -> list[str]:
    """Collapsed dims (the cliff rule, dead coordinates apart; mean over seeds) and RankMe of
    ``space`` (``representation`` or ``embedding``): the row-normalised summary when recorded."""
    summary = measured_summary(owner, space)
    collapsed, dead = mean_rule_collapse(owner, space)  # older files: recomputed
    cell = f"{count(collapsed)}/{summary['dim']}"
    if dead:
        cell += f" ({count(dead)} dead)"
    return [cell, number_with_interval(summary, "rankme")]


def _all_labels_cell(row: Mapping[str, Any] | None) -> str:
    return "-" if not row else percent_with_interval(row)


def loss_and_head(run: Mapping[str, Any]) -> tuple[str, str]:
    """A run's loss and projector (head) columns, from its method's recipe (its d0 filled in)."""
    info = METHOD_INFO.get(run["method"])
    projector = info.projector if info else run["method"]
    if run.get("d0") and info and info.has_d0:
        projector = projector.replace("d0", f"d0={run['d0']}")
    return (info.loss_label if info else "SimCLR"), projector


def _method_row(run: Mapping[str, Any], paper_top1: float | None) -> list[Any]:
    probe = run["probe"]["full"]
    return [
        f"`{run['name']}`",
        *loss_and_head(run),
        percent_with_interval(probe),
        _all_labels_cell(run["probe"].get("all_labels")),
        percent_with_interval(probe, "knn_top1_k20"),
        *spectrum_cells(run),
        "-" if paper_top1 is None else f"{paper_top1}",
    ]


def _subvector_row(run: Mapping[str, Any], paper_top1: float | None) -> list[Any]:
    """DirectCLR's linear probe on r[:d0] only (section 6.3)."""
    info = METHOD_INFO.get(run["method"])
    probe = run["probe"]["subvector"]
    return [
        f"`{run['name']}` (probe on r[:{run['d0']}])",
        info.loss_label if info else "SimCLR",
        f"linear probe on the sub-vector only ({probe['dim']} dims)",
        percent_with_interval(probe),
        "-",
        percent_with_interval(probe, "knn_top1_k20"),
        "-",
        "-",
        "-" if paper_top1 is None else f"{paper_top1}",
    ]


_BASELINES = (
    ("pixels", "baseline: raw pixels", "no network: the flattened image, /255"),
    (
        "pixels-pca",
        "baseline: pixels, PCA to r's width",
        "no network: the pixels on their first principal components, as many as r has",
    ),
    (
        "random",
        "baseline: random backbone",
        "the same network, random weights (batch-norm statistics from the training images)",
    ),
)


def _baseline_rows(baselines: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for key, label, note in _BASELINES:
        if key not in baselines:
            continue
        baseline = baselines[key]
        probe = baseline["probe"]
        rows.append(
            [
                f"`{key}`",
                label,
                baseline.get("note") or note,
                percent_with_interval(probe),
                _all_labels_cell(baseline.get("probe_all_labels")),
                percent_with_interval(probe, "knn_top1_k20"),
                *spectrum_cells(baseline),
                "-",
            ]
        )
    return rows
