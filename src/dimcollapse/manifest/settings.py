"""A reproduction's settings, declared once (:data:`SETTINGS`).

Each :class:`Setting` says, in one line of one table, everything the code needs to know of it:
its defaults at each scale, whether ``reproduce`` can be asked for it, whether it is recorded
(the reuse key: ``reproduce.json``'s ``settings``), since which format it is, and which stage
keys and training configurations it enters. From the table come:

- :data:`SCALE_DEFAULTS`, the scales' defaults (``reproduce --help`` and the plan read it);
- :class:`Plan`, the resolved settings, a dataclass whose fields are the recorded settings in
  the table's order (its :meth:`Plan.key` is what ``reproduce.json`` records);
- :class:`Settings`, the recorded settings as read back from a file, by name: a setting of the
  first format version is required (a missing one raises KeyError, as a broken file should),
  a newer one reads as its absent value (None, an empty list or mapping, or ``[seed]`` for the
  seeds) in files written before it existed;
- :data:`TRAIN_SETTINGS` and :data:`BASELINES_KEY`, the settings that a pretraining run's
  :class:`~dimcollapse.config.TrainConfig` copies and that a seed's baselines depend on.

Adding a setting is one :class:`Setting` here and the code that uses it. Torch-free: the
parser of ``reproduce --help`` reads the scale table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dimcollapse.choices import PAPER_PROJ_OUT
from dimcollapse.config import TrainConfig

SCALES = ("quick", "cpu", "full")

#: A scale's default that is TrainConfig's own default of the same name (the full scale).
TRAINING_DEFAULT = "<TrainConfig's default>"
#: Plan's default of a setting that has none (every resolved plan sets it).
REQUIRED = "<required>"


def _first_seed(recorded: Mapping[str, Any]) -> list[int]:
    return [recorded["seed"]]


@dataclass(frozen=True)
class Setting:
    """One setting of a reproduction.

    name: the field's name everywhere (ReproduceSettings, Plan, reproduce.json, TrainConfig);
    type: its annotation in :class:`Plan`; scales: its defaults at quick, cpu and full (None:
    no scale default; :data:`TRAINING_DEFAULT`: TrainConfig's); asked: ``reproduce`` can be
    asked for it (a :class:`~dimcollapse.reproduce.scales.ReproduceSettings` field, None there
    meaning the scale's value); recorded: a :class:`Plan` field; first: recorded since the
    first format version (required when read back); default: Plan's default (:data:`REQUIRED`:
    none); absent: what a file without it reads as (a function of the recorded mapping; default:
    None, or an empty copy of a list or dict default); train: copied into each run's
    TrainConfig; baselines: part of the baselines stage's reuse key.
    """

    name: str
    type: str
    scales: tuple[Any, Any, Any] | None = None
    asked: bool = False
    recorded: bool = True
    first: bool = False
    default: Any = REQUIRED
    absent: Callable[[Mapping[str, Any]], Any] | None = None
    train: bool = False
    baselines: bool = False

    def scale_default(self, scale: str) -> Any:
        """The default at ``scale`` (TrainConfig's where the table says so)."""
        assert self.scales is not None, f"{self.name} has no scale default"
        value = self.scales[SCALES.index(scale)]
        return getattr(_TRAINING, self.name) if value == TRAINING_DEFAULT else value

    def read(self, recorded: Mapping[str, Any]) -> Any:
        """The setting as a ``reproduce.json`` records it (see the module docstring)."""
        if self.first:
            return recorded[self.name]
        value = recorded.get(self.name)
        if value is None and self.absent is not None:
            return self.absent(recorded)
        if value is None and isinstance(self.default, (list, dict)):
            return type(self.default)()
        return type(value)(value) if isinstance(value, (list, dict)) else value


_TRAINING = TrainConfig()
_T = TRAINING_DEFAULT

#: Every setting of a reproduction, the recorded ones in ``reproduce.json``'s order. The
#: choices and what they cost: ``docs/experiments/fashion-mnist-collapse.md``; what each scale
#: is: :mod:`dimcollapse.reproduce`. ``small_stem`` None: the training default (on for images
#: of at most ``data.augment.SMALL_IMAGE_MAX`` px); ``stem`` (``backbones.STEMS``) overrides
#: it: the CPU scales use the "half" stem (layer4 sees a 2x2 map at 28 px), the full scale
#: what ``small_stem`` selects. ``subset`` is the number of *pretraining* images (None: every
#: training image). The probes follow :mod:`dimcollapse.probe.protocol`: ``labelled_per_class``
#: labelled images per class, weight decay chosen on ``val_per_class`` validation images per
#: class, and (``all_labels_row``) a second row trained on every label but the validation
#: split. ``channels_last`` None: the training default (on for a GPU); the cpu scale turns it
#: on (3 seeds on validation: no change beyond the seed noise, 1.2-1.3x faster). ``proj_out``
#: 128 at the CPU scales: Fig. 2 is judged on the paper's z of 128 (issue 23), as wide as r
#: there. ``image_steps``: SGD steps of each linear encoder of sections 4-5 on real images. The
#: quick scale trains 4 seeds (a t-interval from 4 seeds is about 0.64x as wide as from 3; 5
#: seeds took 9 minutes of reproduction from a fresh clone, too near the demo's 10).
SETTINGS: tuple[Setting, ...] = (
    Setting("scale", "str", first=True),
    Setting("dataset", "str", ("fashion-mnist", "fashion-mnist", _T), asked=True, first=True,
            train=True, baselines=True),
    Setting("data_root", "str | None", asked=True, train=True, baselines=True),
    Setting("backbone", "str", ("resnet18", "resnet18", _T), first=True, train=True,
            baselines=True),
    Setting("epochs", "int", (2, 3, _T), asked=True, first=True, train=True),
    Setting("subset", "int | None", (4000, None, _T), asked=True, train=True, baselines=True),
    Setting("width", "float", (0.25, 0.25, _T), asked=True, first=True, train=True,
            baselines=True),
    Setting("small_stem", "bool | None", (False, False, _T), train=True, baselines=True),
    Setting("batch_size", "int", (128, 256, _T), asked=True, first=True, train=True),
    Setting("monitor_samples", "int", (1000, 1000, _T), asked=True, train=True),
    Setting("probe_epochs", "int", (30, 100, 100), asked=True, first=True, baselines=True),
    Setting("test_subset", "int | None", (None, None, None), asked=True, baselines=True),
    Setting("toy_steps", "int | None", (4000, None, None), asked=True),
    Setting("seed", "int", asked=True, first=True, baselines=True),
    Setting("rep_dim", "int", first=True),
    Setting("default_d0", "int"),
    Setting("d0_values", "list[int]", default=[]),
    #: asked and at each scale as a count; recorded as the list of seeds
    Setting("seeds", "list[int]", (4, 3, 3), asked=True, default=[], absent=_first_seed),
    #: the paper's z: the output size of its methods' heads that take one (SimCLR's MLP and
    #: linear projectors); a method beyond the paper keeps its own paper's head
    Setting("proj_out", "int | None", (128, 128, PAPER_PROJ_OUT), default=None),
    Setting("stem", "str | None", ("half", "half", _T), default=None, train=True,
            baselines=True),
    Setting("labelled_per_class", "int", (100, 100, 100), default=100, baselines=True),
    Setting("val_per_class", "int", (200, 500, 500), default=500, baselines=True),
    Setting("all_labels_row", "bool", (False, True, True), default=True, baselines=True),
    #: labelled images of the main probe row, and validation images (per class x classes)
    Setting("probe_labels", "int | None", default=None),
    Setting("val_size", "int | None", default=None),
    #: the side (px) of the map after each stage, from the input to layer4
    Setting("feature_maps", "dict[str, int]", default={}),
    Setting("channels_last", "bool | None", (None, True, _T), default=None, train=True),
    #: SGD steps of each linear encoder of sections 4-5 on real images (None: not run)
    Setting("image_steps", "int | None", (400, 2000, 3000), asked=True, default=None),
    #: the d0 sweep (asked as on/off; recorded as ``d0_values``)
    Setting("d0_sweep", "bool", (False, False, True), asked=True, recorded=False),
)  # fmt: skip

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

#: The d0 sweep (``d0_sweep`` on: the full scale): DirectCLR's d0 at rep_dim divided by these.
D0_DIVISORS: tuple[int, ...] = (32, 16, 8, 4, 2)

#: Per-scale defaults: ``SCALE_DEFAULTS[scale][name]``.
SCALE_DEFAULTS: dict[str, dict[str, Any]] = {
    scale: {s.name: s.scale_default(scale) for s in SETTINGS if s.scales is not None}
    for scale in SCALES
}
#: The settings ``reproduce`` can be asked for (None: the scale's value where it has one).
ASKED: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.asked)
#: The recorded settings each pretraining run's TrainConfig copies under the same name.
TRAIN_SETTINGS: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.train)
#: The recorded settings a seed's baselines depend on (their reuse key, with that seed).
BASELINES_KEY: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.baselines)


