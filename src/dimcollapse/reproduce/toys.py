"""The theory lab's stage: the scenarios of sections 4-5 (:mod:`dimcollapse.toy`), their figures
and summaries written into ``toys/``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dimcollapse.fileio import json_roundtrip
from dimcollapse.reproduce.stages import StageTask, finished_result, log, write_stage
from dimcollapse.toy import run_scenarios
from dimcollapse.toy.output import json_safe, write_results

#: The theory lab's scenarios, in the report's order, with the paper's figures they reproduce.
TOY_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("strong-aug", "Section 4 (Theorem 1): strong augmentation, one linear layer"),
    ("two-layer", "Figs. 4 and 5: two linear layers, alignment and singular value dynamics"),
    ("depth", "Fig. 6a: more linear layers, more collapse"),
    ("relu", "Fig. 6b: two layers with and without ReLU"),
)


def stage_toys(task: StageTask) -> dict[str, Any]:
    """The theory lab's scenarios (sections 4-5): figures and summaries into ``toys/``."""
    out = Path(task.directory)
    done = finished_result(task)
    if done is not None:
        return {**done, "reused": True}
    t0 = time.perf_counter()
    result = run_toys(out, steps=task.plan.toy_steps, seed=task.seed)
    result["seconds"] = time.perf_counter() - t0
    write_stage(out, task.key, result)
    log(task.verbose, f"theory lab: done ({result['seconds']:.0f} s)")
    return {**result, "reused": False}


def run_toys(out: Path, *, steps: int | None, seed: int) -> dict[str, Any]:
    """Run every theory-lab scenario (:mod:`dimcollapse.toy`) into ``out``.

    Writes ``<scenario>.png`` (the lab's figure) and ``<scenario>.json`` (its summary) per
    scenario. Returns ``{"available", "figures": [{"scenario", "caption", "file"}],
    "summaries": {scenario: [{"run", "collapsed_dims", "dim", "alignment_diag_mean"}]}}`` with
    file names relative to ``out``; ``steps`` None keeps the lab's step counts.
    """
    out.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"seed": int(seed)}
    if steps is not None:
        overrides["steps"] = int(steps)
    captions = dict(TOY_SCENARIOS)
    results = run_scenarios(list(captions), **overrides)
    write_results(results, out, combined=False)
    figures: list[dict[str, Any]] = []
    summaries: dict[str, Any] = {}
    for res in results:
        # the summary as its file reads back (plain floats, lists), also in the returned result
        data = json_roundtrip(json_safe(res.to_dict()))
        figures.append(
            {"scenario": res.name, "caption": captions[res.name], "file": f"{res.name}.png"}
        )
        summaries[res.name] = [_run_summary(r, data.get("rel_tol")) for r in data.get("runs", [])]
    return {"available": True, "figures": figures, "summaries": summaries}


def _run_summary(record: dict[str, Any], rel_tol: float | None) -> dict[str, Any]:
    """What the report shows of one toy run."""
    return {
        "run": record.get("run"),
        "collapsed_dims": record.get("collapsed_dims"),
        "collapsed_dims_init": record.get("collapsed_dims_init"),
        "dim": record.get("dim"),
        "alignment_diag_mean": record.get("alignment_diag_mean"),
        "rel_tol": rel_tol,
    }
