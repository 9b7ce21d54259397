"""The report's sections that set our results against the paper's figures: 3. Fig. 2, 4. the
theory lab (Figs. 4-6), 5. Fig. 7b, 6. Fig. 9 and section 6.3, 7. DirectCLR's d0, 8. the training
curves (section 2, Table 1, is :mod:`~dimcollapse.report.table1`).

Each function appends one section, prose included, to a :class:`Document`; ``manifest`` is
``reproduce.json`` read (:class:`~dimcollapse.manifest.Manifest`) and ``drawn`` maps
the figures drawn to their paths. Per-method facts (names, projectors, losses, the paper's
numbers in the prose) come from :mod:`dimcollapse.methods`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dimcollapse.manifest import Manifest, ReproduceLayout
from dimcollapse.manifest.settings import D0_DIVISORS
from dimcollapse.methods import D0_SWEEP_GROUP, PAPER_TOP1
from dimcollapse.report.document import Document
from dimcollapse.report.figures import d0_sweep_points
from dimcollapse.report.numbers import (
    count,
    interval,
    number,
    percent,
    ratio,
    threshold,
)
from dimcollapse.report.tail import (
    dead_counts,
    has_normalized,
    mean_counts,
    rule_counts,
    smallest_ratios,
    space_text,
    thresholds_of,
)
from dimcollapse.stats import mean

#: The d0 values the full scale's sweep trains, as fractions of the representation's size.
D0_DIVISORS_TEXT = tuple(f"rep/{k}" for k in D0_DIVISORS)


def embedding_collapse(doc: Document, manifest: Manifest, drawn: Mapping[str, str]) -> None:
    """3. Fig. 2: the collapse of SimCLR's embedding, and the collapsed tail at each threshold."""
    doc.heading(2, "3. Dimensional collapse of the embedding (Fig. 2)")
    if "fig2" in drawn:
        run = manifest.runs["simclr-mlp"]
        embedding = run["embedding"]
        doc.image(
            drawn["fig2"],
            "Fig. 2 analogue: singular values of the covariance of the "
            "embedding z of SimCLR with its MLP projector, sorted, log scale; of the "
            "row-normalised z when the run recorded it (the claims' measure), as the figure "
            "says.",
        )
        text = (
            f"Here, by the cliff rule: {count(embedding['collapsed_dims'])}"
            f"{interval(embedding.get('collapsed_dims_ci95'))} of {embedding['dim']} dimensions "
            "of the raw z are collapsed (mean over seeds; dead coordinates apart); RankMe "
            f"{number(embedding['rankme'])} of {embedding['dim']}; 90% of the variance lies in "
            f"{count(embedding['dims_90'])} dimensions (mean over seeds)."
        )
        if has_normalized(run, "embedding"):
            normalized = run["embedding_normalized"]
            text += (
                " On the row-normalised z (the paper's measure, plotted above): "
                f"{count(normalized['collapsed_dims'])} collapsed, RankMe "
                f"{number(normalized['rankme'])}."
            )
        doc.paragraph(text)
    absent = COLLAPSE_EVIDENCE.get(manifest.settings.dataset)
    if absent and "fig2" in drawn and not _has_cliff(manifest.runs["simclr-mlp"], "embedding"):
        doc.paragraph(absent)
    tail_lines = collapsed_tail_lines(manifest)
    if "tail" in drawn:
        doc.image(
            drawn["tail"],
            "Collapsed dimensions against the threshold (a fraction of sigma_1), per method: "
            "the embedding z (left) and the representation r (right); mean over seeds, bars "
            "over the seeds' range. A fixed low-rank projector's z has rank d0 by construction, "
            "so all but d0 of its dimensions count at every threshold.",
        )
    if tail_lines:
        doc.paragraph("The collapsed tail per method, counted at each threshold (mean over seeds):")
        doc.bullets(tail_lines)
    doc.how_to_read(
        "Each curve is the sorted spectrum of the covariance of the embedding vectors on held-out "
        "images (Eq. 1), in log scale, as in the paper. The paper's collapse is a cliff: its "
        "live values lie within a few e-folds of the largest and the collapsed ones some 9 "
        "orders lower ('drop to zero'). So the claims count a dimension as collapsed past the "
        "first drop of at least 3 orders between neighbouring values, or under the rounding "
        "floor of float32 (the cliff rule); a smooth slope, however long, is not a cliff. "
        "Dead coordinates (constant over every image, such as a ReLU channel that never fires) "
        "are exact zeros that nothing shrank: they are listed apart, never counted. The counts "
        f"under {', '.join(threshold(t) for t in thresholds_of(manifest))} of sigma_1 are a "
        "secondary table. The paper sees about 30 of 128 dimensions collapse after 100 ImageNet "
        "epochs; how the count moves with training length at this scale is only known where a "
        "run measured it (the study linked from the README)."
    )


