"""Throughput of the two-view augmentation: batched on a device versus per image on one CPU core.

Times :class:`DeviceTwoViewAugment` on a batch of uint8 images (1024 at 32 px, 256 at 224 px by
default) on ``--device`` against :class:`TwoViewTransform` (torchvision v2, per image) with one
CPU thread, and prints pairs of views per second for each and their ratio. Images are random
square uint8 images of the output size; the recipe is ``AugmentConfig.for_dataset`` (blur and
solarize on at 224 px only).

    PYTHONPATH=src python benchmarks/bench_augment.py --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from dimcollapse.data.augment import AugmentConfig, TwoViewTransform
from dimcollapse.data.device_augment import DeviceTwoViewAugment


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_device(size: int, batch: int, device: torch.device, repeats: int) -> float:
    """Pairs of views per second made by the batched device path."""
    cfg = AugmentConfig.for_dataset(size, 3)
    aug = DeviceTwoViewAugment(cfg, (0.5,) * 3, (0.25,) * 3, 3)
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(
        0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen, device=device
    )
    for _ in range(2):  # warm-up (kernel selection, caches)
        aug(images, gen)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        aug(images, gen)
    _sync(device)
    return batch * repeats / (time.perf_counter() - start)


def bench_cpu(size: int, count: int) -> float:
    """Pairs of views per second made by the per-image CPU recipe on one thread."""
    cfg = AugmentConfig.for_dataset(size, 3)
    transform = TwoViewTransform(cfg, (0.5,) * 3, (0.25,) * 3, 3)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(min(4, count)):
            transform(images[i])
        start = time.perf_counter()
        for img in images:
            transform(img)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument(
        "--device", default=default, help=f"device for the batched path ({default})"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed batches on the device")
    parser.add_argument(
        "--cpu-images",
        type=int,
        default=256,
        help="images timed on the CPU path (a quarter of that at 224 px)",
    )
    parser.add_argument("--small-only", action="store_true", help="skip the 224 px case")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for the batched path when --device cpu (0: torch's)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cases = [(32, 1024)] + ([] if args.small_only else [(224, 256)])
    print(
        f"device path on {device} ({torch.get_num_threads()} CPU threads if cpu); "
        f"CPU path: torchvision v2 per image, 1 thread; torch {torch.__version__}"
    )
    print(f"{'size':>5} {'batch':>6} {'device pairs/s':>15} {'cpu pairs/s':>12} {'ratio':>8}")
    for size, batch in cases:
        dev = bench_device(size, batch, device, args.repeats)
        cpu = bench_cpu(size, args.cpu_images if size <= 64 else max(args.cpu_images // 4, 8))
        print(f"{size:>5} {batch:>6} {dev:>15,.0f} {cpu:>12,.0f} {dev / cpu:>8.1f}")


if __name__ == "__main__":
    main()
