"""Tiny run settings that tests in several packages share (tests/ is on pytest's pythonpath,
so any test module imports them as ``from tiny_runs import ...``)."""

from __future__ import annotations

import re

#: A pretraining run that takes seconds: 640 digits, 2 epochs, a 1/8-width ResNet-18.
TINY_TRAIN = {
    "dataset": "digits",
    "epochs": 2,
    "batch_size": 64,
    "width": 0.125,
    "workers": 0,
    "monitor_samples": 128,
    "subset": 640,
}


def train_options(**settings: object) -> list[str]:
    """``TrainConfig`` settings as ``dimcollapse train`` options."""
    return [arg for k, v in settings.items() for arg in ("--" + k.replace("_", "-"), str(v))]


#: A reproduction that takes seconds: 8x8 digits, one epoch, a tiny network, 2 probe epochs.
TINY_REPRODUCE = dict(
    dataset="digits",
    epochs=1,
    subset=128,
    width=0.0625,
    batch_size=64,
    monitor_samples=64,
    probe_epochs=2,
    test_subset=100,
    toy_steps=20,
    image_steps=5,
    seeds=2,
    jobs=1,
    verbose=False,
)
#: The same settings on the command line (hidden options for the knobs).
TINY_REPRODUCE_ARGS = [
    "--dataset",
    "digits",
    "--epochs",
    "1",
    "--subset",
    "128",
    "--width",
    "0.0625",
    "--batch-size",
    "64",
    "--monitor-samples",
    "64",
    "--probe-epochs",
    "2",
    "--test-subset",
    "100",
    "--toy-steps",
    "20",
    "--image-steps",
    "5",
    "--seeds",
    "2",
    "--jobs",
    "1",
    "--quiet",
]


def markdown_images(md: str) -> list[str]:
    """The image paths a report's Markdown references."""
    return re.findall(r"!\[(?:\\.|[^\]\\])*\]\(([^)]+)\)", md)
