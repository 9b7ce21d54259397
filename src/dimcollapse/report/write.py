"""Writing the report: the figures the data allows, the claims, then the document in order."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dimcollapse.fileio import write_text_atomic
from dimcollapse.manifest import Manifest
from dimcollapse.methods import D0_SWEEP_GROUP
from dimcollapse.report import (
    claims_section,
    extras,
    image_lab,
    paper_sections,
    protocol_sections,
    run_sections,
    table1,
)
from dimcollapse.report.claims import check_claims
from dimcollapse.report.document import Document
from dimcollapse.report.figures import (
    d0_sweep_points,
    figure_accuracy,
    figure_d0_sweep,
    figure_training_curves,
)
from dimcollapse.report.run_groups import paper_manifest
from dimcollapse.report.spectrum_figures import (
    figure_collapsed_tail,
    figure_embedding_spectrum,
    figure_fig9,
    figure_representation_spectra,
)
from dimcollapse.report.tail import thresholds_of

TITLE = "Reproduction report: Understanding Dimensional Collapse in Contrastive SSL"

#: Every figure the report can hold, by key, as a path relative to the output directory.
FIGURES = {
    "fig2": "figures/fig2_embedding_spectrum.png",
    "fig7b": "figures/fig7b_representation_spectra.png",
    "fig9": "figures/fig9_representation_spectra.png",
    "ablation": "figures/ablation_representation_spectra.png",
    "d0": "figures/d0_sweep.png",
    "curves": "figures/training_curves.png",
    "accuracy": "figures/accuracy.png",
    "tail": "figures/collapsed_tail.png",
    "image_lab": image_lab.FIGURE,
    "extras": extras.FIGURE,
}


def write_report(
    manifest: Manifest | Mapping[str, Any], out: str | Path, *, figures: bool = True
) -> list[dict[str, Any]]:
    """Write ``report.md`` and ``report.html`` into ``out``; return :func:`check_claims`.

    ``manifest``: a :class:`Manifest` or ``reproduce.json`` as read (an unknown version is
    refused). ``figures=False`` reuses the PNG files already drawn (to rewrite the text only).
    The paper's sections, figures and claims read the paper's runs only
    (:func:`~dimcollapse.report.run_groups.paper_manifest`); the runs beyond the paper have their
    own section (:mod:`~dimcollapse.report.extras`).
    """
    out, manifest = Path(out), Manifest.of(manifest)
    drawn = (
        draw_figures(manifest, out)
        if figures
        else {k: v for k, v in FIGURES.items() if (out / v).is_file()}
    )
    claims = check_claims(manifest)
    doc = build_document(manifest, out, drawn, claims)
    write_text_atomic(out / "report.md", doc.markdown())
    write_text_atomic(out / "report.html", doc.html(TITLE))
    return claims


def build_document(
    manifest: Manifest | Mapping[str, Any],
    out: Path,
    drawn: Mapping[str, str],
    claims: list[dict[str, Any]],
) -> Document:
    """Every section in order; ``drawn`` maps figure keys to paths relative to ``out``. Every
    section but the one beyond the paper reads the paper's runs only."""
    manifest = Manifest.of(manifest)
    paper = paper_manifest(manifest)
    doc = Document(out)
    run_sections.opening(doc, paper, claims)
    run_sections.setup(doc, paper)
    table1.table1(doc, paper)
    protocol_sections.probe_protocol(doc, paper)
    claims_section.claims_checked(doc, paper, drawn, claims)
    paper_sections.embedding_collapse(doc, paper, drawn)
    paper_sections.theory_lab(doc, paper)
    image_lab.section(doc, paper, drawn)
    paper_sections.projector_spectra(doc, drawn)
    paper_sections.directclr_spectra(doc, drawn)
    paper_sections.d0_sweep(doc, paper, drawn)
    paper_sections.training_curves(doc, drawn)
    extras.section(doc, manifest, drawn)
    run_sections.wall_time(doc, paper)
    run_sections.files(doc)
    return doc


def draw_figures(manifest: Manifest | Mapping[str, Any], out: Path) -> dict[str, str]:
    """Draw every figure the data allows; return ``{key: path relative to out}``. The paper's
    figures draw the paper's runs only; ``extras`` the runs beyond it, beside Table 1's."""
    full = Manifest.of(manifest)
    manifest = paper_manifest(full)
    runs = manifest.runs
    settings = manifest.settings
    drawn: dict[str, str] = {}

    def draw(key: str, figure: Any, *args: Any, **kwargs: Any) -> None:
        figure(*args, out / FIGURES[key], **kwargs)
        drawn[key] = FIGURES[key]

    if "simclr-mlp" in runs:
        draw("fig2", figure_embedding_spectrum, runs["simclr-mlp"], dataset=settings.dataset)
    if "simclr-mlp" in runs and "simclr-none" in runs:
        draw(
            "fig7b",
            figure_representation_spectra,
            [runs["simclr-mlp"], runs["simclr-none"]],
            title="Fig. 7b analogue: representation spectra, with vs without a projector",
        )
    if "directclr" in runs:
        draw("fig9", figure_fig9, runs)
        ablations = ("directclr", "fixed-lowrank", "diagonal", "simclr-linear")
        draw(
            "ablation",
            figure_representation_spectra,
            [runs[n] for n in ablations if n in runs],
            title="Section 6.3 ablations: representation spectra",
        )
    sweep = d0_sweep_points(manifest)
    if len(sweep) > 1:
        draw(
            "d0",
            figure_d0_sweep,
            sweep,
            rep_dim=settings.rep_dim,
            default_d0=settings.default_d0,
        )
    if image_lab.cells(manifest.images):
        draw("image_lab", image_lab.figure_image_lab, manifest.images)
    main = {n: r for n, r in runs.items() if r.get("group") != D0_SWEEP_GROUP}
    if main:
        draw("tail", figure_collapsed_tail, main, thresholds_of(manifest))
        draw("curves", figure_training_curves, main)
        draw("accuracy", figure_accuracy, main, manifest.baselines, paper=manifest.paper.top1)
    if extras.section_runs(full):
        draw("extras", extras.extras_figure, full)
    return drawn
