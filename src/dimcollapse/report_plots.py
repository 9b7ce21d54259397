"""The reproduction report's figures (matplotlib, PNG), drawn from ``reproduce.json``'s data.

Every function takes the plain dicts :func:`dimcollapse.reproduce.reproduce` collects (one run's
result: ``representation``/``embedding`` spectrum summaries with ``singular_values``, ``probe``,
``history``; or the baselines) and writes one PNG atomically. Spectrum panels reuse
:func:`dimcollapse.plots.draw_spectra` (log scale, sorted singular values of the Eq. 1
covariance, the paper's convention).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dimcollapse.fileio import atomic_path
from dimcollapse.plots import draw_spectra

DPI = 110

#: One colour per method, the same in every figure.
METHOD_COLORS: dict[str, str] = {
    "simclr-mlp": "#1f77b4",
    "simclr-linear": "#ff7f0e",
    "simclr-none": "#d62728",
    "directclr": "#2ca02c",
    "fixed-lowrank": "#9467bd",
    "diagonal": "#8c564b",
}
#: Readable names for legends.
METHOD_LABELS: dict[str, str] = {
    "simclr-mlp": "SimCLR, 2-layer MLP projector",
    "simclr-linear": "SimCLR, linear projector",
    "simclr-none": "SimCLR, no projector",
    "directclr": "DirectCLR",
    "fixed-lowrank": "fixed low-rank projector",
    "diagonal": "trainable diagonal projector",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str], *, layout: bool = True) -> None:
    plt = _pyplot()
    try:
        if layout:
            fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)


def _threshold_note(ax: Any, rel_tol: float, *, top: bool = True) -> None:
    ax.text(
        0.99,
        0.99 if top else 0.01,
        f"dotted: collapse threshold {rel_tol:g} x $\\sigma_1$",
        transform=ax.transAxes,
        ha="right",
        va="top" if top else "bottom",
        fontsize="x-small",
        alpha=0.8,
    )


def _spectrum_series(run: Mapping[str, Any], space: str, label: str | None = None) -> tuple:
    s = run[space]
    name = label or METHOD_LABELS.get(run.get("method", ""), run.get("name", "?"))
    k = len(run.get("seeds") or [run])
    collapsed = s["collapsed_dims"]
    collapsed_text = f"{collapsed:g}" if k == 1 else f"{collapsed:.1f}"
    text = f"{name} (RankMe {s['rankme']:.1f}, {collapsed_text}/{s['dim']} collapsed"
    text += ")" if k == 1 else f"; {k} seeds)"
    return text, s["singular_values"]


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


def figure_embedding_spectrum(
    run: Mapping[str, Any], path: str | os.PathLike[str], *, dataset: str
) -> None:
    """Fig. 2 analogue: the embedding-space spectrum of SimCLR with its MLP projector."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.4, 4.6))
    rel_tol = run["embedding"]["rel_tol"]
    draw_spectra(
        ax,
        [_spectrum_series(run, "embedding", "embedding z of SimCLR (MLP projector)")],
        rel_tol=rel_tol,
        title=f"Fig. 2 analogue: embedding spectrum, {dataset} test images",
    )
    _color_lines(ax, [METHOD_COLORS["simclr-mlp"]], loc="lower left")
    _threshold_note(ax, rel_tol, top=True)
    _save(fig, path)


