"""What the benchmark ran on: the device's readable name and the CPU's description."""

from __future__ import annotations

import torch

from dimcollapse.runtime import cpu_model_name, usable_cpus


def cpu_model() -> str:
    """The CPU's model name and the logical cores this process may use."""
    return f"{cpu_model_name()}, {usable_cpus()} logical cores"


def device_name(device: torch.device) -> str:
    """A readable name of ``device``: the GPU's name, or the CPU model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()
