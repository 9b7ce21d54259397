"""The report's spectrum figures (Figs. 2, 7b and 9, and the section 6.3 ablations).

Each panel reuses :func:`dimcollapse.plots.draw_spectra` (log scale, sorted singular values of
the Eq. 1 covariance, the paper's convention), then gives every method its colour from
:mod:`dimcollapse.methods`. Each panel plots the spectrum the claims and tables read
(:func:`dimcollapse.report.tail.measured_summary`: of row-normalised vectors when the run
recorded them, the paper's measure; of the raw vectors otherwise) and says which. A run is one
plain dict of ``reproduce.json``: its ``representation`` and ``embedding`` hold spectrum
summaries with ``singular_values``. The report's other figures are in
:mod:`dimcollapse.report.figures`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.ticker import FixedLocator, FuncFormatter

from dimcollapse.methods import METHOD_INFO, method_color, method_label
from dimcollapse.plots import draw_spectra, pyplot
from dimcollapse.report.figures import save_and_close
from dimcollapse.report.tail import measured_space, measured_summary, seed_counts


def figure_embedding_spectrum(
    run: Mapping[str, Any], path: str | os.PathLike[str], *, dataset: str
) -> None:
    """Fig. 2 analogue: the embedding-space spectrum of SimCLR with its MLP projector."""
    fig, ax = pyplot().subplots(figsize=(7.4, 4.6))
    rel_tol = measured_summary(run, "embedding")["rel_tol"]
    draw_spectra(
        ax,
        [_spectrum_series(run, "embedding", "embedding z of SimCLR (MLP projector)")],
        rel_tol=rel_tol,
        title=f"Fig. 2 analogue: embedding spectrum, {dataset} test images",
    )
    _color_lines(ax, [method_color("simclr-mlp")], loc="lower left")
    _threshold_note(ax, rel_tol, [run], "embedding", top=True)
    save_and_close(fig, path)


def figure_representation_spectra(
    runs: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str,
) -> None:
    """Representation-space spectra of several runs overlaid (Fig. 7b analogue, ablations)."""
    fig, ax = pyplot().subplots(figsize=(6.6, 4.4))
    rel_tol = measured_summary(runs[0], "representation")["rel_tol"]
    draw_spectra(
        ax, [_spectrum_series(r, "representation") for r in runs], rel_tol=rel_tol, title=title
    )
    _color_lines(ax, [method_color(r["method"], "k") for r in runs])
    _threshold_note(ax, rel_tol, runs, "representation")
    save_and_close(fig, path)


def figure_fig9(runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Fig. 9 analogue: DirectCLR's representation spectrum against each SimCLR variant."""
    others = [m for m in ("simclr-mlp", "simclr-linear", "simclr-none") if m in runs]
    fig, axes = pyplot().subplots(1, len(others), figsize=(5.2 * len(others), 4.4), sharey=True)
    axes = list(axes) if len(others) > 1 else [axes]
    rel_tol = measured_summary(runs["directclr"], "representation")["rel_tol"]
    for ax, letter, other in zip(axes, "abc", others):
        draw_spectra(
            ax,
            [
                _spectrum_series(runs["directclr"], "representation"),
                _spectrum_series(runs[other], "representation"),
            ],
            rel_tol=rel_tol,
            title=f"({letter}) DirectCLR vs {method_label(other)}",
        )
        _color_lines(ax, [method_color("directclr"), method_color(other)], fontsize="x-small")
        ax.title.set_fontsize("medium")
    for ax in axes[1:]:
        ax.set_ylabel("")
    which = _vectors_text([runs["directclr"], *(runs[o] for o in others)], "representation")
    fig.suptitle(
        f"Fig. 9 analogue: representation spectra (backbone output r, test images; {which})"
    )
    save_and_close(fig, path)


def figure_both_spectra(
    runs: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, title: str
) -> None:
    """Two panels, the representation r's spectra and the embedding z's, one line per run in
    its method's colour (no dotted thresholds: the legends give each run's cliff-rule count)."""
    fig, axes = pyplot().subplots(1, 2, figsize=(13, 5.2))
    panels = (("representation", "(a) representation r"), ("embedding", "(b) embedding z"))
    for ax, (space, panel) in zip(axes, panels):
        series = [_spectrum_series(r, space) for r in runs]
        draw_spectra(ax, series, title=f"{panel}: {_vectors_text(runs, space)}")
        colors = [method_color(r["method"], "k") for r in runs]
        _color_lines(ax, colors, loc="best", fontsize="x-small")
    fig.suptitle(f"{title} (test images; 'collapsed': the cliff rule, a drop of >= 3 decades)")
    save_and_close(fig, path)


