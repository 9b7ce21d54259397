"""Throughput benchmarks: how fast can the training step go, and what feeds it.

:func:`run_bench` measures, in one run on one device, pairs of views per second of

* (a) the **backbone ceiling**: the training step alone on two random view tensors already on the
  device (two forwards of backbone + ``simclr-mlp`` head, symmetric InfoNCE with tau 0.1,
  backward, LARS step; bf16 autocast and channels_last on a GPU);
* (b) the **device-augmentation path**: uint8 images held on the device, a random batch of
  indices, :class:`~dimcollapse.data.device_augment.DeviceTwoViewAugment`, then the same step
  (the trainer's own loader, ``build_view_loader(path="device")``);
* (c) the **CPU-worker path**: a ``DataLoader`` of ``workers`` processes applying
  :class:`~dimcollapse.data.augment.TwoViewTransform` per image, pinned memory and non-blocking
  copies (``build_view_loader(path="workers")``), then the same step;

and the seconds :class:`~dimcollapse.spectrum.SpectrumAccumulator` takes to turn
``spectrum_rows x spectrum_dim`` random float32 embeddings held on the device into a spectrum
(accumulation of the covariance in chunks, then the eigendecomposition).

Timing: warm-up steps are excluded; the clock starts after a device synchronisation and stops
after one (``torch.cuda.synchronize``), and nothing inside a timed loop waits on the device. The
images are random uint8 (the content does not change the cost of any path). For the worker path
on a GPU the batches arrive in bursts (each worker assembles a whole batch), so its rate is
taken between two moments at which the loader's queue ran dry (see :func:`_worker_rate`), which
does not depend on how many batches happened to be queued when the clock started.

Defaults depend on the device: on CUDA the issue's setting (ResNet-18 with the small stem,
32x32x3, batch 1024, bf16, 16 workers, spectrum 1,000,000 x 2048); on a CPU a scaled-down one
(width 0.25, batch 64, 2 timed steps, spectrum 100,000 x 512) that finishes in well under a
minute; the result says which settings were scaled down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dimcollapse.errors import UsageError

#: Precisions the benchmark accepts (fp16 would need a GradScaler, which the step does not time).
BENCH_PRECISIONS = ("auto", "fp32", "bf16")

#: The head between backbone and loss in every timed step.
BENCH_HEAD = "simclr-mlp"

#: Rows of embeddings per SpectrumAccumulator.update (as ``dimcollapse spectrum``'s default).
SPECTRUM_CHUNK_ROWS = 65536

#: Distinct random chunks generated for the spectrum timing; they are reused cyclically so that
#: generating the data is not timed and memory stays bounded for a million rows.
_SPECTRUM_POOL_CHUNKS = 4

#: Most bytes of synthetic uint8 images held (in host memory, and on the device for path b).
_MAX_IMAGE_BYTES = 4 << 30

#: Defaults by device type; ``None`` fields of :class:`BenchSettings` take these.
GPU_DEFAULTS: dict[str, Any] = {
    "batch": 1024,
    "steps": 50,
    "warmup": 10,
    "workers": 16,
    "width": 1.0,
    "spectrum_rows": 1_000_000,
    "spectrum_dim": 2048,
}
#: The GPU's default batch for views larger than 64 px (the anchors' ResNet-50 224 px setting).
GPU_LARGE_IMAGE_BATCH = 256
CPU_DEFAULTS: dict[str, Any] = {
    "batch": 64,
    "steps": 2,
    "warmup": 1,
    "workers": 2,
    "width": 0.25,
    "spectrum_rows": 100_000,
    "spectrum_dim": 512,
}

#: Goals on one H200: ``(metric, minimum, applies to images of at most / more than 64 px)``.
#: At 32x32 ResNet-18 batch 1024 with 16 workers: (b) >= 85% of (a) and >= 4x (c).
#: At 224 px ResNet-50: (b) >= 70% of (a).
GOALS_SMALL: tuple[tuple[str, float], ...] = (
    ("device_vs_backbone", 0.85),
    ("device_vs_worker", 4.0),
)
GOALS_LARGE: tuple[tuple[str, float], ...] = (("device_vs_backbone", 0.70),)
_GOAL_REFERENCE_SMALL = {
    "backbone": "resnet18",
    "image_size": 32,
    "batch": 1024,
    "workers": 16,
    "width": 1.0,
    "precision": "bf16",
}
_GOAL_REFERENCE_LARGE = {
    "backbone": "resnet50",
    "image_size": 224,
    "width": 1.0,
    "precision": "bf16",
}


@dataclass
class BenchSettings:
    """What :func:`run_bench` measures; ``None`` means the device's default (see module doc).

    Attributes:
        device: ``auto`` (CUDA if available), ``cuda``, ``cuda:N`` or ``cpu``.
        backbone: ``resnet18``, ``resnet34`` or ``resnet50``.
        image_size: side of the augmented views (and of the random tensors of path a).
        channels: 1 or 3.
        batch: images per step (each gives two views); default 1024 on CUDA (256 for views
            larger than 64 px), 64 on a CPU.
        steps: timed steps of each path (path c takes at least ``3 * workers`` on a GPU).
        warmup: untimed steps before each path's timing.
        workers: DataLoader processes of path c (0: augment in this process).
        width: backbone width multiplier.
        precision: ``auto`` (bf16 on CUDA, fp32 on CPU), ``fp32`` or ``bf16`` autocast.
        channels_last: memory format of the model and views (default: on for CUDA).
        compile: ``torch.compile`` the backbone + head.
        spectrum_rows, spectrum_dim: size of the random embeddings of the spectrum timing.
        source_size: side of the stored uint8 images (default: ``image_size`` up to 64 px,
            else ``round(image_size * 256 / 224)``, i.e. 256 for 224 px views).
        small_stem: CIFAR stem (default: ``image_size <= 64``).
        seed: seeds the model, the data and the augmentation.
        threads: torch's intra-op CPU threads during the run (default: leave torch's setting);
            on a small, shared CPU one thread can be several times faster than two.
    """

    device: str = "auto"
    backbone: str = "resnet18"
    image_size: int = 32
    channels: int = 3
    batch: int | None = None
    steps: int | None = None
    warmup: int | None = None
    workers: int | None = None
    width: float | None = None
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    spectrum_rows: int | None = None
    spectrum_dim: int | None = None
    source_size: int | None = None
    small_stem: bool | None = None
    seed: int = 0
    threads: int | None = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_settings(settings: BenchSettings | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``settings`` and fill every default; raise :class:`UsageError` on bad values.

    Returns a plain dict of every setting plus ``scaled_down`` (the names that took the CPU's
    smaller defaults) and ``device`` as a resolved string such as ``cuda:0``.
    """
    from dimcollapse.backbones import BACKBONES
    from dimcollapse.runtime import resolve_device, resolve_precision

    if settings is None:
        settings = BenchSettings()
    elif isinstance(settings, Mapping):
        known = {f.name for f in dataclasses.fields(BenchSettings)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UsageError(f"unknown bench setting(s): {', '.join(unknown)}")
        settings = BenchSettings(**settings)
    s = dataclasses.asdict(settings)

    if s["backbone"] not in BACKBONES:
        raise UsageError(
            f"unknown backbone {s['backbone']!r}; choose one of {', '.join(BACKBONES)}"
        )
    if s["precision"] not in BENCH_PRECISIONS:
        raise UsageError(
            f"--precision must be one of {', '.join(BENCH_PRECISIONS)}, got {s['precision']!r}"
        )
    device = resolve_device(str(s["device"]))
    cuda = device.type == "cuda"
    defaults = GPU_DEFAULTS if cuda else CPU_DEFAULTS
    scaled_down = []
    for name, value in defaults.items():
        if name == "batch" and cuda and _is_int(s["image_size"]) and s["image_size"] > 64:
            value = GPU_LARGE_IMAGE_BATCH  # ResNet-50 at 224 px: batch 1024 would not fit
        if s[name] is None:
            s[name] = value
            if not cuda and value != GPU_DEFAULTS[name]:
                scaled_down.append(name)
    if settings.workers is None:  # no more worker processes than cores
        s["workers"] = min(s["workers"], os.cpu_count() or 1)

    _check_int(s, "image_size", 1)
    _check_int(s, "batch", 2)
    _check_int(s, "steps", 1)
    _check_int(s, "warmup", 0)
    _check_int(s, "workers", 0)
    _check_int(s, "spectrum_rows", 2)
    _check_int(s, "spectrum_dim", 1)
    if s["channels"] not in (1, 3) or not _is_int(s["channels"]):
        raise UsageError(f"--channels must be 1 or 3, got {s['channels']!r}")
    try:
        width = float(s["width"])
    except (TypeError, ValueError):
        width = math.nan
    if not math.isfinite(width) or width <= 0:
        raise UsageError(f"--width must be a finite number > 0, got {s['width']!r}")
    s["width"] = width
    if s["source_size"] is None:
        size = s["image_size"]
        s["source_size"] = size if size <= 64 else round(size * 256 / 224)
    _check_int(s, "source_size", 1)
    if s["small_stem"] is None:
        s["small_stem"] = s["image_size"] <= 64
    if s["channels_last"] is None:
        s["channels_last"] = cuda
    if s["threads"] is not None:
        _check_int(s, "threads", 1)
    if not _is_int(s["seed"]):
        raise UsageError(f"--seed must be an integer, got {s['seed']!r}")
    s["precision"] = resolve_precision(s["precision"], device)
    s["device"] = str(device)
    s["compile"] = bool(s["compile"])
    s["scaled_down"] = scaled_down
    return s


def _check_int(s: dict[str, Any], name: str, minimum: int) -> None:
    value = s[name]
    if not _is_int(value) or value < minimum:
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"{flag} must be an integer >= {minimum}, got {value!r}")