def figure_representation_spectra(
    runs: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    title: str,
) -> None:
    """Representation-space spectra of several runs overlaid (Fig. 7b analogue, ablations)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    rel_tol = runs[0]["representation"]["rel_tol"]
    draw_spectra(
        ax, [_spectrum_series(r, "representation") for r in runs], rel_tol=rel_tol, title=title
    )
    _color_lines(ax, [METHOD_COLORS.get(r["method"], "k") for r in runs])
    _threshold_note(ax, rel_tol)
    _save(fig, path)


def figure_fig9(runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Fig. 9 analogue: DirectCLR's representation spectrum against each SimCLR variant."""
    plt = _pyplot()
    others = [m for m in ("simclr-mlp", "simclr-linear", "simclr-none") if m in runs]
    fig, axes = plt.subplots(1, len(others), figsize=(5.2 * len(others), 4.4), sharey=True)
    axes = list(axes) if len(others) > 1 else [axes]
    rel_tol = runs["directclr"]["representation"]["rel_tol"]
    for ax, letter, other in zip(axes, "abc", others):
        draw_spectra(
            ax,
            [
                _spectrum_series(runs["directclr"], "representation"),
                _spectrum_series(runs[other], "representation"),
            ],
            rel_tol=rel_tol,
            title=f"({letter}) DirectCLR vs {METHOD_LABELS[other]}",
        )
        _color_lines(ax, [METHOD_COLORS["directclr"], METHOD_COLORS[other]], fontsize="x-small")
        ax.title.set_fontsize("medium")
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.suptitle("Fig. 9 analogue: representation spectra (backbone output r, test images)")
    _save(fig, path)


def figure_d0_sweep(
    points: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    rep_dim: int,
    default_d0: int | None = None,
) -> None:
    """DirectCLR's d0 sweep: linear top-1 (full r and r[:d0]) and representation RankMe vs d0."""
    plt = _pyplot()
    pts = sorted(points, key=lambda p: p["d0"])
    d0 = [p["d0"] for p in pts]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(d0, [100 * p["top1"] for p in pts], "o-", label="probe on the full r")
    sub = [(p["d0"], p.get("subvector_top1")) for p in pts if p.get("subvector_top1") is not None]
    if sub:
        ax1.plot([a for a, _ in sub], [100 * b for _, b in sub], "s--", label="probe on r[:d0]")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel(f"d0 (sub-vector size; rep_dim = {rep_dim})")
    ax1.set_ylabel("offline linear top-1 (%)")
    ax1.set_title("DirectCLR: accuracy against d0")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize="small")
    ax2.plot(d0, [p["rankme"] for p in pts], "o-", color=METHOD_COLORS["directclr"])
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel(f"d0 (sub-vector size; rep_dim = {rep_dim})")
    ax2.set_ylabel("RankMe of the representation r")
    ax2.set_title("DirectCLR: effective rank of r against d0")
    ax2.grid(True, alpha=0.3)
    for ax in (ax1, ax2):
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
    ax1.legend(fontsize="small")
    _save(fig, path)