#: Where the evidence is when the embedding shows no cliff, for datasets a study measured.
COLLAPSE_EVIDENCE = {
    "fashion-mnist": (
        "No seed's embedding has a cliff here. The evidence of what does and does not cause "
        "one at this size is in the repository's docs/experiments/fashion-mnist-collapse.md "
        "(issue 23): a 3-seed sweep of the augmentation's strength on this ResNet (stronger "
        "views spread its spectrum and raise RankMe at this length, the opposite of Theorem "
        "1's collapse), the paper's whole augmentation recipe (no cliff either), and the linear "
        "encoders of section 4b on the same images (depth gives a steep slope, a ReLU between "
        "two layers a cliff)."
    ),
}


def _has_cliff(run: Mapping[str, Any], space: str) -> bool:
    """Some seed of the run has a collapsed dimension of ``space`` by the cliff rule."""
    key = f"{space}_normalized" if has_normalized(run, space) else space
    counts = rule_counts(run, key)
    return bool(counts) and any(c > 0 for c in counts)


def collapsed_tail_lines(manifest: Manifest) -> list[str]:
    """``simclr-mlp, z (raw): 27 / 10.7 / 4.3 / 1.7 at 1e-4 / 1e-5 / ...``, per run and space."""
    thresholds = thresholds_of(manifest)
    heads = " / ".join(threshold(t) for t in thresholds)
    lines = []
    owners = [(n, r) for n, r in manifest.runs.items() if r.get("group") != D0_SWEEP_GROUP]
    owners += [(k, b) for k, b in manifest.baselines.items()
               if isinstance(b, Mapping) and "representation" in b]  # fmt: skip
    for name, owner in owners:
        for space in ("embedding", "representation"):
            keys = [space] + ([f"{space}_normalized"] if has_normalized(owner, space) else [])
            for key in keys:
                means = mean_counts(owner, key, thresholds) if key in owner else None
                if not means:
                    continue
                values = " / ".join(count(m) for m in means)
                ratios = smallest_ratios(owner, key)
                depth = f"; smallest sigma_k/sigma_1 {ratio(min(ratios))}" if ratios else ""
                rule, dead = rule_counts(owner, key), dead_counts(owner, key)
                cliff = "" if rule is None else f"cliff rule {count(mean(rule))}"
                if cliff and dead and any(dead):
                    cliff += f" (dead apart: {count(mean(dead))})"
                lines.append(
                    f"`{name}`, {space_text(key)}: {cliff + '; ' if cliff else ''}"
                    f"{values} at {heads}{depth}"
                )
    return lines


def theory_lab(doc: Document, manifest: Manifest) -> None:
    """4. The toy models of sections 4-5 (Figs. 4-6)."""
    doc.heading(2, "4. Theory lab: why it collapses (Figs. 4-6)")
    toys = manifest.toys  # dimcollapse.reproduce.toys.run_toys()'s result
    if toys.get("figures"):
        for fig in toys["figures"]:
            doc.image(
                ReproduceLayout.toy_file(fig["file"]), f"{fig['caption']} ({fig['scenario']})"
            )
        lines = _toy_lines(toys.get("summaries", {}))
        if lines:
            doc.bullets(lines)
    else:
        doc.paragraph(
            "The theory lab (`dimcollapse toy`) was not available when this report was "
            "written: no toy figures."
        )
    doc.how_to_read(
        "Toy linear models of 16 dimensions trained with InfoNCE (sections 4-5). With noise "
        "stronger than the signal in some directions (section 4), a single linear layer's weight "
        "loses singular values there. Without strong noise, two layers still collapse through "
        "implicit regularisation: the layers align (|V2^T U1| moves towards the identity on the "
        "leading directions, Fig. 4; the alignment numbers above say how far) and "
        "the smallest singular values grow much more slowly than the rest (Fig. 5); more layers "
        "collapse more, and ReLU between them behaves alike (Fig. 6)."
    )


def _toy_lines(summaries: Mapping[str, Any]) -> list[str]:
    """One line per toy run: its collapsed embedding dimensions (and alignment)."""
    lines = []
    for scenario, records in summaries.items():
        for rec in records if isinstance(records, list) else []:
            if not isinstance(rec, dict) or rec.get("collapsed_dims") is None:
                continue
            text = (
                f"`{scenario}`, run {rec.get('run')}: {rec['collapsed_dims']} of "
                f"{rec.get('dim', '?')} embedding dimensions collapsed"
            )
            if rec.get("rel_tol") is not None:
                text += f" (below {rec['rel_tol']:g} x sigma_1)"
            if rec.get("collapsed_dims_init") is not None:
                text += f", {rec['collapsed_dims_init']} of them already at initialisation"
            if rec.get("alignment_diag_mean") is not None:
                text += f"; alignment diag(|V2^T U1|) mean {rec['alignment_diag_mean']:.2f}"
            lines.append(text)
    return lines