# ----------------------------------------------------------------------------------------------
# machine description


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux) and its logical core count."""
    name = ""
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh,
    ):
        for line in fh:
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name}, {os.cpu_count() or 1} logical cores"


def device_name(device: torch.device) -> str:
    """A readable name of ``device``: the GPU's name, or the CPU model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------
# the training step


class _Encoder(nn.Module):
    """Backbone then head: ``(B, C, S, S)`` views -> ``(B, out)`` embeddings."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def _build_step(s: dict[str, Any], device: torch.device) -> tuple[Callable[..., None], dict]:
    """The timed training step ``step(v1, v2)`` and a description of the model."""
    from dimcollapse.backbones import build_backbone
    from dimcollapse.losses import info_nce
    from dimcollapse.optim import build_optimizer, scaled_lr
    from dimcollapse.projectors import build_head
    from dimcollapse.runtime import autocast

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        backbone, rep_dim = build_backbone(
            s["backbone"],
            in_channels=s["channels"],
            small_images=s["small_stem"],
            width=s["width"],
        )
        head = build_head(BENCH_HEAD, rep_dim)
    model = _Encoder(backbone, head).to(device)
    if s["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    lr = scaled_lr(0.3, s["batch"])
    optimizer = build_optimizer("lars", model, lr=lr, weight_decay=1e-6)
    forward: Callable[[Tensor], Tensor] = model
    if s["compile"]:
        forward = torch.compile(model)
    precision = s["precision"]
    channels_last = s["channels_last"]

    def step(v1: Tensor, v2: Tensor) -> None:
        if channels_last:
            v1 = v1.contiguous(memory_format=torch.channels_last)
            v2 = v2.contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            z1 = forward(v1)
            z2 = forward(v2)
        loss = info_nce(z1.float(), z2.float(), temperature=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    info = {
        "head": BENCH_HEAD,
        "rep_dim": rep_dim,
        "embedding_dim": head.out_features,
        "loss": "info_nce symmetric, tau 0.1",
        "optimizer": f"lars lr {lr:g} weight decay 1e-06",
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return step, info


# ----------------------------------------------------------------------------------------------
# the three paths


def _time_fixed(
    step: Callable[[Tensor, Tensor], None],
    batches: Callable[[], tuple[Tensor, Tensor]],
    warmup: int,
    steps: int,
    device: torch.device,
) -> float:
    """Seconds for ``steps`` steps after ``warmup`` untimed ones; synchronised at both ends."""
    for _ in range(warmup):
        step(*batches())
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(*batches())
    _sync(device)
    return time.perf_counter() - start


def _forever(loader: Any) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """The loader's batches epoch after epoch."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def _worker_rate(
    waits: list[float], arrivals: list[float], elapsed: float, batch: int
) -> tuple[float, str]:
    """Pairs/s of a DataLoader-fed loop, robust to batches arriving in bursts.

    ``waits[i]``: seconds the loop blocked fetching batch ``i``; ``arrivals[i]``: when it got it.
    A *dry* fetch (one that waited more than half the mean interval between batches) means the
    queue was empty; between two dry fetches the loop consumed exactly what the workers produced,
    so ``batches between them / time between them`` is the workers' steady rate whatever was
    queued when the clock started. Used when the dry fetches span at least half of the timed
    batches; otherwise (the step, not the data, sets the pace) the end-to-end rate is returned.
    """
    n = len(waits)
    end_to_end = n * batch / elapsed
    mean_interval = elapsed / n
    dry = [i for i, w in enumerate(waits) if w > 0.5 * mean_interval]
    if len(dry) >= 2 and dry[-1] - dry[0] >= n / 2:
        span = arrivals[dry[-1]] - arrivals[dry[0]]
        if span > 0:
            return (dry[-1] - dry[0]) * batch / span, "between dry fetches"
    return end_to_end, "end to end"


