"""What the benchmark measures: :class:`BenchSettings`, the device's defaults, and validation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dimcollapse.backbones import BACKBONES, resolve_stem
from dimcollapse.bench.defaults import CPU_DEFAULTS, GPU_DEFAULTS, GPU_LARGE_IMAGE_BATCH
from dimcollapse.data.augment import SMALL_IMAGE_MAX, resized_side, use_small_stem
from dimcollapse.errors import UsageError
from dimcollapse.runtime import resolve_device, resolve_precision, usable_cpus
from dimcollapse.spectrum import check_covariance_memory

#: Precisions the benchmark accepts (fp16 would need a GradScaler, which the step does not time).
BENCH_PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class BenchSettings:
    """What :func:`~dimcollapse.bench.run_bench` measures; ``None`` means the device's default.

    Attributes:
        device: ``auto`` (CUDA if available), ``cuda``, ``cuda:N`` or ``cpu``.
        backbone: ``resnet18``, ``resnet34`` or ``resnet50``.
        image_size: side of the augmented views (and of the random tensors of path a).
        channels: 1 or 3.
        batch: images per step (each gives two views); default 1024 on CUDA (256 for views
            larger than ``SMALL_IMAGE_MAX`` px), 64 on a CPU.
        steps: timed steps of each path (path c takes at least ``3 * workers`` on a GPU).
        warmup: untimed steps before each path's timing.
        workers: DataLoader processes of path c (0: augment in this process).
        width: backbone width multiplier.
        precision: ``auto`` (bf16 on CUDA, fp32 on CPU), ``fp32`` or ``bf16`` autocast.
        channels_last: memory format of the model and views (default: on for CUDA).
        compile: ``torch.compile`` the backbone + head.
        spectrum_rows, spectrum_dim: size of the random embeddings of the spectrum timing.
        source_size: side of the stored uint8 images (default: ``image_size`` up to
            ``SMALL_IMAGE_MAX`` px, else ``round(resized_side(image_size))``, i.e. 256 for 224 px
            views).
        small_stem: CIFAR stem (default: ``image_size <= SMALL_IMAGE_MAX``).
        stem: one of ``backbones.STEMS``; overrides ``small_stem`` (default: what it selects).
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
    stem: str | None = None
    seed: int = 0
    threads: int | None = None


def resolve_settings(settings: BenchSettings | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``settings`` and fill every default; raise :class:`UsageError` on bad values.

    Returns a plain dict of every setting plus ``scaled_down`` (the names that took the CPU's
    smaller defaults) and ``device`` as a resolved string such as ``cuda:0``.
    """
    given = _as_bench_settings(settings)
    resolved = dataclasses.asdict(given)
    _check_choices(resolved)
    device = resolve_device(str(resolved["device"]))
    cuda = device.type == "cuda"
    scaled_down = _fill_device_defaults(resolved, cuda)
    if given.workers is None:  # no more worker processes than cores
        resolved["workers"] = min(resolved["workers"], usable_cpus())
    _check_sizes(resolved)
    _fill_image_defaults(resolved, cuda)
    if resolved["threads"] is not None:
        _check_int(resolved, "threads", 1)
    if not _is_int(resolved["seed"]):
        raise UsageError(f"--seed must be an integer, got {resolved['seed']!r}")
    resolved["precision"] = resolve_precision(resolved["precision"], device)
    resolved["device"] = str(device)
    resolved["compile"] = bool(resolved["compile"])
    resolved["scaled_down"] = scaled_down
    return resolved


def _as_bench_settings(settings: BenchSettings | Mapping[str, Any] | None) -> BenchSettings:
    """``settings`` as a :class:`BenchSettings`; a mapping may name only its fields."""
    if settings is None:
        return BenchSettings()
    if isinstance(settings, Mapping):
        known = {f.name for f in dataclasses.fields(BenchSettings)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UsageError(f"unknown bench setting(s): {', '.join(unknown)}")
        return BenchSettings(**settings)
    return settings


def _check_choices(resolved: dict[str, Any]) -> None:
    if resolved["backbone"] not in BACKBONES:
        raise UsageError(
            f"unknown backbone {resolved['backbone']!r}; choose one of {', '.join(BACKBONES)}"
        )
    if resolved["precision"] not in BENCH_PRECISIONS:
        raise UsageError(
            f"--precision must be one of {', '.join(BENCH_PRECISIONS)}, "
            f"got {resolved['precision']!r}"
        )


def _fill_device_defaults(resolved: dict[str, Any], cuda: bool) -> list[str]:
    """Fill the unset :data:`GPU_DEFAULTS` / :data:`CPU_DEFAULTS` fields; return the names that
    took a CPU value smaller than the GPU's."""
    defaults = GPU_DEFAULTS if cuda else CPU_DEFAULTS
    image_size = resolved["image_size"]
    large_images = _is_int(image_size) and image_size > SMALL_IMAGE_MAX
    scaled_down = []
    for name, value in defaults.items():
        if name == "batch" and cuda and large_images:
            value = GPU_LARGE_IMAGE_BATCH  # ResNet-50 at 224 px: batch 1024 would not fit
        if resolved[name] is None:
            resolved[name] = value
            if not cuda and value != GPU_DEFAULTS[name]:
                scaled_down.append(name)
    return scaled_down


def _check_sizes(resolved: dict[str, Any]) -> None:
    """The counts must be integers at or above their minimum, the width a finite positive float."""
    _check_int(resolved, "image_size", 1)
    _check_int(resolved, "batch", 2)
    _check_int(resolved, "steps", 1)
    _check_int(resolved, "warmup", 0)
    _check_int(resolved, "workers", 0)
    _check_int(resolved, "spectrum_rows", 2)
    _check_int(resolved, "spectrum_dim", 1)
    dim = resolved["spectrum_dim"]
    check_covariance_memory(dim, f"--spectrum-dim {dim}")
    if resolved["channels"] not in (1, 3) or not _is_int(resolved["channels"]):
        raise UsageError(f"--channels must be 1 or 3, got {resolved['channels']!r}")
    try:
        width = float(resolved["width"])
    except (TypeError, ValueError):
        width = math.nan
    if not math.isfinite(width) or width <= 0:
        raise UsageError(f"--width must be a finite number > 0, got {resolved['width']!r}")
    resolved["width"] = width


def _fill_image_defaults(resolved: dict[str, Any], cuda: bool) -> None:
    """Stored image size and stem follow the view size (ImageNet's 256 -> 224 above
    ``SMALL_IMAGE_MAX`` px)."""
    size = resolved["image_size"]
    small = size <= SMALL_IMAGE_MAX
    if resolved["source_size"] is None:
        resolved["source_size"] = size if small else round(resized_side(size))
    _check_int(resolved, "source_size", 1)
    resolved["small_stem"] = use_small_stem(resolved["small_stem"], size)
    resolved["stem"] = resolve_stem(resolved["stem"], resolved["small_stem"])
    if resolved["channels_last"] is None:
        resolved["channels_last"] = cuda


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(resolved: dict[str, Any], name: str, minimum: int) -> None:
    value = resolved[name]
    if not _is_int(value) or value < minimum:
        flag = "--" + name.replace("_", "-")
        raise UsageError(f"{flag} must be an integer >= {minimum}, got {value!r}")
