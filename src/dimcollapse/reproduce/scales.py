"""What a reproduction can be asked: :class:`ReproduceSettings`, the settings asked for
(``None``: the scale's value), and the scales' defaults as help texts. The scales and their
defaults are declared once, with every other setting, in :mod:`dimcollapse.manifest.settings`
(:data:`~dimcollapse.manifest.settings.SCALE_DEFAULTS`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from dimcollapse.manifest.settings import ASKED, SCALE_DEFAULTS, SCALES

__all__ = ["SCALES", "SCALE_DEFAULTS", "ReproduceSettings", "scale_values", "shared_default"]


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
    (:data:`SCALE_DEFAULTS`). The rest are knobs for tests and experiments (hidden options,
    except ``jobs`` and ``extras``): they shrink or reshape the work without changing its kind.
    The settings a reproduction can be asked for are those of
    :data:`~dimcollapse.manifest.settings.ASKED` (a test holds these fields to it); the others
    say how it runs.
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
        for name in ASKED:
            value = getattr(self, name)
            if value is None or (name == "seed" and value == 0):
                continue
            if isinstance(value, bool):
                value = "on" if value else "off"
            parts += ["--" + name.replace("_", "-"), str(value)]
        if self.device != "auto":
            parts += ["--device", self.device]
        if self.extras:
            parts.append("--extras")
        parts += ["--out", str(self.out)]
        return shlex.join(parts)
