"""The theory lab's outputs: each scenario's JSON summary and figure, one line per run, and the
error for checks that came out NaN (a diverged run).

One writer for every caller (``dimcollapse toy`` and the reproduction's theory-lab stage), with
one NaN policy (a non-finite number is written as JSON ``null``) and one resolution
(:data:`dimcollapse.plots.DPI`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dimcollapse.fileio import write_json_atomic
from dimcollapse.plots import DPI, save_figure
from dimcollapse.toy.scenario_runs import ScenarioResult

#: The numerical checks of the paper's statements in each record (``--json`` keys).
CHECKS = (
    "lemma2_max_abs_err",
    "gradient_rel_err",
    "x_min_eigenvalue",
    "alignment_diag_mean",
    "eq11_rel_err",
)


def json_safe(obj: Any) -> Any:
    """``obj`` ready for strict JSON: non-finite floats become None, tuples lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_results(
    results: Sequence[ScenarioResult], out: Path, *, combined: bool, figures: bool = True
) -> list[Path]:
    """Each scenario's ``<name>.json`` and (``figures``) ``<name>.png`` in ``out``; ``combined``
    adds ``all.json`` and ``all.png`` over every scenario. Returns the paths in writing order."""
    written: list[Path] = []
    for res in results:
        path = out / f"{res.name}.json"
        write_json_atomic(path, json_safe(res.to_dict()))
        written.append(path)
    if combined:
        path = out / "all.json"
        write_json_atomic(path, json_safe({"scenarios": [r.to_dict() for r in results]}))
        written.append(path)
    if figures:
        # matplotlib-free toy --no-figures: matplotlib.figure 480 ms
        from dimcollapse.toy.figures import combined_figure, scenario_figure

        drawn = [(res.name, scenario_figure, res) for res in results]
        if combined:
            drawn.append(("all", combined_figure, results))
        for name, draw, what in drawn:
            path = out / f"{name}.png"
            save_figure(draw(what), path, dpi=DPI)
            written.append(path)
    return written


def describe(rec: dict[str, Any]) -> str:
    """One run's record as a line of text (what ``dimcollapse toy`` prints without ``--json``)."""
    noise_dims = rec["noise_dims"]
    where = "all dims" if noise_dims == rec["dim"] else f"last {noise_dims} dims"
    parts = [
        f"{rec['scenario']:<10} {rec['run']:<7} L={rec['layers']}{' relu' if rec['relu'] else ''}",
        f"noise {rec['noise']:g} on {where}",
        f"collapsed {rec['collapsed_dims']}/{rec['dim']} (init {rec['collapsed_dims_init']})",
        f"min eig X {_fmt(rec['x_min_eigenvalue'], '.3g')}",
        f"Lemma 2 err {_fmt(rec['lemma2_max_abs_err'])}",
        f"grad rel err {_fmt(rec['gradient_rel_err'])}",
    ]
    if "alignment_diag_mean" in rec:
        parts.append(
            f"|diag A| {_fmt(rec['alignment_diag_mean'], '.3f')}"
            f" (weighted {_fmt(rec['alignment_weighted_diag_mean'], '.3f')})"
        )
    if "eq11_rel_err" in rec:
        parts.append(f"Eq. 11 rel err {_fmt(rec['eq11_rel_err'], '.3g')}")
    return "  ".join(parts)


def _fmt(value: Any, spec: str = ".2g") -> str:
    return "n/a" if value is None else format(value, spec)


def divergence_error(results: Sequence[ScenarioResult]) -> str | None:
    """The one-line error for runs whose checks came out NaN or infinite (the training
    diverged: the numbers would say nothing), naming the first such run, its checks and its
    learning rate; None when every check is finite. ``dimcollapse toy`` then writes nothing."""
    bad_runs = []
    for res in results:
        for rec in res.records():
            bad = [k for k in CHECKS if isinstance(rec.get(k), float) and not math.isfinite(rec[k])]
            if bad:
                name = f"{rec.get('scenario')} {rec.get('run', '')}".strip()
                bad_runs.append((name, bad, rec[bad[0]], rec.get("lr")))
    if not bad_runs:
        return None
    name, bad, value, lr = bad_runs[0]
    more = f" (and {len(bad_runs) - 1} more run(s))" if len(bad_runs) > 1 else ""
    return (
        f"{name}{more}: the training diverged: {', '.join(bad)} came out {value} (lr {lr}); "
        "nothing written; lower --lr"
    )
