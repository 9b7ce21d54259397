"""The throughput goals on one H200 and their verdicts for a :func:`run_bench` result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dimcollapse.data.augment import SMALL_IMAGE_MAX

#: Goals on one H200: ``(metric, minimum)``, for images of at most (``GOALS_SMALL``) or more
#: than (``GOALS_LARGE``) ``SMALL_IMAGE_MAX`` px.
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


def evaluate_goals(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The H200 goals that apply to this run's image size, each with its value and verdict.

    ``met`` is ``None`` off CUDA (the goals are for one H200). ``reference`` says whether the
    run used the goal's own setting (else the verdict is only indicative).
    """
    small = result["image_size"] <= SMALL_IMAGE_MAX
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


def goal_text(metric: str, minimum: float) -> str:
    """A goal as the report writes it, e.g. ``(b) >= 85% of (a)``."""
    if metric == "device_vs_backbone":
        return f"(b) >= {minimum:.0%} of (a)"
    return f"(b) >= {minimum:g}x (c)"