def _spectrum_series(run: Mapping[str, Any], space: str, label: str | None = None) -> tuple:
    """``(legend text, singular values)`` of one run's ``representation`` or ``embedding``, as
    the claims read it (:func:`~dimcollapse.report.tail.measured_summary`)."""
    spectrum = measured_summary(run, space)
    method = run.get("method", "")
    name = label or (METHOD_INFO[method].label if method in METHOD_INFO else run.get("name", "?"))
    num_seeds = len(run.get("seeds") or [run])
    collapsed = spectrum["collapsed_dims"]
    collapsed_text = f"{collapsed:g}" if num_seeds == 1 else f"{collapsed:.1f}"
    text = f"{name} (RankMe {spectrum['rankme']:.1f}, {collapsed_text}/{spectrum['dim']} collapsed"
    text += ")" if num_seeds == 1 else f"; {num_seeds} seeds)"
    return text, spectrum["singular_values"]


def _color_lines(
    ax: Any, colors: Sequence[str], *, loc: str = "lower left", fontsize: str = "small"
) -> None:
    """Recolour the solid lines (and their dotted thresholds) drawn by draw_spectra."""
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    dotted = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    for line, color in zip(solid, colors):
        line.set_color(color)
    for line, color in zip(dotted, colors):
        line.set_color(color)
    if ax.get_legend() is not None:
        ax.legend(fontsize=fontsize, loc=loc)


def _vectors_text(runs: Sequence[Mapping[str, Any]], space: str) -> str:
    """Which vectors the plotted spectra are of: ``row-normalised vectors``, ``raw vectors``,
    or (runs of both kinds) ``row-normalised vectors where recorded``."""
    normalized = {measured_space(r, space) != space for r in runs}
    if normalized == {True}:
        return "row-normalised vectors"
    return "raw vectors" if normalized == {False} else "row-normalised vectors where recorded"


def _threshold_note(
    ax: Any, rel_tol: float, runs: Sequence[Mapping[str, Any]], space: str, *, top: bool = True
) -> None:
    ax.text(
        0.99,
        0.99 if top else 0.01,
        f"{_vectors_text(runs, space)}; 'collapsed': the cliff rule (a drop of >= 3 decades); "
        f"dotted: {rel_tol:g} x $\\sigma_1$, a secondary threshold",
        transform=ax.transAxes,
        ha="right",
        va="top" if top else "bottom",
        fontsize="x-small",
        alpha=0.8,
    )


def figure_collapsed_tail(
    runs: Mapping[str, Mapping[str, Any]],
    thresholds: Sequence[float],
    path: str | os.PathLike[str],
) -> None:
    """Collapsed dimensions against the threshold (log x), per method, for the embedding z and
    the representation r: the mean over seeds, the bars spanning the seeds' range. Solid: what
    the claims read (row-normalised vectors when recorded); dashed: the raw vectors beside them."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11.6, 4.4))
    for ax, space, letter in zip(axes, ("embedding", "representation"), ("z", "r")):
        for name, run in runs.items():
            key = measured_space(run, space)
            keys = [key] + ([space] if key != space else [])
            for k in keys:
                rows = seed_counts(run, k, thresholds)
                if rows is None:
                    continue
                points = [
                    (t, [row[i] for row in rows])
                    for i, t in enumerate(thresholds)
                    if all(row[i] is not None for row in rows)
                ]
                if not points:
                    continue
                xs = [t for t, _ in points]
                means = [sum(v) / len(v) for _, v in points]
                low = [m - min(v) for m, (_, v) in zip(means, points)]
                high = [max(v) - m for m, (_, v) in zip(means, points)]
                raw_beside = k != key
                ax.errorbar(
                    xs,
                    means,
                    yerr=[low, high],
                    color=method_color(run.get("method", name), "k"),
                    ls="--" if raw_beside else "-",
                    lw=1.0 if raw_beside else 1.8,
                    marker="o",
                    ms=3,
                    capsize=2,
                    label=None if raw_beside else method_label(run.get("method", name)),
                )
        _tail_axes(ax, letter)
    save_and_close(fig, path)


def _tail_axes(ax: Any, letter: str) -> None:
    """Scales, ticks, labels and legend of one panel of :func:`figure_collapsed_tail`."""
    ax.set_xscale("log")
    ax.invert_xaxis()
    # symlog: a projector that removes most dimensions by construction (the fixed low-rank
    # one) would otherwise flatten every other method's 0-3 onto the axis
    ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
    ax.set_ylim(bottom=-0.1)
    ax.yaxis.set_major_locator(FixedLocator([0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("threshold: a fraction of $\\sigma_1$ (log scale, stricter to the right)")
    ax.set_ylabel(f"collapsed dimensions of {letter} (mean over seeds; symlog)")
    ax.set_title(f"{'Embedding z' if letter == 'z' else 'Representation r'}: collapsed tail")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small", loc="center right")
