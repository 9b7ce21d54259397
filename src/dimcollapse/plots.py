"""Spectrum figures in the paper's style (Figs. 2, 7b, 9): log singular value against rank index.

Only matplotlib and NumPy: no training imports. Figures are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from dimcollapse.fileio import atomic_path

#: The resolution of every saved figure of the report and the toy lab.
DPI = 110


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: figures are files, no display is needed."""
    # torch-free --help (commands.spectrum reads this module), matplotlib-free spectrum without
    # --plot and toy --no-figures: matplotlib with pyplot 470 ms. And Agg is chosen when a
    # figure is drawn, not on import: a notebook that imports dimcollapse keeps its backend.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # torch-free --help: see above

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: float | None = None) -> None:
    """Write ``fig`` to ``path`` atomically (no partial file), in the format of its suffix."""
    fmt = os.fspath(path).rsplit(".", 1)[-1].lower()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)


def draw_spectra(
    ax: Any,
    series: Sequence[tuple[str, Any]],
    *,
    rel_tol: float | None = None,
    title: str | None = None,
) -> None:
    """Draw descending singular values of each ``(label, sigma)`` on a log y axis of ``ax``.

    Exact zeros cannot sit on a log axis: they are drawn at the smallest positive value of all
    series, divided by 10, as a visible floor. With ``rel_tol`` each series' collapse threshold
    (``rel_tol * sigma_1``) is a dotted line in its colour.
    """
    positives = [np.asarray(s, float)[np.asarray(s, float) > 0] for _, s in series]
    floor_vals = [p.min() for p in positives if p.size]
    floor = (min(floor_vals) / 10.0) if floor_vals else 1e-30
    for label, sv in series:
        sv = np.asarray(sv, dtype=np.float64)
        k = np.arange(1, sv.size + 1)
        (line,) = ax.plot(k, np.maximum(sv, floor), lw=1.8, label=label)
        if rel_tol is not None and sv.size and sv[0] > 0:
            ax.axhline(rel_tol * sv[0], color=line.get_color(), ls=":", lw=1.0, alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("singular value rank index k")
    ax.set_ylabel("singular value $\\sigma_k$ of the covariance (log scale)")
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title)
    if len(series) > 1 or (series and series[0][0]):
        ax.legend(fontsize="small", loc="lower left")


def plot_spectra(
    series: Sequence[tuple[str, Any]],
    path: str | os.PathLike[str],
    *,
    rel_tol: float | None = None,
    title: str | None = None,
) -> None:
    """Write a figure of one or several spectra (overlaid, with a legend) to ``path``.

    Args:
        series: ``(label, singular_values)`` pairs; each sigma is descending, shape (d,).
        path: output image (.png, .pdf or .svg); written atomically.
        rel_tol: draw each series' collapse threshold ``rel_tol * sigma_1`` as a dotted line.
        title: figure title.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    try:
        draw_spectra(ax, series, rel_tol=rel_tol, title=title)
        if rel_tol is not None:
            ax.text(
                0.99,
                0.99,
                f"dotted: collapse threshold {rel_tol:g} x $\\sigma_1$",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize="x-small",
                alpha=0.8,
            )
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
