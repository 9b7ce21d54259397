"""One benchmark run: resolve the settings, time the three paths and the spectrum, collect it all."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from dimcollapse.bench.goals import evaluate_goals
from dimcollapse.bench.settings import BenchSettings, resolve_settings
from dimcollapse.bench.step import build_step
from dimcollapse.bench.timing import (
    synthetic_dataset,
    synthetic_image_count,
    time_augment_only,
    time_ceiling,
    time_device_path,
    time_spectrum,
    time_worker_path,
)
from dimcollapse.data.augment_config import AugmentConfig
from dimcollapse.runtime import cpu_model, device_name, torch_threads


@dataclass
class _Timings:
    """What one run measured, before it becomes rates (seconds are synchronised wall time)."""

    ceiling_seconds: float
    device_path_seconds: float
    augment_only_seconds: float
    worker_path_seconds: float
    worker_rate: float
    worker_rate_method: str
    worker_steps: int
    spectrum: dict[str, Any]
    model_info: dict[str, Any]
    augment: dict[str, Any]
    synthetic_images: int


def run_bench(
    settings: BenchSettings | Mapping[str, Any] | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; return every figure and every resolved setting as a JSON-ready dict.

    Keys: ``backbone_pairs_per_s`` (a), ``device_aug_pairs_per_s`` (b),
    ``worker_aug_pairs_per_s`` (c), ``device_vs_backbone`` (b / a), ``device_vs_worker``
    (b / c), ``augment_only_pairs_per_s`` (the device augmentation without the step),
    ``spectrum_seconds`` (= ``spectrum_accumulate_seconds + spectrum_eig_seconds``),
    ``*_step_ms``, ``worker_steps`` and ``worker_rate_method``, ``device_name``,
    ``torch_version``, the model description, ``goals`` and every setting. ``log`` receives
    progress lines.
    """
    resolved = resolve_settings(settings)
    device = torch.device(resolved["device"])
    cuda = device.type == "cuda"
    with _cudnn_benchmark(cuda), torch_threads(resolved["threads"]):
        threads = torch.get_num_threads()
        timings = _measure(resolved, device, log or (lambda _msg: None))
    result = _result(resolved, device, timings, threads)
    result["goals"] = evaluate_goals(result)
    return result


@contextlib.contextmanager
def _cudnn_benchmark(on: bool) -> Iterator[None]:
    """cuDNN's autotuner on for the block when ``on`` (it picks the fastest kernels), then as it was."""
    before = torch.backends.cudnn.benchmark
    if on:
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _measure(
    settings: dict[str, Any], device: torch.device, say: Callable[[str], None]
) -> _Timings:
    """Build the step, then time (a), (b) with the augmentation alone, (c) and the spectrum."""
    steps, warmup, workers = settings["steps"], settings["warmup"], settings["workers"]
    # On a GPU the worker path needs a few bursts of batches in its window (see _worker_rate).
    cuda = device.type == "cuda"
    worker_steps = max(steps, 3 * workers) if cuda and workers > 1 else steps
    step, model_info = build_step(settings, device)
    cfg = AugmentConfig.for_dataset(settings["image_size"], settings["channels"])

    say(f"(a) training step on random tensors, {warmup} warm-up + {steps} timed steps")
    ceiling_seconds = time_ceiling(step, settings, device)

    count = synthetic_image_count(settings, worker_steps)
    dataset = synthetic_dataset(settings, count)
    say(f"(b) device augmentation + step, {warmup} warm-up + {steps} timed steps")
    device_path_seconds = time_device_path(step, dataset, cfg, settings, device)
    augment_only_seconds = time_augment_only(dataset, cfg, settings, device)

    say(f"(c) {workers} CPU worker(s) + step, {warmup} warm-up + {worker_steps} timed steps")
    worker_seconds, worker_rate, worker_rate_method = time_worker_path(
        step, dataset, cfg, settings, device, worker_steps
    )

    rows, dim = settings["spectrum_rows"], settings["spectrum_dim"]
    say(f"spectrum of {rows:,} x {dim} random float32 embeddings on {device}")
    spectrum = time_spectrum(rows, dim, device, settings["seed"])
    return _Timings(
        ceiling_seconds=ceiling_seconds,
        device_path_seconds=device_path_seconds,
        augment_only_seconds=augment_only_seconds,
        worker_path_seconds=worker_seconds,
        worker_rate=worker_rate,
        worker_rate_method=worker_rate_method,
        worker_steps=worker_steps,
        spectrum=spectrum,
        model_info=model_info,
        augment={
            "blur": any(p > 0 for p in cfg.blur_prob),
            "solarize": any(p > 0 for p in cfg.solarize_prob),
            "interpolation": cfg.resolved_interpolation,
        },
        synthetic_images=count,
    )


def _result(
    settings: dict[str, Any], device: torch.device, timings: _Timings, threads: int
) -> dict[str, Any]:
    """The figures, the machine, the model and every setting, in the order the JSON shows them."""
    batch, steps = settings["batch"], settings["steps"]
    rate_a = batch * steps / timings.ceiling_seconds
    rate_b = batch * steps / timings.device_path_seconds
    worker_pairs = timings.worker_steps * batch
    return {
        "backbone_pairs_per_s": rate_a,
        "device_aug_pairs_per_s": rate_b,
        "worker_aug_pairs_per_s": timings.worker_rate,
        "device_vs_backbone": rate_b / rate_a,
        "device_vs_worker": rate_b / timings.worker_rate,
        "augment_only_pairs_per_s": batch * steps / timings.augment_only_seconds,
        "backbone_step_ms": 1000 * timings.ceiling_seconds / steps,
        "device_aug_step_ms": 1000 * timings.device_path_seconds / steps,
        "worker_aug_step_ms": 1000 * batch / timings.worker_rate,
        "worker_steps": timings.worker_steps,
        "worker_rate_method": timings.worker_rate_method,
        "worker_aug_pairs_per_s_end_to_end": worker_pairs / timings.worker_path_seconds,
        **timings.spectrum,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "cpu": cpu_model(),
        "cudnn_benchmark": device.type == "cuda",
        "augment": timings.augment,
        "synthetic_images": timings.synthetic_images,
        **timings.model_info,
        **{k: v for k, v in settings.items() if k != "scaled_down"},
        "threads": threads,
        "scaled_down": settings["scaled_down"],
    }
