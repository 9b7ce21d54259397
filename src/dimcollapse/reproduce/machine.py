"""The machine a reproduction ran on (versions and hardware), for the report's setup table."""

from __future__ import annotations

import os
import platform
from typing import Any


def environment() -> dict[str, Any]:
    """Versions and hardware, for the report."""
    import torch
    import torchvision

    from dimcollapse import __version__
    from dimcollapse.runtime import cpu_model_name, usable_cpus

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
