"""A reproduction's stages: the task that describes one, and the cache of finished ones.

A stage (one pretraining run with its probes and spectra, one seed's baselines, or the theory
lab) writes its result to ``reproduce_stage.json`` in its directory together with its key, the
settings that determined it; a later reproduction with the same key reuses the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dimcollapse.checkpoint import load_checkpoint
from dimcollapse.config import TrainConfig
from dimcollapse.fileio import plain_data, write_json_atomic
from dimcollapse.reproduce.plan import Plan, RunPlan, semantic_config
from dimcollapse.rundir import RunLayout

STAGE_FILE = "reproduce_stage.json"
STAGE_FORMAT = "dimcollapse-reproduce-stage"


@dataclass(frozen=True)
class StageTask:
    """One stage, picklable for a worker process.

    kind: ``"run"`` (pretrain ``run``, probe it, measure its spectra), ``"baselines"`` (probes
    without pretraining) or ``"toys"`` (the theory lab); task_id: the key of its result
    (``run:<name>:<seed>``, ``baselines:<seed>``, ``toys``); directory: where it writes; key: the
    settings its stored result must match to be reused; seed: this stage's seed; plan: the
    resolved settings; run and config: a run's plan and training configuration; device: the
    device resolved by the parent; rank: this process's rank under ``torchrun``; threads: torch
    threads in a worker process (None: unchanged); train_verbose: let ``train`` print progress.
    """

    kind: str
    task_id: str
    directory: str
    key: dict[str, Any]
    seed: int
    plan: Plan
    verbose: bool
    run: RunPlan | None = None
    config: TrainConfig | None = None
    device: str = "cpu"
    rank: int = 0
    threads: int | None = None
    train_verbose: bool = False


def read_stage(directory: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The result of a finished stage with this key, else None."""
    path = directory / STAGE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("format") != STAGE_FORMAT or data.get("key") != plain_data(key):
        return None
    return data.get("result")


def write_stage(directory: Path, key: dict[str, Any], result: dict[str, Any]) -> None:
    write_json_atomic(
        directory / STAGE_FILE, {"format": STAGE_FORMAT, "key": plain_data(key), "result": result}
    )


def finished_result(task: StageTask) -> dict[str, Any] | None:
    """The stored result of a stage finished with the same settings whose outputs are all still
    there, else None."""
    directory = Path(task.directory)
    done = read_stage(directory, task.key)
    if done is None:
        return None
    if task.kind == "toys":
        if not all((directory / f["file"]).is_file() for f in done.get("figures", [])):
            return None
    elif task.kind == "run" and pretraining_state(directory) != "finished":
        return None
    return done


def pretraining_state(run_dir: Path, config: TrainConfig | None = None) -> str:
    """How far ``dimcollapse train`` got in ``run_dir``, read from its checkpoints.

    With ``config``: ``"finished"`` (``checkpoints/final.pt`` of the same settings after all
    epochs), ``"resumable"`` (``checkpoints/last.pt`` of the same settings) or ``"none"``.
    Without: ``"finished"`` if a final checkpoint is there, else ``"none"`` (nothing is read).
    """
    layout = RunLayout(run_dir)
    if config is None:
        return "finished" if layout.final.is_file() else "none"

    want = semantic_config(config.to_dict())
    if layout.final.is_file():
        ckpt = load_checkpoint(layout.final)
        if semantic_config(ckpt.config) == want and ckpt.epoch == config.epochs:
            return "finished"
    if layout.last.is_file() and semantic_config(load_checkpoint(layout.last).config) == want:
        return "resumable"
    return "none"


def seed_label(task: StageTask) -> str:
    """How progress lines name a stage's seed: ``seed 1 (2 of 3)`` (its value, then its place)."""
    seeds = task.plan.seeds
    return f"seed {task.seed} ({seeds.index(task.seed) + 1} of {len(seeds)})"


def log(verbose: bool, text: str) -> None:
    if verbose:
        print(f"[reproduce] {text}", flush=True)
