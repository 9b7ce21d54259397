"""The stage of sections 4-5 on real images: the paper's linear encoders trained with InfoNCE on
the dataset's pixels (:mod:`dimcollapse.toy.images`), one stage per seed, and their aggregate
for ``reproduce.json``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dimcollapse.reproduce.stages import StageTask, log, read_stage, seed_label, write_stage
from dimcollapse.toy.images import (
    EVAL_IMAGES,
    IMAGE_SWEEPS,
    PAIRS_PER_IMAGE,
    TRAIN_IMAGES,
    run_image_lab_on,
)


def images_key(plan: Any, seed: int) -> dict[str, Any]:
    """What the stage's result depends on (its reuse key)."""
    return {
        "dataset": plan.dataset,
        "data_root": plan.data_root,
        "steps": plan.image_steps,
        "seed": int(seed),
        "train_images": TRAIN_IMAGES,
        "eval_images": EVAL_IMAGES,
        "pairs_per_image": PAIRS_PER_IMAGE,
        "sweeps": [[s.name, s.field, list(s.values), repr(s.base)] for s in IMAGE_SWEEPS],
    }


def stage_images(task: StageTask) -> dict[str, Any]:
    """Every sweep of :data:`~dimcollapse.toy.images.IMAGE_SWEEPS` at the task's seed."""
    out = Path(task.directory)
    done = read_stage(out, task.key)
    if done is not None:
        return {**done, "reused": True}
    t0 = time.perf_counter()
    plan = task.plan
    result = run_image_lab_on(
        plan.dataset,
        root=plan.data_root,
        seed=int(task.seed),
        steps=int(plan.image_steps),
        log=lambda text: log(task.verbose, text),
    )
    result["seconds"] = time.perf_counter() - t0
    write_stage(out, task.key, result)
    log(task.verbose, f"image lab, {seed_label(task)}: done ({result['seconds']:.0f} s)")
    return {**result, "reused": False}