def _synthetic_dataset(s: dict[str, Any], count: int) -> Any:
    """An in-memory ImageDataset of ``count`` random uint8 images (a tiled pool of 4096)."""
    from dimcollapse.data.datasets import ImageDataset

    c, size = s["channels"], s["source_size"]
    gen = torch.Generator().manual_seed(s["seed"])
    pool = torch.randint(
        0, 256, (min(count, 4096), c, size, size), dtype=torch.uint8, generator=gen
    )
    images = pool[torch.arange(count) % pool.shape[0]]
    labels = torch.randint(0, 10, (count,), generator=gen)
    return ImageDataset(
        "synthetic",
        num_classes=10,
        channels=c,
        image_size=size,
        mean=(0.5,) * c,
        std=(0.25,) * c,
        images=images,
        labels=labels,
    )


def _time_ceiling(
    step: Callable[[Tensor, Tensor], None], s: dict[str, Any], device: torch.device
) -> float:
    """(a): seconds of ``steps`` steps on two random view tensors already on the device."""
    c, size, batch = s["channels"], s["image_size"], s["batch"]
    gen = torch.Generator(device=device).manual_seed(s["seed"])
    v1 = torch.randn(batch, c, size, size, device=device, generator=gen)
    v2 = torch.randn(batch, c, size, size, device=device, generator=gen)
    return _time_fixed(step, lambda: (v1, v2), s["warmup"], s["steps"], device)


