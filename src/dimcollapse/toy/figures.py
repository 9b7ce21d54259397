"""Figures of the toy scenarios in the style of the paper's Figs. 4, 5 and 6.

Built on ``matplotlib.figure.Figure`` (no pyplot state, no display needed). Each ``draw_*``
function draws into axes it is given, so the per-scenario figures and the combined figure of
``all`` share one drawing code. Singular values are drawn on log axes; exact zeros (which a log
axis cannot show) sit at a floor one decade under the smallest positive value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from dimcollapse.toy.scenario_runs import ScenarioResult


def _positive(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    pos = v[v > 0]
    floor = pos.min() / 10 if pos.size else 1e-300
    return np.where(v > 0, v, floor)


def _colors(n: int) -> list[Any]:
    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _spectrum_axes(ax: Any, title: str, d: int) -> None:
    ax.set_yscale("log")
    ax.set_xlabel("singular value rank k")
    ax.set_ylabel("singular value of C (Eq. 1)")
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(1, d + 1, max(1, d // 8)))
    ax.grid(True, which="major", alpha=0.3)


def draw_final_spectra(
    ax: Any, result: ScenarioResult, title: str, *, threshold: bool = True
) -> None:
    """Final embedding spectra of every run of ``result``, one line each, log scale."""
    d = result.runs[0].config.dim
    k = np.arange(1, d + 1)
    for run, labels, color in zip(result.runs, result.labels, _color_cycle(len(result.runs))):
        sv = run.embedding_singular_values[-1]
        n = run.collapsed_dims(result.rel_tol)
        ax.plot(k, _positive(sv), "o-", ms=3, color=color, label=f"{_describe(run, labels)}: {n}")
        if threshold:
            ax.axhline(result.rel_tol * sv[0], color=color, ls=":", lw=0.8)
    _spectrum_axes(ax, title, d)
    ax.legend(fontsize=7, title=f"collapsed (< {result.rel_tol:g} sigma_1)", title_fontsize=7)


def _color_cycle(n: int) -> list[str]:
    base = ["C0", "C3", "C2", "C1", "C4", "C5", "C6", "C7", "C8", "C9"]
    return [base[i % len(base)] for i in range(n)]


def _describe(run: Any, labels: dict[str, Any]) -> str:
    cfg = run.config
    name = labels.get("run", "")
    if name in ("strong", "weak"):
        return f"{name}: noise {cfg.noise:g}"
    return str(name)


def draw_trajectories(
    ax: Any, steps: np.ndarray, values: np.ndarray, title: str, **kw: Any
) -> None:
    """(T, d) singular values over training, one line per rank, coloured by rank, log scale."""
    colors = _colors(values.shape[1])
    vals = _positive(values)
    for i in range(values.shape[1]):
        ax.plot(steps, vals[:, i], color=colors[i], lw=kw.get("lw", 1.0), ls=kw.get("ls", "-"))
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)


def draw_strong_aug(axes: Sequence[Any], result: ScenarioResult) -> None:
    """Three panels: final spectra, W's singular values over training, eigenvalues of X."""
    strong, weak = result.run("strong"), result.run("weak")
    cfg = strong.config
    k = cfg.dim if cfg.noise_dims is None else cfg.noise_dims
    draw_final_spectra(axes[0], result, f"Embedding spectrum, L = 1 (noise on last {k} dims)")
    draw_trajectories(axes[1], weak.steps, weak.weight_singular_values[:, 0], "", lw=0.8, ls="--")
    draw_trajectories(
        axes[1],
        strong.steps,
        strong.weight_singular_values[:, 0],
        "Singular values of W (solid: strong, dashed: weak)",
    )
    axes[1].set_ylabel("sigma_k(W)")
    ax = axes[2]
    idx = np.arange(1, cfg.dim + 1)
    for run, color, name in ((strong, "C0", "strong"), (weak, "C3", "weak")):
        ev = np.asarray(run.analytics.x_eigenvalues)
        ax.plot(idx, ev, "o-", ms=3, color=color, label=f"{name}: min {ev.min():.3g}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("eigenvalue of X (Eq. 6)")
    ax.set_title("X at the end: negative = Theorem 1's condition", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def draw_alignment(ax: Any, run: Any, fig: Any) -> None:
    """Heatmap of ``|A| = |V2^T U1|`` at the end of training (Fig. 4)."""
    a = np.abs(run.alignment[-1, 0])
    im = ax.imshow(a, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ax.set_title(
        f"|A| = |V2^T U1| (mean |diag| {run.analytics.alignment_diag_mean:.2f}, "
        f"weighted {run.analytics.alignment_weighted_diag_mean:.2f})",
        fontsize=9,
    )
    ax.set_xlabel("k' (left singular vector of W1)")
    ax.set_ylabel("k (right singular vector of W2)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def draw_two_layer(axes: Sequence[Any | None], result: ScenarioResult, fig: Any) -> None:
    """Four panels (a None axis is skipped): |A| (Fig. 4), then the singular values of W1, W2
    and of the embedding over training (Figs. 5a-c)."""
    run = result.runs[0]
    if axes[0] is not None:
        draw_alignment(axes[0], run, fig)
    for ax, layer in ((axes[1], 0), (axes[2], 1)):
        if ax is not None:
            draw_trajectories(
                ax,
                run.steps,
                run.weight_singular_values[:, layer],
                f"Singular values of W{layer + 1}",
            )
    if axes[3] is not None:
        draw_trajectories(
            axes[3],
            run.steps,
            run.embedding_singular_values,
            f"Embedding spectrum ({run.collapsed_dims(result.rel_tol)} collapsed at the end)",
        )


def draw_collapsed_bars(ax: Any, result: ScenarioResult, title: str) -> None:
    """Collapsed dimensions of each run at initialisation and at the end."""
    names = [labels.get("run", "") for labels in result.labels]
    init = [int(r.collapsed_dims_history(result.rel_tol)[0]) for r in result.runs]
    final = [r.collapsed_dims(result.rel_tol) for r in result.runs]
    x = np.arange(len(names))
    ax.bar(x - 0.2, init, width=0.4, color="0.7", label="initialisation")
    ax.bar(x + 0.2, final, width=0.4, color="C0", label="end of training")
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylim(0, result.runs[0].config.dim)
    ax.set_ylabel(f"collapsed dims (< {result.rel_tol:g} sigma_1)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def draw_depth(axes: Sequence[Any], result: ScenarioResult) -> None:
    """Two panels: final spectra for each depth (Fig. 6a) and collapsed dimensions per depth."""
    draw_final_spectra(axes[0], result, "Embedding spectrum by depth L", threshold=False)
    draw_collapsed_bars(axes[1], result, "Collapsed dimensions by depth")


def draw_relu(axes: Sequence[Any], result: ScenarioResult) -> None:
    """Two panels: final spectra with and without ReLU (Fig. 6b), and over training."""
    draw_final_spectra(axes[0], result, "Embedding spectrum, L = 2", threshold=False)
    lin, relu = result.run("linear"), result.run("relu")
    draw_trajectories(axes[1], lin.steps, lin.embedding_singular_values, "", lw=0.8, ls="--")
    draw_trajectories(
        axes[1],
        relu.steps,
        relu.embedding_singular_values,
        "Embedding spectrum in training (solid: ReLU, dashed: linear)",
    )


def _new_figure(rows: int, cols: int, width: float, height: float) -> tuple[Any, list[Any]]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def scenario_figure(result: ScenarioResult) -> Any:
    """The matplotlib Figure of one scenario."""
    cfg = result.runs[0].config
    sub = f"d = {cfg.dim}, batch {cfg.batch_size}, {cfg.steps} steps, seed {cfg.seed}"
    if result.name == "strong-aug":
        fig, axes = _new_figure(1, 3, 15, 4.4)
        draw_strong_aug(axes, result)
    elif result.name == "two-layer":
        fig, axes = _new_figure(2, 2, 11, 8.5)
        draw_two_layer(axes, result, fig)
    elif result.name == "depth":
        fig, axes = _new_figure(1, 2, 11, 4.4)
        draw_depth(axes, result)
    elif result.name == "relu":
        fig, axes = _new_figure(1, 2, 11, 4.4)
        draw_relu(axes, result)
    else:  # pragma: no cover - scenario names are fixed
        raise ValueError(result.name)
    sc = result.scenario
    fig.suptitle(f"{sc.title} ({sc.paper}); {sub}", fontsize=11)
    return fig


def combined_figure(results: Sequence[ScenarioResult]) -> Any:
    """One figure with the main panel(s) of every scenario in ``results``."""
    by_name = {r.name: r for r in results}
    panels: list[tuple[str, Any]] = []
    if "strong-aug" in by_name:
        panels += [("strong-aug", 0), ("strong-aug", 1), ("strong-aug", 2)]
    if "two-layer" in by_name:
        panels += [("two-layer", 0), ("two-layer", 1), ("two-layer", 3)]
    if "depth" in by_name:
        panels += [("depth", 0), ("depth", 1)]
    if "relu" in by_name:
        panels += [("relu", 0)]
    cols = 3
    rows = max(1, -(-len(panels) // cols))
    fig, axes = _new_figure(rows, cols, 16, 4.3 * rows)
    pos = 0
    if "strong-aug" in by_name:
        draw_strong_aug(axes[pos : pos + 3], by_name["strong-aug"])
        pos += 3
    if "two-layer" in by_name:
        run = by_name["two-layer"]
        draw_two_layer([axes[pos], axes[pos + 1], None, axes[pos + 2]], run, fig)
        pos += 3
    if "depth" in by_name:
        draw_depth(axes[pos : pos + 2], by_name["depth"])
        pos += 2
    if "relu" in by_name:
        draw_final_spectra(axes[pos], by_name["relu"], "L = 2, linear vs ReLU", threshold=False)
        pos += 1
    for ax in axes[pos:]:
        ax.set_visible(False)
    cfg = results[0].runs[0].config
    fig.suptitle(
        f"Dimensional collapse in the linear toy models (Jing et al. 2022, sections 4-5); "
        f"d = {cfg.dim}, batch {cfg.batch_size}, {cfg.steps} steps, seed {cfg.seed}",
        fontsize=12,
    )
    return fig
