"""The stage of one pretraining run: pretrain a method (or reuse or resume it), then probe its
frozen backbone and measure the spectra of its representation and embedding (Eq. 1)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from dimcollapse.checkpoint import load_model
from dimcollapse.config import TrainConfig
from dimcollapse.probe import extract_features, load_run_data
from dimcollapse.probe.protocol import protocol_probes
from dimcollapse.reproduce.protocol_data import protocol_features, protocol_splits_of
from dimcollapse.reproduce.stages import (
    StageTask,
    log,
    pretraining_state,
    read_stage,
    seed_label,
    write_stage,
)
from dimcollapse.rundir import RunLayout, read_jsonl
from dimcollapse.runtime import resolve_device
from dimcollapse.spectrum import summarize
from dimcollapse.train import train

#: The per-epoch fields of ``metrics.jsonl`` that the report draws.
HISTORY_FIELDS = (
    "epoch",
    "loss",
    "online_probe_top1",
    "representation_rankme",
    "representation_collapsed_dims",
    "embedding_rankme",
    "embedding_collapsed_dims",
    "epoch_seconds",
    "images_per_s",
)


def stage_run(task: StageTask) -> dict[str, Any]:
    """Pretrain one method (or reuse/resume it), then probe it and measure its spectra."""
    assert task.run is not None
    run_dir = Path(task.directory)
    main = task.rank == 0
    done = read_stage(run_dir, task.key)
    if done is not None:
        return {**done, "reused": True}
    t0 = time.perf_counter()
    trained = _pretrain(task, run_dir, main)
    train_seconds = time.perf_counter() - t0
    if not main:
        return {"name": task.run.name}
    history = _training_history(run_dir)
    if trained:  # pretrained by an earlier invocation: its own epoch times
        train_seconds = sum(float(h.get("epoch_seconds") or 0.0) for h in history)
    t1 = time.perf_counter()
    measured = _probe_and_measure(task, RunLayout(run_dir).final)
    probe_seconds = time.perf_counter() - t1
    result = {
        "name": task.run.name,
        "seed": int(task.seed),
        "method": task.run.method,
        "group": task.run.group,
        **measured,
        "history": history,
        "seconds": {"train": train_seconds, "probe": probe_seconds},
        "pretraining_reused": trained,
        "run_dir": str(run_dir),
    }
    write_stage(run_dir, task.key, result)
    rep = result["representation"]
    log(
        task.verbose,
        f"{task.run.name}, {seed_label(task)}: done (pretraining {train_seconds:.0f} s, probes "
        f"{probe_seconds:.0f} s); "
        f"linear top-1 {100 * result['probe']['full']['top1']:.1f}%, representation RankMe "
        f"{rep['rankme']:.1f}, {rep['collapsed_dims']}/{rep['dim']} collapsed dims",
    )
    return {**result, "reused": False}


def _pretrain(task: StageTask, run_dir: Path, main: bool) -> bool:
    """Train the run unless an earlier invocation finished it (then return True); resume from
    its last checkpoint when that has the same settings, else start afresh."""
    assert task.config is not None and task.run is not None
    state = pretraining_state(run_dir, task.config)
    if state == "finished":
        return True
    resume = state == "resumable"
    if not resume and main and run_dir.exists():
        shutil.rmtree(run_dir)
    config = TrainConfig.from_dict({**task.config.to_dict(), "resume": resume})
    log(
        task.verbose and main,
        f"{task.run.name}, {seed_label(task)}: pretraining{' (resuming)' if resume else ''}",
    )
    train(config, verbose=task.verbose and task.train_verbose)
    return False


def _probe_and_measure(task: StageTask, final: Path) -> dict[str, Any]:
    """The protocol's probes (:func:`~dimcollapse.probe.protocol.protocol_probes`) of the final
    checkpoint's frozen backbone (DirectCLR also on its sub-vector ``r[:d0]``) and the spectra of
    ``r`` and ``z`` on the test images, raw and row-normalised."""
    model, ckpt = load_model(final)
    device = resolve_device(task.device)
    plan, seed = task.plan, int(task.seed)
    train_set = load_run_data(ckpt, "train", seed=seed)
    test_set = load_run_data(ckpt, "test", subset=plan.test_subset, seed=seed)
    num_classes = int(train_set.num_classes)
    splits = protocol_splits_of(plan, train_set)
    train_x, train_y, splits = protocol_features(model, train_set, splits, plan, device)
    test_x, test_y = extract_features(model, test_set, device=device)
    common = dict(num_classes=num_classes, epochs=int(plan.probe_epochs), seed=seed, device=device)
    probes = protocol_probes(
        train_x, train_y, (test_x, test_y), splits, all_labels=plan.all_labels_row, **common
    )
    head = model.head
    if head.loss_on_subvector:
        sub = protocol_probes(
            head.subvector(train_x).contiguous(),
            train_y,
            (head.subvector(test_x).contiguous(), test_y),
            splits,
            all_labels=False,
            **common,
        )
        probes["subvector"] = sub["full"]
    with torch.no_grad():
        z = head(test_x.to(device)).float().cpu()  # (N, out_dim)
    motion = getattr(head, "weight_motion", None)  # the diagonal head: did w move?
    return {
        **({"head_weight": motion()} if motion is not None else {}),
        "d0": head.d0,
        "rep_dim": int(model.rep_dim),
        "embedding_dim": int(z.shape[1]),
        "num_classes": num_classes,
        "probe": probes,
        "representation": summarize(test_x).to_dict(),
        "embedding": summarize(z).to_dict(),
        "representation_normalized": summarize(test_x, normalize=True).to_dict(),
        "embedding_normalized": summarize(z, normalize=True).to_dict(),
    }


def _training_history(run_dir: Path) -> list[dict[str, Any]]:
    """The run's per-epoch metrics (``metrics.jsonl``, :data:`HISTORY_FIELDS` of each line)."""
    path = RunLayout(run_dir).metrics
    if not path.is_file():
        return []
    rows = read_jsonl(path)
    return [{k: r.get(k) for k in HISTORY_FIELDS if k in r} for r in rows]
