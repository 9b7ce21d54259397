"""The offline probe of a trained run: its checkpoint's frozen backbone on its own dataset.

* **Features**: ``full`` is the representation ``r`` (backbone output, as the paper probes);
  ``subvector`` is exactly ``r[:, :d0]``, the part DirectCLR's loss sees (section 6.3, "linear
  probe on subvector z", 47.9% against 62.7% for the full r on ImageNet). For ``fixed-lowrank``
  runs, ``r[:, :d0]`` is the same slice of r, which is not the sub-space its fixed projector
  keeps (that one is rotated by a random orthogonal matrix).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dimcollapse.checkpoint import Checkpoint, find_checkpoint, load_model
from dimcollapse.choices import FEATURE_BATCH, FEATURE_SETS
from dimcollapse.data.datasets import load_dataset
from dimcollapse.errors import UsageError
from dimcollapse.methods import METHOD_INFO
from dimcollapse.probe.augmented import augmented_linear_probe
from dimcollapse.probe.features import extract_features
from dimcollapse.probe.linear import BATCH_SIZE, EPOCHS
from dimcollapse.probe.offline import offline_result, probe_features
from dimcollapse.rundir import RunLayout
from dimcollapse.runtime import resolve_device, resolve_precision


@dataclass(frozen=True)
class _CheckpointFacts:
    """What probing reads from a checkpoint besides the model (each None when not stored)."""

    dataset: str | None
    data_root: str | None
    test_file: str | None
    image_size: Any  # as stored under "data"; only image folders need it
    method: str | None
    epoch: int | None
    online_probe_top1: float | None  # the online probe's last value, for comparison


def _checkpoint_facts(ckpt: Checkpoint) -> _CheckpointFacts:
    """What probing needs from a :class:`~dimcollapse.checkpoint.Checkpoint` besides the model."""
    return _CheckpointFacts(
        dataset=ckpt.config.get("dataset"),
        data_root=ckpt.config.get("data_root"),
        test_file=ckpt.config.get("test_file"),
        image_size=ckpt.data.get("image_size"),
        method=ckpt.config.get("method"),
        epoch=ckpt.epoch,
        online_probe_top1=ckpt.online_probe_top1,
    )


def result_dir(run_or_checkpoint: str | os.PathLike[str]) -> Path:
    """Where results about a run go: the run directory itself, or for a checkpoint file its
    parent's parent when that is a run directory (holds ``config.yaml``), else its directory."""
    p = Path(run_or_checkpoint)
    if p.is_dir():
        return p
    run = RunLayout(p.parent.parent)
    return run.root if run.config.is_file() else p.parent


def _load_split(
    facts: _CheckpointFacts, split: str, *, data_root: str | None, subset: int | None, seed: int
) -> Any:
    name = facts.dataset
    if not name:
        raise UsageError("the checkpoint does not say which dataset it was trained on")
    image_size = facts.image_size
    return load_dataset(
        name,
        split,
        root=data_root if data_root is not None else facts.data_root,
        subset=subset,
        seed=seed,
        test_file=facts.test_file,
        image_size=int(image_size) if name == "imagefolder" and image_size is not None else None,
        can_download=False,
    )


def load_run_data(
    ckpt: Checkpoint,
    split: str,
    *,
    data_root: str | None = None,
    subset: int | None = None,
    seed: int = 0,
) -> Any:
    """The ``split`` of the dataset a checkpoint was trained on (its config's name, root and
    test file; ``data_root`` overrides the root), optionally a seeded random ``subset``."""
    facts = _checkpoint_facts(ckpt)
    return _load_split(facts, split, data_root=data_root, subset=subset, seed=seed)


def _feature_slice(model: nn.Module, facts: _CheckpointFacts, features: str) -> int | None:
    """None for the full r, d0 for the sub-vector; UsageError for a run without d0."""
    if features == "full":
        return None
    d0 = model.head.d0
    if d0 is None:
        with_d0 = " or ".join(name for name, info in METHOD_INFO.items() if info.has_d0)
        raise UsageError(
            f"--features subvector needs a run with d0 ({with_d0}); "
            f"this run is {facts.method or model.head.method}"
        )
    return int(d0)


@dataclass(frozen=True)
class _LoadedRun:
    """A trained run's checkpoint, loaded for probing, its model on ``device``."""

    path: Path
    model: nn.Module
    facts: _CheckpointFacts
    subvector_d0: int | None  # probe r[:, :d0] when set, else the full r
    device: torch.device
    precision: str  # resolved for the device: fp32, bf16 or fp16


def _load_run(
    run_or_checkpoint: str | os.PathLike[str], features: str, device: str, precision: str
) -> _LoadedRun:
    """The checkpoint of ``run_or_checkpoint``, its model moved to the resolved ``device``."""
    path = find_checkpoint(run_or_checkpoint)
    model, ckpt = load_model(path)
    facts = _checkpoint_facts(ckpt)
    d0 = _feature_slice(model, facts, features)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model.to(dev)
    return _LoadedRun(path, model, facts, d0, dev, prec)


