"""The report's figures of accuracies and ranks (matplotlib, PNG), drawn from ``reproduce.json``.

Every function takes the plain dicts :func:`dimcollapse.reproduce.reproduce` collects (one run's
result: ``representation``/``embedding`` spectrum summaries, ``probe``, ``history``, and
``seeds`` with each seed's own result; or the baselines) and writes one PNG atomically. Methods
are named and coloured by :mod:`dimcollapse.methods`. The spectrum figures are in
:mod:`dimcollapse.report.spectrum_figures`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.ticker import MaxNLocator

from dimcollapse.manifest import Manifest
from dimcollapse.methods import D0_SWEEP_GROUP, METHOD_INFO, method_color, method_label
from dimcollapse.plots import DPI, pyplot, save_figure


def save_and_close(fig: Any, path: str | os.PathLike[str], *, layout: bool = True) -> None:
    """Write ``fig`` as the report draws its figures (tight layout, :data:`DPI`), then free it."""
    try:
        if layout:
            fig.tight_layout()
        save_figure(fig, path, dpi=DPI)
    finally:
        pyplot().close(fig)


def d0_sweep_points(manifest: Manifest | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The DirectCLR runs by d0 (the main run and the sweep's), sorted by d0."""
    points = []
    for run in Manifest.of(manifest).runs.values():
        if run.get("method") != "directclr" or run.get("d0") is None:
            continue
        if run.get("group") not in ("table1", D0_SWEEP_GROUP):
            continue
        subvector = run["probe"].get("subvector")
        points.append(
            {
                "name": run["name"],
                "d0": int(run["d0"]),
                "top1": run["probe"]["full"]["top1"],
                "subvector_top1": subvector["top1"] if subvector else None,
                "rankme": run["representation"]["rankme"],
                "collapsed_dims": run["representation"]["collapsed_dims"],
            }
        )
    return sorted(points, key=lambda p: p["d0"])


def figure_d0_sweep(
    points: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    rep_dim: int,
    default_d0: int | None = None,
) -> None:
    """DirectCLR's d0 sweep: linear top-1 (full r and r[:d0]) and representation RankMe vs d0."""
    points = sorted(points, key=lambda p: p["d0"])
    d0 = [p["d0"] for p in points]
    fig, (acc_ax, rank_ax) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    acc_ax.plot(d0, [100 * p["top1"] for p in points], "o-", label="probe on the full r")
    sub = [(p["d0"], p["subvector_top1"]) for p in points if p.get("subvector_top1") is not None]
    if sub:
        acc_ax.plot([a for a, _ in sub], [100 * b for _, b in sub], "s--", label="probe on r[:d0]")
    acc_ax.set_xscale("log", base=2)
    acc_ax.set_xlabel(f"d0 (sub-vector size; rep_dim = {rep_dim})")
    acc_ax.set_ylabel("offline linear top-1 (%)")
    acc_ax.set_title("DirectCLR: accuracy against d0")
    acc_ax.grid(True, alpha=0.3)
    acc_ax.legend(fontsize="small")
    rank_ax.plot(d0, [p["rankme"] for p in points], "o-", color=method_color("directclr"))
    rank_ax.set_xscale("log", base=2)
    rank_ax.set_xlabel(f"d0 (sub-vector size; rep_dim = {rep_dim})")
    rank_ax.set_ylabel("RankMe of the representation r")
    rank_ax.set_title("DirectCLR: effective rank of r against d0")
    rank_ax.grid(True, alpha=0.3)
    for ax in (acc_ax, rank_ax):
        ax.set_xticks(d0)
        ax.set_xticklabels([str(v) for v in d0])
        if default_d0 is not None:
            ax.axvline(
                default_d0,
                color="grey",
                ls=":",
                lw=1.2,
                label=f"default d0 = {default_d0} (the paper's 360/2048)",
            )
    acc_ax.legend(fontsize="small")
    save_and_close(fig, path)


#: The panels of the training curves: (history key, scale, y label, title).
_HISTORY_PANELS = (
    ("online_probe_top1", 100.0, "online linear probe top-1 (%)", "Accuracy during training"),
    ("representation_rankme", 1.0, "RankMe of the representation r", "Rank of r"),
    ("embedding_rankme", 1.0, "RankMe of the embedding z", "Rank of z (what the loss sees)"),
)


def figure_training_curves(
    runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]
) -> None:
    """Online-probe accuracy, representation RankMe and embedding RankMe over the epochs."""
    fig, axes = pyplot().subplots(1, 3, figsize=(15, 4.6))
    for ax, (key, scale, ylabel, title) in zip(axes, _HISTORY_PANELS):
        for name, run in runs.items():
            _draw_history(ax, name, run, key, scale)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=min(6, max(1, len(labels))),
        fontsize="small",
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_and_close(fig, path, layout=False)


def _draw_history(ax: Any, name: str, run: Mapping[str, Any], key: str, scale: float) -> None:
    """One run's ``history[key]`` per epoch; with several seeds each seed faint under the mean."""
    method = run["method"]
    # an unknown method takes the next colour of matplotlib's cycle
    color = METHOD_INFO[method].color if method in METHOD_INFO else None
    seeds = run.get("seeds") or []
    if len(seeds) > 1:
        for seed in seeds:
            logged = [h for h in seed.get("history", []) if h.get(key) is not None]
            ax.plot(
                [h["epoch"] for h in logged],
                [scale * h[key] for h in logged],
                "-",
                lw=0.8,
                alpha=0.25,
                color=color,
            )
    logged = [h for h in run.get("history", []) if h.get(key) is not None]
    if not logged:
        return
    ax.plot(
        [h["epoch"] for h in logged],
        [scale * h[key] for h in logged],
        "o-",
        ms=3,
        color=color,
        label=method_label(name),
    )