def _time_device_path(
    step: Callable[[Tensor, Tensor], None],
    dataset: Any,
    cfg: Any,
    s: dict[str, Any],
    device: torch.device,
) -> float:
    """(b): the trainer's device loader (uint8 images on the device, augmented there) + step."""
    from dimcollapse.data.loaders import build_view_loader

    loader = build_view_loader(
        dataset, cfg, batch_size=s["batch"], device=device, path="device", seed=s["seed"]
    )
    it = _forever(loader)

    def next_views() -> tuple[Tensor, Tensor]:
        v1, v2, _labels = next(it)
        return v1, v2

    try:
        return _time_fixed(step, next_views, s["warmup"], s["steps"], device)
    finally:
        it.close()


def _time_augment_only(dataset: Any, cfg: Any, s: dict[str, Any], device: torch.device) -> float:
    """Seconds of ``steps`` calls of the device augmentation on one batch held on the device."""
    from dimcollapse.data.device_augment import DeviceTwoViewAugment

    aug = DeviceTwoViewAugment(cfg, dataset.mean, dataset.std, s["channels"])
    held = dataset.tensors()
    assert held is not None
    images = held[0][: s["batch"]].to(device)
    gen = torch.Generator(device=device).manual_seed(s["seed"] + 1)
    for _ in range(max(1, s["warmup"])):
        aug(images, gen)
    _sync(device)
    start = time.perf_counter()
    for _ in range(s["steps"]):
        aug(images, gen)
    _sync(device)
    return time.perf_counter() - start


