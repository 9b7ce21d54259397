"""The timings: the step alone (a), fed by device (b) or worker (c) augmentation, and the spectrum.

The clock starts after a device synchronisation and stops after one, and nothing inside a timed
loop waits on the device. The images are random uint8 (the content does not change the cost of
any path).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from dimcollapse.data.device_augment import DeviceTwoViewAugment
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.data.loaders import build_view_loader
from dimcollapse.spectrum import SpectrumAccumulator

#: Rows of embeddings per SpectrumAccumulator.update (as ``dimcollapse spectrum``'s default).
SPECTRUM_CHUNK_ROWS = 65536

#: Distinct random chunks generated for the spectrum timing; they are reused cyclically so that
#: generating the data is not timed and memory stays bounded for a million rows.
_SPECTRUM_POOL_CHUNKS = 4

#: Most bytes of synthetic uint8 images held (in host memory, and on the device for path b).
_MAX_IMAGE_BYTES = 4 << 30

#: A training step on two view batches, as :func:`dimcollapse.bench.step.build_step` returns.
Step = Callable[[Tensor, Tensor], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_fixed(
    step: Step,
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


def synthetic_image_count(settings: dict[str, Any], worker_steps: int) -> int:
    """Images enough that one epoch covers each path's steps, when they fit in memory."""
    batch = settings["batch"]
    image_bytes = settings["channels"] * settings["source_size"] ** 2
    wanted = batch * (settings["warmup"] + max(settings["steps"], worker_steps) + 1)
    return max(batch, min(wanted, _MAX_IMAGE_BYTES // image_bytes))


def synthetic_dataset(settings: dict[str, Any], count: int) -> Any:
    """An in-memory ImageDataset of ``count`` random uint8 images (a tiled pool of 4096)."""
    c, size = settings["channels"], settings["source_size"]
    gen = torch.Generator().manual_seed(settings["seed"])
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


def time_ceiling(step: Step, settings: dict[str, Any], device: torch.device) -> float:
    """(a): seconds of ``steps`` steps on two random view tensors already on the device."""
    c, size, batch = settings["channels"], settings["image_size"], settings["batch"]
    gen = torch.Generator(device=device).manual_seed(settings["seed"])
    v1 = torch.randn(batch, c, size, size, device=device, generator=gen)
    v2 = torch.randn(batch, c, size, size, device=device, generator=gen)
    return _time_fixed(step, lambda: (v1, v2), settings["warmup"], settings["steps"], device)


def time_device_path(
    step: Step,
    dataset: Any,
    cfg: Any,
    settings: dict[str, Any],
    device: torch.device,
) -> float:
    """(b): the trainer's device loader (uint8 images on the device, augmented there) + step."""
    loader = build_view_loader(
        dataset,
        cfg,
        batch_size=settings["batch"],
        device=device,
        path="device",
        seed=settings["seed"],
    )
    it = _forever(loader)

    def next_views() -> tuple[Tensor, Tensor]:
        v1, v2, _labels = next(it)
        return v1, v2

    try:
        return _time_fixed(step, next_views, settings["warmup"], settings["steps"], device)
    finally:
        it.close()


def time_augment_only(
    dataset: Any, cfg: Any, settings: dict[str, Any], device: torch.device
) -> float:
    """Seconds of ``steps`` calls of the device augmentation on one batch held on the device."""
    aug = DeviceTwoViewAugment(cfg, dataset.mean, dataset.std, settings["channels"])
    held = dataset.tensors()
    assert held is not None
    images = held[0][: settings["batch"]].to(device)
    gen = torch.Generator(device=device).manual_seed(settings["seed"] + 1)
    for _ in range(max(1, settings["warmup"])):
        aug(images, gen)
    _sync(device)
    start = time.perf_counter()
    for _ in range(settings["steps"]):
        aug(images, gen)
    _sync(device)
    return time.perf_counter() - start


def time_worker_path(
    step: Step,
    dataset: Any,
    cfg: Any,
    settings: dict[str, Any],
    device: torch.device,
    steps: int,
) -> tuple[float, float, str]:
    """(c): the trainer's worker loader (pinned memory, non-blocking copies) + step.

    Returns the synchronised seconds of ``steps`` steps, and the pairs/s and method of
    :func:`_worker_rate` (from how long each fetch blocked and when it arrived: host clock only,
    nothing here waits on the device).
    """
    loader = build_view_loader(
        dataset,
        cfg,
        batch_size=settings["batch"],
        device=device,
        path="workers",
        workers=settings["workers"],
        seed=settings["seed"],
    )
    it = _forever(loader)
    waits: list[float] = []
    arrivals: list[float] = []
    try:
        for _ in range(settings["warmup"]):
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
    rate, method = _worker_rate(waits, arrivals, seconds, settings["batch"])
    return seconds, rate, method


def time_spectrum(rows: int, dim: int, device: torch.device, seed: int) -> dict[str, Any]:
    """Seconds to accumulate ``rows x dim`` float32 rows on ``device`` and get the spectrum."""
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
