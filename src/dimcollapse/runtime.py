"""Execution context: device choice, seeding, RNG state capture, mixed precision; the machine a
run is on (CPU and device names, versions and hardware for the reproduction's report)."""

from __future__ import annotations

import contextlib
import os
import platform
import random
from typing import Any

import numpy as np
import torch

from dimcollapse import __version__
from dimcollapse.errors import UsageError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> the local rank's GPU if there is one, else the CPU."""
    if name == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but no CUDA device is available")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices); a UsageError for a
    seed torch does not take (outside 0 .. 2**64 - 1; commands take 0 .. 2**32 - 1,
    :data:`dimcollapse.options.SEED_MAX`, so that ``seed + rank`` stays inside)."""
    if not 0 <= seed < 2**64:
        raise UsageError(f"seed must be an integer from 0 to 2**64 - 1, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain Python values (loadable with weights_only)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on GPU, fp32 on CPU; fp16/bf16 need a GPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("fp16 mixed precision needs a GPU; use fp32 or bf16 on the CPU")
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh,
    ):
        for line in fh:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpus() -> int:
    """Logical cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def cpu_model() -> str:
    """The CPU's model name and the logical cores this process may use."""
    return f"{cpu_model_name()}, {usable_cpus()} logical cores"


def device_name(device: torch.device) -> str:
    """A readable name of ``device``: the GPU's name, or the CPU model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def environment() -> dict[str, Any]:
    """Versions and hardware, for the reproduction's report."""
    import torchvision  # torchvision-free spectrum FILE and toy: torchvision 1240 ms

    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "dimcollapse": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "gpus": gpus,
    }


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Any:
    """Run the block with ``torch.set_num_threads(threads)`` (``None``: unchanged), then restore.

    One thread per process is the fast setting on small shared machines: two threads under a
    busy neighbour run several times slower than one (benchmarks/RESULTS.md)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_fits_in_memory(need_bytes: float, what: str) -> None:
    """Refuse, before allocating, ``need_bytes`` for ``what`` when it exceeds half of this
    machine's physical memory: one ``UsageError`` line ``"{what} needs at least X GiB ...;
    this machine has Y GiB"`` instead of an allocator's traceback minutes later."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return
    if need_bytes > total // 2:
        raise UsageError(
            f"{what} needs at least {need_bytes / 2**30:.1f} GiB; this machine has "
            f"{total / 2**30:.1f} GiB"
        )