def _time_worker_path(
    step: Callable[[Tensor, Tensor], None],
    dataset: Any,
    cfg: Any,
    s: dict[str, Any],
    device: torch.device,
    steps: int,
) -> tuple[float, list[float], list[float]]:
    """(c): the trainer's worker loader (pinned memory, non-blocking copies) + step.

    Returns the synchronised seconds of ``steps`` steps and, per step, how long fetching the
    batch blocked and when it arrived (host clock only: nothing here waits on the device).
    """
    from dimcollapse.data.loaders import build_view_loader

    loader = build_view_loader(
        dataset,
        cfg,
        batch_size=s["batch"],
        device=device,
        path="workers",
        workers=s["workers"],
        seed=s["seed"],
    )
    it = _forever(loader)
    waits: list[float] = []
    arrivals: list[float] = []
    try:
        for _ in range(s["warmup"]):
            v1, v2, _labels = next(it)
            step(v1, v2)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            before = time.perf_counter()
            v1, v2, _labels = next(it)
            got = time.perf_counter()
            waits.append(got - before)
            arrivals.append(got)
            step(v1, v2)
        _sync(device)
        seconds = time.perf_counter() - start
    finally:
        it.close()
        del it, loader
        gc.collect()  # shuts the persistent workers down now
    return seconds, waits, arrivals


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
    from dimcollapse.data.augment import AugmentConfig

    s = resolve_settings(settings)
    say = log or (lambda _msg: None)
    device = torch.device(s["device"])
    cuda = device.type == "cuda"
    batch, steps, warmup, workers = s["batch"], s["steps"], s["warmup"], s["workers"]
    # On a GPU the worker path needs a few bursts of batches in its window (see _worker_rate).
    worker_steps = max(steps, 3 * workers) if cuda and workers > 1 else steps

    cudnn_before = torch.backends.cudnn.benchmark
    threads_before = torch.get_num_threads()
    if cuda:
        torch.backends.cudnn.benchmark = True
    if s["threads"] is not None:
        torch.set_num_threads(s["threads"])
    threads = torch.get_num_threads()
    try:
        step, model_info = _build_step(s, device)
        cfg = AugmentConfig.for_dataset(s["image_size"], s["channels"])

        say(f"(a) training step on random tensors, {warmup} warm-up + {steps} timed steps")
        seconds_a = _time_ceiling(step, s, device)

        # synthetic data: enough images that one epoch covers each path's steps when it fits
        image_bytes = s["channels"] * s["source_size"] ** 2
        wanted = batch * (warmup + max(steps, worker_steps) + 1)
        count = max(batch, min(wanted, _MAX_IMAGE_BYTES // image_bytes))
        dataset = _synthetic_dataset(s, count)

        say(f"(b) device augmentation + step, {warmup} warm-up + {steps} timed steps")
        seconds_b = _time_device_path(step, dataset, cfg, s, device)
        seconds_aug = _time_augment_only(dataset, cfg, s, device)

        say(f"(c) {workers} CPU worker(s) + step, {warmup} warm-up + {worker_steps} timed steps")
        seconds_c, waits, arrivals = _time_worker_path(step, dataset, cfg, s, device, worker_steps)
        rate_c, rate_method = _worker_rate(waits, arrivals, seconds_c, batch)

        rows, dim = s["spectrum_rows"], s["spectrum_dim"]
        say(f"spectrum of {rows:,} x {dim} random float32 embeddings on {device}")
        spectrum = _time_spectrum(rows, dim, device, s["seed"])
    finally:
        torch.backends.cudnn.benchmark = cudnn_before
        torch.set_num_threads(threads_before)

    rate_a = batch * steps / seconds_a
    rate_b = batch * steps / seconds_b
    result: dict[str, Any] = {
        "backbone_pairs_per_s": rate_a,
        "device_aug_pairs_per_s": rate_b,
        "worker_aug_pairs_per_s": rate_c,
        "device_vs_backbone": rate_b / rate_a,
        "device_vs_worker": rate_b / rate_c,
        "augment_only_pairs_per_s": batch * steps / seconds_aug,
        "backbone_step_ms": 1000 * seconds_a / steps,
        "device_aug_step_ms": 1000 * seconds_b / steps,
        "worker_aug_step_ms": 1000 * batch / rate_c,
        "worker_steps": worker_steps,
        "worker_rate_method": rate_method,
        "worker_aug_pairs_per_s_end_to_end": worker_steps * batch / seconds_c,
        **spectrum,
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "cpu": cpu_model(),
        "cudnn_benchmark": cuda,
        "augment": {
            "blur": any(p > 0 for p in cfg.blur_prob),
            "solarize": any(p > 0 for p in cfg.solarize_prob),
            "interpolation": cfg.resolved_interpolation,
        },
        "synthetic_images": count,
        **model_info,
        **{k: v for k, v in s.items() if k != "scaled_down"},
        "threads": threads,
        "scaled_down": s["scaled_down"],
    }
    result["goals"] = evaluate_goals(result)
    return result


def _time_spectrum(rows: int, dim: int, device: torch.device, seed: int) -> dict[str, Any]:
    """Seconds to accumulate ``rows x dim`` float32 rows on ``device`` and get the spectrum."""
    from dimcollapse.spectrum import SpectrumAccumulator

    chunk = min(rows, SPECTRUM_CHUNK_ROWS)
    gen = torch.Generator(device=device).manual_seed(seed + 2)
    # a spectrum that decays like a trained network's (power law), drawn once per pool chunk
    scale = torch.arange(1, dim + 1, device=device, dtype=torch.float32).pow(-0.5)
    n_chunks = math.ceil(rows / chunk)
    pool = [
        torch.randn(chunk, dim, device=device, generator=gen) * scale
        for _ in range(min(n_chunks, _SPECTRUM_POOL_CHUNKS))
    ]
    # warm-up on a small accumulator: BLAS/cuBLAS handles, LAPACK workspace
    warm = SpectrumAccumulator(device=device, precision="auto")
    warm.update(pool[0][: min(chunk, 1024)])
    warm.singular_values()
    _sync(device)

    acc = SpectrumAccumulator(device=device, precision="auto")
    start = time.perf_counter()
    left = rows
    k = 0
    while left > 0:
        block = pool[k % len(pool)]
        acc.update(block[: min(left, chunk)])
        left -= min(left, chunk)
        k += 1
    _sync(device)
    accumulated = time.perf_counter() - start
    sv = acc.singular_values()
    total = time.perf_counter() - start
    if acc.n != rows or sv.shape != (dim,):  # pragma: no cover - a bug, not user input
        raise RuntimeError(f"spectrum bench accumulated {acc.n} rows, expected {rows}")
    return {
        "spectrum_seconds": total,
        "spectrum_accumulate_seconds": accumulated,
        "spectrum_eig_seconds": total - accumulated,
        "spectrum_chunk_rows": chunk,
        "spectrum_precision": "auto (float32 products, float64 sums)",
    }


# ----------------------------------------------------------------------------------------------
# goals and the readable report


def evaluate_goals(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The H200 goals that apply to this run's image size, each with its value and verdict.

    ``met`` is ``None`` off CUDA (the goals are for one H200). ``reference`` says whether the
    run used the goal's own setting (else the verdict is only indicative).
    """
    small = result["image_size"] <= 64
    goals = GOALS_SMALL if small else GOALS_LARGE
    reference = _GOAL_REFERENCE_SMALL if small else _GOAL_REFERENCE_LARGE
    on_reference = all(result.get(k) == v for k, v in reference.items())
    cuda = str(result["device"]).startswith("cuda")
    out = []
    for metric, minimum in goals:
        value = float(result[metric])
        out.append(
            {
                "metric": metric,
                "minimum": minimum,
                "value": value,
                "met": (value >= minimum) if cuda else None,
                "reference": on_reference,
                "reference_setting": dict(reference),
            }
        )
    return out


def _goal_text(metric: str, minimum: float) -> str:
    if metric == "device_vs_backbone":
        return f"(b) >= {minimum:.0%} of (a)"
    return f"(b) >= {minimum:g}x (c)"


def format_report(result: Mapping[str, Any]) -> str:
    """The readable table of a :func:`run_bench` result."""
    r = result
    stem = "small stem" if r["small_stem"] else "ImageNet stem"
    lines = [
        f"dimcollapse bench on {r['device']} ({r['device_name']}), torch {r['torch_version']}",
        f"  {r['backbone']} ({stem}) width {r['width']:g}, rep {r['rep_dim']}, "
        f"head {r['head']} -> {r['embedding_dim']}, {r['loss']}, LARS",
        f"  views {r['image_size']}x{r['image_size']}x{r['channels']} from "
        f"{r['source_size']} px uint8 images, batch {r['batch']} pairs, {r['precision']}, "
        f"{r['threads']} CPU thread(s)"
        + (", channels_last" if r["channels_last"] else "")
        + (", torch.compile" if r["compile"] else ""),
    ]
    if r["scaled_down"]:
        scaled = ", ".join(
            f"{k} {r[k]:,}" if k != "width" else f"width {r[k]:g}" for k in r["scaled_down"]
        )
        gpu = ", ".join(
            f"{k} {GPU_DEFAULTS[k]:,}" if k != "width" else f"width {GPU_DEFAULTS[k]:g}"
            for k in r["scaled_down"]
        )
        lines.append(
            f"  note: no GPU, settings scaled down for the CPU: {scaled} (GPU defaults: {gpu})"
        )
    worker_label = f"(c) {r['workers']} CPU worker(s) augmentation + step"
    lines += [
        "",
        f"  {'path':<46}{'pairs/s':>12}{'ms/step':>10}",
        f"  {'(a) step on random tensors on the device':<46}"
        f"{r['backbone_pairs_per_s']:>12,.1f}{r['backbone_step_ms']:>10.1f}",
        f"  {'(b) device augmentation + step':<46}"
        f"{r['device_aug_pairs_per_s']:>12,.1f}{r['device_aug_step_ms']:>10.1f}",
        f"  {worker_label:<46}"
        f"{r['worker_aug_pairs_per_s']:>12,.1f}{r['worker_aug_step_ms']:>10.1f}",
        f"  {'    device augmentation alone':<46}{r['augment_only_pairs_per_s']:>12,.1f}",
        "",
        f"  (b) / (a) = {r['device_vs_backbone']:.3f}     (b) / (c) = {r['device_vs_worker']:.2f}x"
        f"     ({r['steps']} timed steps after {r['warmup']} warm-up; (c) {r['worker_steps']} "
        f"steps, rate {r['worker_rate_method']})",
        f"  spectrum of {r['spectrum_rows']:,} x {r['spectrum_dim']} float32 on {r['device']}: "
        f"{r['spectrum_seconds']:.3f} s (accumulate {r['spectrum_accumulate_seconds']:.3f} s in "
        f"chunks of {r['spectrum_chunk_rows']:,}, eigendecomposition "
        f"{r['spectrum_eig_seconds']:.3f} s)",
    ]
    goals = r.get("goals") or []
    if str(r["device"]).startswith("cuda"):
        for g in goals:
            verdict = "met" if g["met"] else "NOT met"
            ref = (
                ""
                if g["reference"]
                else (
                    "  (goal setting: "
                    + ", ".join(f"{k} {v}" for k, v in g["reference_setting"].items())
                    + "; this run differs)"
                )
            )
            lines.append(
                f"  goal {_goal_text(g['metric'], g['minimum'])}: {g['value']:.3g} -> "
                f"{verdict}{ref}"
            )
    else:
        lines.append(
            "  goals ("
            + "; ".join(_goal_text(g["metric"], g["minimum"]) for g in goals)
            + ") are for one H200: run with --device cuda"
        )
    return "\n".join(lines)