def figure_training_curves(
    runs: Mapping[str, Mapping[str, Any]], path: str | os.PathLike[str]
) -> None:
    """Online-probe accuracy, representation RankMe and embedding RankMe over the epochs."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    panels = (
        ("online_probe_top1", 100.0, "online linear probe top-1 (%)", "Accuracy during training"),
        ("representation_rankme", 1.0, "RankMe of the representation r", "Rank of r"),
        ("embedding_rankme", 1.0, "RankMe of the embedding z", "Rank of z (what the loss sees)"),
    )
    for ax, (key, scale, ylabel, title) in zip(axes, panels):
        for name, run in runs.items():
            color = METHOD_COLORS.get(run["method"])
            seeds = run.get("seeds") or []
            if len(seeds) > 1:  # each seed faint, the mean on top
                for seed in seeds:
                    sh = [h for h in seed.get("history", []) if h.get(key) is not None]
                    ax.plot(
                        [h["epoch"] for h in sh],
                        [scale * h[key] for h in sh],
                        "-",
                        lw=0.8,
                        alpha=0.25,
                        color=color,
                    )
            hist = [h for h in run.get("history", []) if h.get(key) is not None]
            if not hist:
                continue
            ax.plot(
                [h["epoch"] for h in hist],
                [scale * h[key] for h in hist],
                "o-",
                ms=3,
                color=color,
                label=METHOD_LABELS.get(name, name),
            )
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
    _save(fig, path, layout=False)


def figure_accuracy(
    runs: Mapping[str, Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    paper: Mapping[str, float],
) -> None:
    """Our offline linear top-1 per method against the baselines, the paper's beside it."""
    plt = _pyplot()
    names = [n for n in runs]
    fig, (ax1, ax2) = plt.subplots(
        1,
        2,
        figsize=(12, 0.55 * len(names) + 1.8),
        sharey=False,
        gridspec_kw={"width_ratios": [3, 2]},
    )
    y = list(range(len(names)))[::-1]
    ours = [100 * runs[n]["probe"]["full"]["top1"] for n in names]
    colors = [METHOD_COLORS.get(runs[n]["method"], "grey") for n in names]
    cis = [runs[n]["probe"]["full"].get("top1_ci95") for n in names]
    err = [
        [v - 100 * ci[0] if ci else 0.0 for v, ci in zip(ours, cis)],
        [100 * ci[1] - v if ci else 0.0 for v, ci in zip(ours, cis)],
    ]
    has_ci = any(ci for ci in cis)
    ax1.errorbar(
        ours,
        y,
        xerr=err if has_ci else None,
        fmt="none",
        ecolor="black",
        elinewidth=1.2,
        capsize=4,
        zorder=3,
    )
    shown = list(ours)
    for yi, name in zip(y, names):
        seeds = runs[name].get("seeds") or []
        vals = [100 * s["probe"]["full"]["top1"] for s in seeds if "probe" in s]
        if len(vals) > 1:  # every seed as a dot on its bar
            ax1.plot(vals, [yi] * len(vals), "o", ms=3.5, color="white", mec="black", zorder=4)
            shown += vals
    ax1.scatter(ours, y, marker="D", s=40, c=colors, edgecolors="black", zorder=5)
    for yi, v, ci in zip(y, ours, cis):
        text = f"  {v:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
        ax1.text(v, yi + 0.28, text, va="center", fontsize="x-small")
    styles = (("pixels", "k", "--"), ("random", "grey", ":"))
    span = (min(shown), max(shown))
    for key, color, ls in styles:
        if key in baselines:
            v = 100 * baselines[key]["probe"]["top1"]
            far = v < span[0] - 15 or v > span[1] + 15  # keep the intervals readable
            label = f"{baselines[key]['name']}: {v:.1f}" + (" (off the axis)" if far else "")
            if far:
                ax1.plot([], [], color=color, ls=ls, label=label)
                continue
            ax1.axvline(v, color=color, ls=ls, label=label)
            shown.append(v)
    ax1.set_yticks(y)
    ax1.set_yticklabels([METHOD_LABELS.get(n, n) for n in names])
    k = max(len(runs[n].get("seeds") or [1]) for n in names)
    ax1.set_xlabel("offline linear top-1 (%), this run")
    ax1.set_title(
        f"Ours: mean of {k} seeds (diamond), each seed (dot), 95% interval (bar)"
        if k > 1
        else "Ours (one seed: no interval)",
        fontsize="medium",
    )
    ax1.legend(fontsize="small", loc="lower right")
    ax1.set_ylim(-0.7, len(names) - 0.1)
    ax1.grid(True, axis="x", alpha=0.3)
    lo_ci = [100 * ci[0] for ci in cis if ci] + shown
    hi_ci = [100 * ci[1] for ci in cis if ci] + shown
    lo, hi = max(0.0, min(lo_ci) - 3), min(100.0, max(hi_ci) + 6)
    ax1.set_xlim(lo, hi)
    pv = [
        paper.get(runs[n]["method"]) if runs[n].get("group") != "d0-sweep" else None for n in names
    ]
    ax2.barh(
        [yi for yi, v in zip(y, pv) if v is not None],
        [v for v in pv if v is not None],
        color=[c for c, v in zip(colors, pv) if v is not None],
        alpha=0.6,
    )
    for yi, v in zip(y, pv):
        if v is not None:
            ax2.text(v, yi, f" {v:.1f}", va="center", fontsize="small")
    ax2.set_xlabel("linear top-1 (%), paper: ResNet-50, ImageNet, 100 epochs")
    ax2.set_title("Paper (Table 1, section 6.3)")
    ax2.set_yticks(y)
    ax2.set_yticklabels([])
    ax2.set_ylim(ax1.get_ylim())
    ax2.grid(True, axis="x", alpha=0.3)
    ax2.set_xlim(0, 100)
    _save(fig, path)
