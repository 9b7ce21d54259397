"""The benchmark's defaults by device type, torch-free so that ``bench --help`` shows them without
importing torch; :mod:`dimcollapse.bench.settings` applies them."""

from __future__ import annotations

from typing import Any

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
#: The GPU's default batch for views larger than ``SMALL_IMAGE_MAX`` px (the anchors' ResNet-50
#: 224 px setting).
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