def figure_accuracy(
    runs: Mapping[str, Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    paper: Mapping[str, float],
) -> None:
    """Our offline linear top-1 per method against the baselines, the paper's beside it."""
    names = list(runs)
    fig, (ours_ax, paper_ax) = pyplot().subplots(
        1,
        2,
        figsize=(12, 0.55 * len(names) + 1.8),
        sharey=False,
        gridspec_kw={"width_ratios": [3, 2]},
    )
    rows = list(range(len(names)))[::-1]
    colors = [method_color(runs[n]["method"]) for n in names]
    _draw_our_accuracy(ours_ax, runs, baselines, rows, colors)
    # the sweep's extra DirectCLR runs have no number in the paper
    paper_top1 = [
        paper.get(runs[n]["method"]) if runs[n].get("group") != D0_SWEEP_GROUP else None
        for n in names
    ]
    _draw_paper_accuracy(paper_ax, paper_top1, rows, colors)
    paper_ax.set_ylim(ours_ax.get_ylim())
    paper_ax.grid(True, axis="x", alpha=0.3)
    paper_ax.set_xlim(0, 100)
    save_and_close(fig, path)


def _draw_our_accuracy(
    ax: Any,
    runs: Mapping[str, Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, Any]],
    rows: Sequence[int],
    colors: Sequence[str],
) -> None:
    """Each run's mean (diamond), seeds (dots) and interval (bar), the baselines as lines."""
    names = list(runs)
    means = [100 * runs[n]["probe"]["full"]["top1"] for n in names]
    cis = [runs[n]["probe"]["full"].get("top1_ci95") for n in names]
    shown = _draw_accuracy_points(ax, runs, rows, means, cis, colors)
    _draw_baselines(ax, baselines, shown)
    ax.set_yticks(rows)
    ax.set_yticklabels([method_label(n) for n in names])
    num_seeds = max(len(runs[n].get("seeds") or [1]) for n in names)
    ax.set_xlabel("offline linear top-1 (%), this run")
    ax.set_title(
        f"Ours: mean of {num_seeds} seeds (diamond), each seed (dot), 95% interval (bar)"
        if num_seeds > 1
        else "Ours (one seed: no interval)",
        fontsize="medium",
    )
    ax.legend(fontsize="small", loc="lower right")
    ax.set_ylim(-0.7, len(names) - 0.1)
    ax.grid(True, axis="x", alpha=0.3)
    low = [100 * ci[0] for ci in cis if ci] + shown
    high = [100 * ci[1] for ci in cis if ci] + shown
    ax.set_xlim(max(0.0, min(low) - 3), min(100.0, max(high) + 6))


def _draw_accuracy_points(
    ax: Any,
    runs: Mapping[str, Mapping[str, Any]],
    rows: Sequence[int],
    means: Sequence[float],
    cis: Sequence[Sequence[float] | None],
    colors: Sequence[str],
) -> list[float]:
    """Draw the means, intervals and seeds; return every value drawn (for the axis limits)."""
    errors = [
        [v - 100 * ci[0] if ci else 0.0 for v, ci in zip(means, cis)],
        [100 * ci[1] - v if ci else 0.0 for v, ci in zip(means, cis)],
    ]
    ax.errorbar(
        means,
        rows,
        xerr=errors if any(ci for ci in cis) else None,
        fmt="none",
        ecolor="black",
        elinewidth=1.2,
        capsize=4,
        zorder=3,
    )
    shown = list(means)
    for row, name in zip(rows, runs):
        seeds = runs[name].get("seeds") or []
        values = [100 * s["probe"]["full"]["top1"] for s in seeds if "probe" in s]
        if len(values) > 1:
            ax.plot(values, [row] * len(values), "o", ms=3.5, color="white", mec="black", zorder=4)
            shown += values
    ax.scatter(means, rows, marker="D", s=40, c=colors, edgecolors="black", zorder=5)
    for row, value, ci in zip(rows, means, cis):
        text = f"  {value:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
        ax.text(value, row + 0.28, text, va="center", fontsize="x-small")
    return shown


def _draw_baselines(
    ax: Any, baselines: Mapping[str, Mapping[str, Any]], shown: list[float]
) -> None:
    """The raw-pixel and random-backbone top-1 as vertical lines; appends them to ``shown``."""
    span = (min(shown), max(shown))
    for key, color, style in (("pixels", "k", "--"), ("random", "grey", ":")):
        if key not in baselines:
            continue
        value = 100 * baselines[key]["probe"]["top1"]
        # a line far from the methods would squeeze their intervals: name it in the legend only
        far = value < span[0] - 15 or value > span[1] + 15
        label = f"{baselines[key]['name']}: {value:.1f}" + (" (off the axis)" if far else "")
        if far:
            ax.plot([], [], color=color, ls=style, label=label)
            continue
        ax.axvline(value, color=color, ls=style, label=label)
        shown.append(value)


def _draw_paper_accuracy(
    ax: Any, paper_top1: Sequence[float | None], rows: Sequence[int], colors: Sequence[str]
) -> None:
    """The paper's top-1 beside ours, one bar per run it has a number for."""
    ax.barh(
        [row for row, v in zip(rows, paper_top1) if v is not None],
        [v for v in paper_top1 if v is not None],
        color=[c for c, v in zip(colors, paper_top1) if v is not None],
        alpha=0.6,
    )
    for row, value in zip(rows, paper_top1):
        if value is not None:
            ax.text(value, row, f" {value:.1f}", va="center", fontsize="small")
    ax.set_xlabel("linear top-1 (%), paper: ResNet-50, ImageNet, 100 epochs")
    ax.set_title("Paper (Table 1, section 6.3)")
    ax.set_yticks(rows)
    ax.set_yticklabels([])