def _frozen_splits(
    run: _LoadedRun, train_set: Any, test_set: Any, *, batch_size: int, workers: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(train_x, train_y, test_x, test_y)``: the run's frozen r (or ``r[:, :d0]``) and labels."""
    common = dict(
        device=run.device, batch_size=batch_size, precision=run.precision, workers=workers
    )
    label = str(run.path)
    train_x, train_y = extract_features(run.model, train_set, label=f"{label} (train)", **common)
    test_x, test_y = extract_features(run.model, test_set, label=f"{label} (test)", **common)
    if run.subvector_d0 is not None:
        head = run.model.head
        train_x, test_x = head.subvector(train_x).contiguous(), head.subvector(test_x).contiguous()
    return train_x, train_y, test_x, test_y


def _probe_splits(
    run: _LoadedRun,
    train_set: Any,
    splits: tuple[Tensor, Tensor, Tensor, Tensor],
    *,
    augment: bool,
    knn: bool,
    epochs: int,
    seed: int,
    batch_size: int,
    workers: int,
    standardize: bool,
) -> dict[str, Any]:
    """:func:`probe_features`'s result on the run's ``splits``; with ``augment``, its linear layer
    learns from augmented views of ``train_set`` instead (kNN stays on the unaugmented splits)."""
    num_classes = int(train_set.num_classes)
    if not augment:
        return probe_features(
            *splits,
            num_classes=num_classes,
            epochs=epochs,
            knn=knn,
            seed=seed,
            device=run.device,
            standardize=standardize,
        )
    linear = augmented_linear_probe(
        run.model,
        train_set,
        *splits,
        num_classes=num_classes,
        d0=run.subvector_d0,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        device=run.device,
        precision=run.precision,
        workers=workers,
        standardize=standardize,
    )
    return offline_result(
        *splits, linear, num_classes=num_classes, epochs=epochs, knn=knn, device=run.device
    )


def _run_result(
    run: _LoadedRun,
    result: dict[str, Any],
    *,
    features: str,
    augment: bool,
    seed: int,
    seconds: float,
) -> dict[str, Any]:
    """:func:`probe_run`'s result: the probes' ``result`` and what was probed, how and where."""
    return {
        "probe": "offline",
        "features": features,
        "space": "representation",
        "dim": result["dim"],
        "top1": result["top1"],
        "top5": result["top5"],
        **{k: v for k, v in result.items() if k.startswith("knn_")},
        "train_top1": result["train_top1"],
        "epochs": result["epochs"],
        "augment": bool(augment),
        "standardize": result["standardize"],
        "train_images": result["train_images"],
        "test_images": result["test_images"],
        "checkpoint": str(run.path),
        "checkpoint_epoch": run.facts.epoch,
        "method": run.facts.method,
        "dataset": run.facts.dataset,
        "rep_dim": int(run.model.rep_dim),
        "d0": run.model.head.d0,
        "online_probe_top1": run.facts.online_probe_top1,
        "seed": int(seed),
        "device": str(run.device),
        "seconds": seconds,
    }


def probe_run(
    run_or_checkpoint: str | os.PathLike[str],
    *,
    features: str = "full",
    knn: bool = True,
    epochs: int = EPOCHS,
    device: str = "auto",
    data_root: str | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    augment: bool = False,
    seed: int = 0,
    precision: str = "fp32",
    batch_size: int = BATCH_SIZE,
    extract_batch_size: int = FEATURE_BATCH,
    workers: int = 0,
    standardize: bool = True,
) -> dict[str, Any]:
    """Offline linear (and kNN) probe of a trained run's frozen backbone on its own dataset.

    ``features``: ``full`` (r, ``rep_dim``-d) or ``subvector`` (exactly ``r[:, :d0]``; only for
    runs with d0). The dataset, its root and test file come from the checkpoint's config
    (``data_root`` overrides the root); the whole labelled splits are used (not the run's
    pretraining ``subset``) unless ``train_subset``/``test_subset`` ask for seeded random
    subsets. ``augment``: train the linear layer on features of augmented train images, fresh
    each epoch (:mod:`dimcollapse.probe.augmented`); kNN always uses unaugmented features.
    ``batch_size`` is the augmented probe's; ``extract_batch_size`` the feature extraction's.

    Returns ``probe: "offline"``, ``features``, ``dim``, ``top1``, ``top5``, ``train_top1``,
    ``knn_top1_k20``, ``knn_top1_k200`` (None without ``knn``), ``epochs``, ``train_images``,
    ``test_images``, ``checkpoint``, ``checkpoint_epoch``, ``method``, ``dataset``, ``rep_dim``,
    ``d0``, ``augment``, ``standardize``, ``seed``, ``device``, ``seconds``, and, for comparison,
    ``online_probe_top1`` (the online probe's last value from the checkpoint, or None).
    """
    if features not in FEATURE_SETS:
        raise UsageError(f"unknown features {features!r}; choose from {', '.join(FEATURE_SETS)}")
    if epochs < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    t0 = time.perf_counter()
    run = _load_run(run_or_checkpoint, features, device, precision)
    train_set = _load_split(run.facts, "train", data_root=data_root, subset=train_subset, seed=seed)
    test_set = _load_split(run.facts, "test", data_root=data_root, subset=test_subset, seed=seed)
    splits = _frozen_splits(
        run, train_set, test_set, batch_size=extract_batch_size, workers=workers
    )
    result = _probe_splits(
        run,
        train_set,
        splits,
        augment=augment,
        knn=knn,
        epochs=epochs,
        seed=seed,
        batch_size=batch_size,
        workers=workers,
        standardize=standardize,
    )
    seconds = time.perf_counter() - t0
    return _run_result(run, result, features=features, augment=augment, seed=seed, seconds=seconds)
