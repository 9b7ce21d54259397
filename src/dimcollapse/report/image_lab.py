"""The report's section on sections 4-5 on real images: the linear encoders of
:mod:`dimcollapse.toy.images` trained on the dataset's pixels, read from ``reproduce.json``'s
``images`` block (one list of records per seed): a table, a figure and the paired comparisons
(depth 2 against depth 1, strongest against weakest augmentation)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.manifest import Manifest
from dimcollapse.plots import pyplot
from dimcollapse.report.document import Document
from dimcollapse.report.figures import save_and_close
from dimcollapse.report.numbers import interval, number
from dimcollapse.stats import judge_greater, mean, paired_differences

FIGURE = "figures/image_lab.png"
#: The secondary table's thresholds shown (fractions of sigma_1; live values).
SHOWN_TAILS = (1e-4, 1e-6, 1e-8)


def cells(images: Mapping[str, Any]) -> dict[tuple[str, Any], list[dict[str, Any]]]:
    """``{(sweep, value): [record of each seed, in seed order]}`` (only complete cells)."""
    per_seed = images.get("records") or []
    out: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for records in per_seed:
        for rec in records:
            out.setdefault((rec["sweep"], _hashable(rec["value"])), []).append(rec)
    return {k: v for k, v in out.items() if len(v) == len(per_seed)}


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _final(rec: Mapping[str, Any], when: str = "final") -> Mapping[str, Any]:
    return rec[when]["summary"]


def _tail(summary: Mapping[str, Any], t: float) -> int | None:
    for threshold, count in zip(summary.get("tail_thresholds", []), summary.get("tail_counts", [])):
        if math.isclose(float(threshold), t, rel_tol=1e-9):
            return int(count)
    return None


def _mean_text(values: Sequence[float]) -> str:
    m = mean(values)
    per = ", ".join(f"{v:g}" for v in values)
    return f"{number(m, 1)} ({per})"


def table_rows(images: Mapping[str, Any]) -> list[list[str]]:
    """One row per encoder: collapsed (cliff rule) at init -> final, dead, largest drop, the
    tail counts, the loss."""
    rows = []
    for (sweep, _value), recs in cells(images).items():
        init = [float(_final(r, "init")["collapsed_dims"]) for r in recs]
        final = [float(_final(r)["collapsed_dims"]) for r in recs]
        dead = [len(_final(r)["dead_dims"]) for r in recs]
        drops = [_final(r).get("cliff_decades") or 0.0 for r in recs]
        tails = []
        for t in SHOWN_TAILS:
            counts = [_tail(_final(r), t) for r in recs]
            init_counts = [_tail(_final(r, "init"), t) for r in recs]
            if any(c is None for c in counts + init_counts):
                tails.append("n/a")
                continue
            tails.append(f"{number(mean(init_counts), 1)} -> {number(mean(counts), 1)}")
        rows.append(
            [
                f"{sweep}: {recs[0]['label']}",
                f"{number(mean(init), 1)} -> {_mean_text(final)}",
                f"{max(dead)}",
                f"{number(mean(drops), 1)}",
                *tails,
                f"{number(mean([r['loss'][1] for r in recs]), 3)}",
            ]
        )
    return rows


def comparison(
    images: Mapping[str, Any], a: tuple[str, Any], b: tuple[str, Any], tail: float | None = None
) -> str | None:
    """``a - b`` in collapsed dimensions (cliff rule, or the count under ``tail``), paired by
    seed, with its interval and verdict."""
    table = cells(images)
    if a not in table or b not in table:
        return None

    def counts(recs: Sequence[Mapping[str, Any]]) -> list[float]:
        if tail is None:
            return [float(_final(r)["collapsed_dims"]) for r in recs]
        return [float(_tail(_final(r), tail) or 0) for r in recs]

    diffs = paired_differences(counts(table[a]), counts(table[b]))
    judgement = judge_greater(diffs)
    what = "collapsed (cliff rule)" if tail is None else f"count under {tail:g} x sigma_1"
    return (
        f"{table[a][0]['label']} - {table[b][0]['label']}, {what}: "
        f"{number(mean(diffs), 1)}{interval(judgement.ci95, 1)} ({judgement.verdict} at 95%, "
        f"{len(diffs)} seeds)"
    )


def figure_image_lab(images: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Three panels: collapsed dimensions against depth (real augmentations and noise, init and
    final, cliff rule and the count under 1e-6), against augmentation strength at one layer,
    and the mean final spectra by depth (row-normalised z, log scale)."""
    table = cells(images)
    fig, (depth_ax, strength_ax, spec_ax) = pyplot().subplots(1, 3, figsize=(16, 4.6))
    for sweep, color in (("depth", "C0"), ("depth-noise", "C1")):
        keys = sorted(k for k in table if k[0] == sweep)
        if not keys:
            continue
        xs = [k[1] for k in keys]
        name = "real augmentations" if sweep == "depth" else "additive noise"
        for when, style in (("final", "o-"), ("init", "o:")):
            ys = [mean([_final(r, when)["collapsed_dims"] for r in table[k]]) for k in keys]
            depth_ax.plot(xs, ys, style, color=color, label=f"{name}, cliff rule ({when})")
        tail = [mean([_tail(_final(r), 1e-6) or 0 for r in table[k]]) for k in keys]
        depth_ax.plot(xs, tail, "s--", color=color, alpha=0.5, label=f"{name}, under 1e-6 (final)")
    depth_ax.set_xlabel("linear layers L")
    depth_ax.set_xticks(sorted({k[1] for k in table if k[0] in ("depth", "depth-noise")}))
    depth_ax.set_ylabel("collapsed dimensions of z (mean over seeds)")
    depth_ax.set_title("More layers, more collapse? (Fig. 6a on images)")
    strength = sorted(k for k in table if k[0] == "strength")
    if strength:
        xs = [k[1] for k in strength]
        ys = [mean([_final(r)["collapsed_dims"] for r in table[k]]) for k in strength]
        strength_ax.plot(xs, ys, "o-", label="cliff rule")
        for t, style in ((1e-4, "s--"), (1e-6, "^--")):
            tail = [mean([_tail(_final(r), t) or 0 for r in table[k]]) for k in strength]
            strength_ax.plot(xs, tail, style, alpha=0.6, label=f"under {t:g} x sigma_1")
    strength_ax.set_xlabel("augmentation strength (1 = the dataset's recipe)")
    strength_ax.set_ylabel("collapsed dimensions of z, one layer")
    strength_ax.set_title("Stronger augmentation, more collapse? (Theorem 1)")
    for k in sorted(k for k in table if k[0] == "depth"):
        spectra = [_final(r)["singular_values"] for r in table[k]]
        logs = [
            mean([math.log10(max(s[i] / s[0], 1e-30)) for s in spectra])
            for i in range(len(spectra[0]))
        ]
        spec_ax.plot(range(1, len(logs) + 1), logs, label=table[k][0]["label"])
    spec_ax.set_xlabel("index k")
    spec_ax.set_ylabel("log10 sigma_k / sigma_1 (row-normalised z)")
    spec_ax.set_title("Final embedding spectra by depth")
    for ax in (depth_ax, strength_ax, spec_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    save_and_close(fig, path)


def section(doc: Document, manifest: Manifest, drawn: Mapping[str, str]) -> None:
    """4b. The linear encoders on the dataset's pixels."""
    images = manifest.images
    if not images or not cells(images):
        return
    doc.heading(2, "4b. Sections 4-5 on real images: linear encoders on the pixels")
    if "image_lab" in drawn:
        doc.image(
            drawn["image_lab"],
            "Linear encoders trained with InfoNCE on the dataset's pixels: collapsed dimensions "
            "of z against depth and augmentation strength, and the final spectra by depth.",
        )
    header = ["encoder", "collapsed, cliff rule (init -> final; per seed)", "dead", "largest drop"]
    header += [f"under {t:g} (init -> final)" for t in SHOWN_TAILS] + ["final loss"]
    doc.table(header, table_rows(images))
    lines = [
        comparison(images, ("depth", 2), ("depth", 1)),
        comparison(images, ("depth", 2), ("depth", 1), tail=1e-6),
        comparison(images, ("depth", 3), ("depth", 1)),
        comparison(images, ("depth-noise", 2), ("depth-noise", 1)),
        comparison(images, ("strength", 1.5), ("strength", 0.25)),
        comparison(images, ("strength", 1.5), ("strength", 0.25), tail=1e-4),
    ]
    doc.bullets([line for line in lines if line])
    seeds = len(images.get("seeds") or [])
    doc.how_to_read(
        f"{seeds} seeds, {images.get('steps')} SGD steps of 256 image pairs each (lr 1, InfoNCE "
        "at temperature 0.1 on row-normalised z), bias-free linear layers 784 -> 128 (-> 128 "
        "...), PyTorch's default initialisation; the spectrum is that of 2,000 test images' z, "
        "row-normalised as the paper's spectrum.py. 'Collapsed' is the cliff rule (values past "
        "a drop of >= 3 decades between neighbours, or under float32's rounding floor); the "
        "counts under thresholds are the secondary table, live values only. A deep linear "
        "encoder can spread its spectrum over many decades without a single cliff: the counts "
        "under thresholds then grow with depth while the cliff rule counts only what reaches "
        "the rounding floor. Comparisons are paired by seed (the same seed draws the same "
        "views and batches for every encoder)."
    )