def _plan_field(setting: Setting) -> tuple[str, str, Any]:
    if setting.default == REQUIRED:
        return setting.name, setting.type, field()
    if isinstance(setting.default, (list, dict)):
        return setting.name, setting.type, field(default_factory=type(setting.default))
    return setting.name, setting.type, field(default=setting.default)


def _plan_post_init(self: Any) -> None:
    if not self.seeds:
        self.seeds = [self.seed]


def _plan_key(self: Any) -> dict[str, Any]:
    """The recorded settings, in order: what ``reproduce.json`` writes and reuse compares."""
    return dataclasses.asdict(self)


#: The resolved settings: everything that determines the results (the reuse key). A
#: dataclass generated from :data:`SETTINGS` (its recorded settings, in order); built by
#: :func:`dimcollapse.reproduce.plan.resolve_plan`.
Plan = dataclasses.make_dataclass(
    "Plan",
    [_plan_field(s) for s in SETTINGS if s.recorded],
    namespace={
        "__doc__": "The resolved settings of a reproduction (fields: the recorded SETTINGS).",
        "__post_init__": _plan_post_init,
        "key": _plan_key,
    },
)
Plan.__module__ = __name__  # make_dataclass's own ``module=`` needs Python 3.12 (pickling)


@dataclass(frozen=True)
class Settings:
    """The settings a reproduction ran with (``Plan.key()``), by name; ``recorded`` is the
    mapping as written, kept as it is so that comparing it with a plan and writing it back stay
    exact. Every recorded setting of :data:`SETTINGS` reads as an attribute
    (:meth:`Setting.read`)."""

    recorded: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        # only called for names the instance lacks; never for "recorded" once it is set
        setting = None if name == "recorded" else BY_NAME.get(name)
        if setting is None or not setting.recorded:
            raise AttributeError(f"{type(self).__name__} has no setting {name!r}")
        return setting.read(self.recorded)