def projector_spectra(doc: Document, drawn: Mapping[str, str]) -> None:
    """5. Fig. 7b: a projector keeps the representation's rank."""
    doc.heading(2, "5. A projector keeps the representation from collapsing (Fig. 7b)")
    _figure_if_drawn(
        doc,
        drawn,
        "fig7b",
        "Fig. 7b analogue: representation spectra of SimCLR with and without a projector.",
        how_to_read="Here the spectra are of the representation r (the backbone output used "
        "downstream), not of the embedding. The paper's claim: trained without a projector, the "
        "loss acts on r directly and r collapses (more singular values fall off); with a "
        "projector, the collapse stays in the embedding and r keeps its rank. Compare the right "
        "ends of the curves and the RankMe in the legend.",
    )


def directclr_spectra(doc: Document, drawn: Mapping[str, str]) -> None:
    """6. Fig. 9 and the projector ablations of section 6.3."""
    doc.heading(2, "6. DirectCLR against the SimCLR variants (Fig. 9) and the ablations (6.3)")
    _figure_if_drawn(
        doc,
        drawn,
        "fig9",
        "Fig. 9 analogue: DirectCLR's representation spectrum against "
        "SimCLR with (a) an MLP, (b) a linear, (c) no projector.",
        how_to_read="DirectCLR applies the loss to the sub-vector r[:d0] only, with no trainable "
        "projector. The paper finds its representation spectrum close to SimCLR's with a "
        "projector and unlike SimCLR's without one (panel c).",
    )
    if "ablation" in drawn:
        doc.image(
            drawn["ablation"],
            "Representation spectra of DirectCLR, the fixed low-rank "
            "and trainable diagonal projectors, and SimCLR's linear "
            "projector.",
        )
        doc.how_to_read(
            "Section 6.3: a fixed random projector of rank d0 is DirectCLR up to a fixed "
            "rotation, so the paper expects the same behaviour "
            f"({PAPER_TOP1['fixed-lowrank']:.1f}% vs {PAPER_TOP1['directclr']:.1f}%); a "
            "trainable diagonal projector is enough to align with the backbone, about as good as "
            f"a linear one ({PAPER_TOP1['diagonal']:.1f}% vs {PAPER_TOP1['simclr-linear']:.1f}%)."
        )


def d0_sweep(doc: Document, manifest: Manifest, drawn: Mapping[str, str]) -> None:
    """7. DirectCLR's sub-vector size d0, swept at the full scale."""
    doc.heading(2, "7. DirectCLR's sub-vector size d0")
    if "d0" not in drawn:
        doc.paragraph(
            "Skipped at this scale (it costs "
            f"{len(D0_DIVISORS_TEXT)} more DirectCLR pretraining runs): run `--scale full` for "
            f"the sweep over d0 in {{{', '.join(D0_DIVISORS_TEXT)}}}."
            if manifest.settings.scale == "quick"
            else "No sweep in this run."
        )
        return
    doc.image(
        drawn["d0"],
        "DirectCLR with different d0: linear top-1 on the full r and on "
        "r[:d0], and the RankMe of r.",
    )
    doc.table(
        ["d0", "linear top-1 on r (%)", "on r[:d0] (%)", "RankMe of r", "collapsed dims of r"],
        [
            [
                p["d0"],
                percent(p["top1"]),
                percent(p["subvector_top1"]),
                number(p["rankme"]),
                count(p["collapsed_dims"]),
            ]
            for p in d0_sweep_points(manifest)
        ],
    )
    doc.how_to_read(
        "The paper uses d0 = 360 of 2048 and does not report a sweep. Small d0 trains "
        "few dimensions directly and leaves the rest to the residual connection (its "
        "Fig. 10); large d0 brings back the collapse the loss causes on what it sees."
    )


def training_curves(doc: Document, drawn: Mapping[str, str]) -> None:
    """8. The online probe and the ranks, epoch by epoch."""
    doc.heading(2, "8. Over training: online accuracy and rank")
    _figure_if_drawn(
        doc,
        drawn,
        "curves",
        "Per epoch, on held-out images: the online linear probe's "
        "top-1, and the RankMe of the representation r and of the "
        "embedding z, for every method.",
        how_to_read="The online probe is a linear layer trained alongside the backbone on the "
        "detached representation, so it lags the offline probe of the table; use it for trends. "
        "RankMe of z is bounded by the embedding dimension (d0 for DirectCLR, rep_dim for the "
        "methods without a projector); RankMe of r by the representation's.",
    )


def _figure_if_drawn(
    doc: Document, drawn: Mapping[str, str], key: str, caption: str, *, how_to_read: str
) -> None:
    """A figure (when the data allowed it), then how to read it (always)."""
    if key in drawn:
        doc.image(drawn[key], caption)
    doc.how_to_read(how_to_read)
