"""What a reproduction can be asked: its scales (quick, cpu, full) with their defaults
(:data:`SCALE_DEFAULTS`, the one table that ``reproduce --help`` and the plan read) and
:class:`ReproduceSettings`, the settings asked for (``None``: the scale's value)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from dimcollapse.choices import PAPER_PROJ_OUT
from dimcollapse.config import TrainConfig

SCALES = ("quick", "cpu", "full")

#: Per-scale defaults. ``small_stem`` None: the training default (on for images of at most
#: ``data.augment.SMALL_IMAGE_MAX`` px); ``stem`` (``backbones.STEMS``) overrides it: the CPU
#: scales use the "half" stem (layer4 sees a 2x2 map at 28 px, r averages 4 positions), the
#: full scale what ``small_stem`` selects (the CIFAR stem at 28 or 32 px: a 4x4 layer4).
#: ``subset`` is the number of *pretraining* images (None: every training image, unlabelled);
#: probes follow :mod:`dimcollapse.probe.protocol`: a fixed class-balanced labelled subset of
#: ``labelled_per_class`` images per class, weight decay chosen on ``val_per_class``
#: validation images per class carved from the training images, and (``all_labels_row``) a
#: second row trained on every training label but the validation split. ``channels_last``
#: None: the training default (on for a GPU); the cpu scale turns it on for the CPU too (3
#: seeds on validation: no change beyond the seed noise, 1.2-1.3x faster). The choices and
#: what they cost: docs/experiments/fashion-mnist-collapse.md. ``proj_out`` 128 at both CPU
#: scales: Fig. 2 is judged on the paper's z of 128 (issue 23), as wide as r here (width 0.25
#: gives r 128). ``image_steps``: SGD steps of each linear encoder of sections 4-5 on real
#: images (:mod:`dimcollapse.reproduce.images`). The quick scale trains 4 seeds (a t-interval
#: from 4 seeds is about 0.64x as wide as from 3; 5 seeds took 9 minutes of reproduction from
#: a fresh clone with the image lab, too near the demo's 10).
_TRAINING = TrainConfig()
_TRAINING_SETTINGS = (
    "dataset", "backbone", "epochs", "subset", "width", "small_stem", "stem", "batch_size",
    "monitor_samples", "channels_last",
)  # fmt: skip

SCALE_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": {
        "dataset": "fashion-mnist",
        "backbone": "resnet18",
        "epochs": 2,
        "subset": 4000,
        "width": 0.25,
        "small_stem": False,
        "stem": "half",
        "batch_size": 128,
        "monitor_samples": 1000,
        "probe_epochs": 30,
        "labelled_per_class": 100,
        "val_per_class": 200,
        "all_labels_row": False,
        "test_subset": None,
        "toy_steps": 4000,
        "image_steps": 400,
        "d0_sweep": False,
        "seeds": 4,
        "proj_out": 128,
        "channels_last": None,
    },
    "cpu": {
        "dataset": "fashion-mnist",
        "backbone": "resnet18",
        "epochs": 3,
        "subset": None,
        "width": 0.25,
        "small_stem": False,
        "stem": "half",
        "batch_size": 256,
        "monitor_samples": 1000,
        "probe_epochs": 100,
        "labelled_per_class": 100,
        "val_per_class": 500,
        "all_labels_row": True,
        "test_subset": None,
        "toy_steps": None,
        "image_steps": 2000,
        "d0_sweep": False,
        "seeds": 3,
        "proj_out": 128,
        "channels_last": True,
    },
    "full": {
        # the training settings are TrainConfig's own defaults; the embedding is the paper's
        **{name: getattr(_TRAINING, name) for name in _TRAINING_SETTINGS},
        "probe_epochs": 100,
        "labelled_per_class": 100,
        "val_per_class": 500,
        "all_labels_row": True,
        "test_subset": None,
        "toy_steps": None,
        "image_steps": 3000,
        "d0_sweep": True,
        "seeds": 3,
        "proj_out": PAPER_PROJ_OUT,
    },
}


def scale_values(name: str) -> str:
    """The scales' defaults of one setting, for help texts: ``"2 quick / 2 cpu / 100 full"``
    (``None`` written as ``all`` for ``subset``, ``auto`` otherwise)."""
    words = []
    for scale in SCALES:
        value = SCALE_DEFAULTS[scale][name]
        text = ("all" if name == "subset" else "auto") if value is None else f"{value:g}"
        words.append(f"{text} {scale}")
    return " / ".join(words)


def shared_default(name: str) -> Any:
    """The default of a setting that every scale shares (the dataset)."""
    (value,) = {SCALE_DEFAULTS[scale][name] for scale in SCALES}
    return value


@dataclass
class ReproduceSettings:
    """What ``dimcollapse reproduce`` was asked to do.

    The first fields are the command-line options; ``None`` means the scale's default
    (:data:`SCALE_DEFAULTS`). The rest are knobs for tests and experiments (no command-line
    option, except ``jobs``): they shrink or reshape the work without changing its kind.
    """

    out: str
    scale: str = "quick"
    dataset: str | None = None
    data_root: str | None = None
    epochs: int | None = None
    subset: int | None = None
    width: float | None = None
    device: str = "auto"
    seed: int = 0
    #: how many seeds per method: seed, seed + 1, ... (None: the scale's default)
    seeds: int | None = None
    # knobs (Python API; the command line has hidden options for some)
    batch_size: int | None = None
    monitor_samples: int | None = None
    probe_epochs: int | None = None
    test_subset: int | None = None
    toy_steps: int | None = None
    #: SGD steps of the linear encoders on real images (0: not run; None: the scale's)
    image_steps: int | None = None
    d0_sweep: bool | None = None
    #: also train the methods of the "extra" group (VICReg, Barlow Twins), beyond the paper
    extras: bool = False
    #: parallel worker processes for the stages (default: by device and CPU count)
    jobs: int | None = None
    verbose: bool = True
    #: the command line to print in the report (default: rebuilt from these settings)
    command: str | None = None

    def command_line(self) -> str:
        """The ``dimcollapse reproduce`` command that asks for these settings."""
        if self.command:
            return self.command
        parts = ["dimcollapse", "reproduce", "--scale", self.scale]
        for name in ("dataset", "data_root", "epochs", "subset", "width"):
            value = getattr(self, name)
            if value is not None:
                parts += ["--" + name.replace("_", "-"), str(value)]
        if self.device != "auto":
            parts += ["--device", self.device]
        if self.seed != 0:
            parts += ["--seed", str(self.seed)]
        if self.seeds is not None:
            parts += ["--seeds", str(self.seeds)]
        knobs = ("batch_size", "monitor_samples", "probe_epochs", "test_subset", "toy_steps")
        for name in (*knobs, "image_steps"):
            value = getattr(self, name)
            if value is not None:
                parts += ["--" + name.replace("_", "-"), str(value)]
        if self.d0_sweep is not None:
            parts += ["--d0-sweep", "on" if self.d0_sweep else "off"]
        if self.extras:
            parts.append("--extras")
        parts += ["--out", str(self.out)]
        return shlex.join(parts)
