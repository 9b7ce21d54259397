"""The stage of sections 4-5 on real images: the paper's linear encoders trained with InfoNCE on
the dataset's pixels (:mod:`dimcollapse.toy.images`), one stage per seed, and their aggregate
for ``reproduce.json``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dimcollapse.reproduce.stages import StageTask, log, read_stage, seed_label, write_stage

#: Training images that feed the views and test images the spectra are read on (a seeded draw).
TRAIN_IMAGES = 20000
EVAL_IMAGES = 2000


def images_key(plan: Any, seed: int) -> dict[str, Any]:
    """What the stage's result depends on (its reuse key)."""
    from dimcollapse.toy.images import IMAGE_SWEEPS, PAIRS_PER_IMAGE

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
    from dimcollapse.data.datasets import load_dataset
    from dimcollapse.toy.images import run_image_lab

    out = Path(task.directory)
    done = read_stage(out, task.key)
    if done is not None:
        return {**done, "reused": True}
    t0 = time.perf_counter()
    plan, seed = task.plan, int(task.seed)
    common = {"root": plan.data_root, "seed": seed, "can_download": False}
    train = load_dataset(plan.dataset, "train", **common)
    test = load_dataset(plan.dataset, "test", **common)
    train, test = _at_most(train, TRAIN_IMAGES, seed), _at_most(test, EVAL_IMAGES, seed)
    train_x, test_x = train.tensors(), test.tensors()
    if train_x is None or test_x is None:
        result: dict[str, Any] = {"seed": seed, "records": [], "note": "dataset not in memory"}
    else:
        records = run_image_lab(
            train_x[0],
            test_x[0],
            train.mean,
            train.std,
            seed=seed,
            steps=int(plan.image_steps),
            log=lambda text: log(task.verbose, text),
        )
        result = {"seed": seed, "records": records}
    result["seconds"] = time.perf_counter() - t0
    write_stage(out, task.key, result)
    log(task.verbose, f"image lab, {seed_label(task)}: done ({result['seconds']:.0f} s)")
    return {**result, "reused": False}


def aggregate_images(results: Sequence[Mapping[str, Any]], steps: int | None) -> dict[str, Any]:
    """The per-seed stage results as ``reproduce.json`` keeps them: ``{"steps", "seeds",
    "records": [per seed, each its records], "seconds"}`` ({} when no seed ran any)."""
    if not results or not any(r.get("records") for r in results):
        return {}
    return {
        "steps": steps,
        "seeds": [r["seed"] for r in results],
        "records": [list(r.get("records") or []) for r in results],
        "seconds": sum(float(r.get("seconds") or 0.0) for r in results),
    }


def _at_most(dataset: Any, n: int, seed: int) -> Any:
    """A seeded draw of ``n`` of the dataset's items (all of them when it has fewer)."""
    import torch

    if len(dataset) <= n:
        return dataset
    gen = torch.Generator().manual_seed(int(seed))
    return dataset.select(torch.randperm(len(dataset), generator=gen)[:n])
