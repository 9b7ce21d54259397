"""Training configuration: the dataclass below is the one source of defaults.

``dimcollapse train``'s options are generated from its fields (:mod:`dimcollapse.commands.train`),
``--config FILE.yaml`` loads the same field names, and command-line options override the file.
Defaults follow the paper's code where the paper is specific (temperature 0.1, LARS with eta
0.001 and weight decay 1e-6, base learning rate 4.8 at batch 4096 = 0.3 per 256 images under the
linear scaling rule, 10 warm-up epochs of 100, cosine to 0.001 x lr, d0 = 360 of 2048). Two
departures, for the built-in Fashion-MNIST default: ResNet-18 with the small-image stem instead
of ResNet-50, and a global batch of 512 instead of 4096 (``--backbone resnet50 --batch-size
4096`` restores the paper's).

Augmentation parameters live in :class:`dimcollapse.data.augment.AugmentConfig`; ``augment``
here holds overrides of its fields (``--aug-FIELD`` on the command line), everything else comes
from ``AugmentConfig.for_dataset`` for the dataset's image size.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dimcollapse.data.augment_config import AUG_RECIPES, MAX_STRENGTH, AugmentConfig
from dimcollapse.errors import UsageError
from dimcollapse.methods import RECIPES
from dimcollapse.options import seed_problem
from dimcollapse.rundir import RunLayout

#: The values of TrainConfig's fields with a fixed set of choices, checked by ``validate``
#: (``optimizer`` and ``lr_scaling`` are built and applied by :mod:`dimcollapse.optim`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DATA_PATHS = ("auto", "device", "workers")
OPTIMIZERS = ("lars", "sgd", "adamw")
LR_SCALING_RULES = ("linear", "sqrt")


def _setting(default: Any, help: str, **kw: Any) -> Any:
    """A field with its ``--help`` text; ``{name}`` in it is filled in when shown
    (:func:`dimcollapse.commands.train._help_facts`)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Every setting of a pretraining run (``dimcollapse train``)."""

    # what to train
    method: str = _setting("directclr", "{methods}")
    backbone: str = _setting("resnet18", "resnet18 | resnet34 | resnet50 (torchvision)")
    width: float = _setting(
        1.0, "channel width multiplier of the backbone (0.25 for CPU-sized runs)"
    )
    small_stem: bool | None = _setting(
        None,
        "3x3 stride-1 stem without max-pool; "
        "default: on for images of {small_image_max} px or less",
    )
    stem: str | None = _setting(
        None,
        "imagenet (7x7 stride 2 + max-pool) | cifar (3x3 stride 1) | half (3x3 stride 2, no "
        "max-pool); overrides --small-stem; default: what --small-stem selects",
    )
    d0: int | None = _setting(
        None,
        "DirectCLR/fixed-lowrank sub-vector size; default: 360 for a "
        "2048-d representation, round(360/2048*rep_dim) otherwise",
    )
    proj_hidden: int | None = _setting(None, "simclr-mlp hidden size; default: scaled from 2048")
    proj_out: int | None = _setting(
        None, "simclr-mlp/-linear output size; default: scaled from 128"
    )
    diagonal_init: str = _setting(
        "ones",
        "diagonal: ones (identity) | random (the singular values of a random linear projector)",
    )
    # data
    dataset: str = _setting("fashion-mnist", "{datasets}")
    data_root: str | None = _setting(None, "dataset directory (or .npz file); {default_dirs}")
    test_file: str | None = _setting(None, "npz only: the held-out .npz file")
    download: bool = _setting(False, "download the dataset with torchvision if it is missing")
    subset: int | None = _setting(None, "train on a random subset of this many images")
    data_path: str = _setting(
        "auto", "auto | device (augment on the GPU) | workers (CPU DataLoader)"
    )
    workers: int = _setting(2, "DataLoader worker processes for the workers path")
    augment: dict = _setting({}, "augmentation overrides: AugmentConfig field -> value")
    aug_recipe: str = _setting(
        "auto",
        "auto (the dataset size's recipe: no blur or solarize at <= 64 px) | paper (the "
        "paper's whole recipe, blur sigma scaled to the image)",
    )
    aug_strength: float = _setting(
        1.0, "scale the augmentation: 0 none, 1 the recipe, up to 2 (AugmentConfig.scaled)"
    )
    # optimisation
    epochs: int = _setting(100, "training epochs")
    batch_size: int = _setting(512, "global batch size (split over processes)")
    optimizer: str = _setting("lars", "lars | sgd | adamw")
    base_lr: float = _setting(0.3, "learning rate per 256 images (paper: 4.8 at batch 4096)")
    lr_scaling: str = _setting("linear", "linear (lr = base_lr * batch / 256) | sqrt")
    weight_decay: float = _setting(1e-6, "weight decay (not on biases and BN parameters)")
    momentum: float = _setting(0.9, "momentum of LARS/SGD")
    lars_eta: float = _setting(0.001, "LARS trust coefficient")
    warmup_epochs: float = _setting(10.0, "linear warm-up epochs (clipped to a tenth of the run)")
    final_lr_ratio: float = _setting(0.001, "cosine decay ends at this fraction of the peak lr")
    # loss: InfoNCE's options under their old names (dimcollapse.methods.INFO_NCE_OPTIONS)
    temperature: float = _setting(0.1, "InfoNCE temperature")
    loss: str = _setting(
        "symmetric",
        "symmetric (the paper code's cross-view InfoNCE) | ntxent (SimCLR, 2N-2 negatives)",
    )
    method_options: dict = _setting(
        {},
        "the method's loss options by name (its recipe's, dimcollapse.methods; typed as "
        "--method-option NAME=VALUE), "
        "e.g. {sim_coeff: 25} for vicreg",
    )
    # monitoring
    monitor_samples: int = _setting(
        2048,
        "held-out images whose spectra and online-probe accuracy are measured each epoch (0: off)",
    )
    online_probe: bool = _setting(True, "train a linear classifier on the detached representation")
    online_probe_lr: float = _setting(
        0.1,
        "online probe learning rate (SGD momentum, no LARS trust ratio, same schedule); the "
        "paper's code adapts it with LARS like the backbone, which learns far slower in short "
        "runs; it never affects the backbone",
    )
    log_every: int = _setting(20, "print a progress line every N steps when not on a terminal")
    checkpoint_every: str = _setting(
        "10m",
        "also save {last_checkpoint} inside an epoch every N steps ('500') or minutes "
        "('10m'), bounding what a kill can cost; 0: only at epoch ends",
    )
    max_bad_steps: int = _setting(
        0,
        "skip up to N steps whose loss or gradient is not finite (fp16: the GradScaler's "
        "overflow skips are not counted unless the loss itself is not finite) before "
        "stopping; 0: stop at the first",
    )
    # execution
    device: str = _setting("auto", "auto | cpu | cuda | cuda:N")
    precision: str = _setting("auto", "auto (bf16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16")
    channels_last: bool | None = _setting(None, "channels_last memory format; default: on for GPU")
    compile: bool = _setting(False, "torch.compile the backbone")
    sync_bn: bool | None = _setting(
        None,
        "SyncBatchNorm under torchrun; default: on with CUDA (as the paper's code), off with gloo",
    )
    seed: int = _setting(0, "random seed (data order, augmentation, initialisation)")
    deterministic: bool = _setting(
        False, "use deterministic algorithms (slower; for exact resume tests)"
    )
    out: str | None = _setting(None, "run directory; default: runs/METHOD")
    resume: bool = _setting(False, "continue the run in --out from {last_checkpoint}")

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = f"runs/{self.method}"

    def validate(self) -> None:
        """Raise :class:`UsageError` for impossible settings (names checked by the factories)."""
        # torch-free --help: torchvision 1240 ms (backbones), torch 1440 ms (the other two)
        from dimcollapse.backbones import BACKBONES, STEMS
        from dimcollapse.data.datasets import DATASETS
        from dimcollapse.projectors import DIAGONAL_INITS

        for name, value, allowed in (
            ("method", self.method, tuple(RECIPES)),
            ("backbone", self.backbone, BACKBONES),
            ("dataset", self.dataset, DATASETS),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("precision", self.precision, PRECISIONS),
            ("data_path", self.data_path, DATA_PATHS),
            ("lr_scaling", self.lr_scaling, LR_SCALING_RULES),
            ("diagonal_init", self.diagonal_init, DIAGONAL_INITS),
            ("stem", self.stem, (None, *STEMS)),
        ):
            if value not in allowed:
                raise UsageError(
                    f"unknown {name} {value!r}; "
                    f"choose from {', '.join(str(a) for a in allowed if a is not None)}"
                )
        try:  # the method's loss options: its recipe's checks (temperature, loss, ...)
            RECIPES[self.method].resolve_options(self.to_dict(), self.method_options)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        checks = [
            (
                self.aug_recipe in AUG_RECIPES,
                f"aug recipe must be auto or paper, got {self.aug_recipe!r}",
            ),
            (
                0.0 <= self.aug_strength <= MAX_STRENGTH,
                f"aug strength must be in [0, {MAX_STRENGTH:g}], got {self.aug_strength}",
            ),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch size must be at least 2, got {self.batch_size}"),
            (self.width > 0, f"width must be positive, got {self.width}"),
            (self.base_lr > 0, f"base lr must be positive, got {self.base_lr}"),
            (self.online_probe_lr > 0, "online probe lr must be positive"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.warmup_epochs >= 0, f"warm-up epochs must be >= 0, got {self.warmup_epochs}"),
            (0 < self.final_lr_ratio <= 1, "final lr ratio must be in (0, 1]"),
            (self.workers >= 0, f"workers must be >= 0, got {self.workers}"),
            (self.monitor_samples >= 0, "monitor samples must be >= 0"),
            (self.log_every >= 1, "log-every must be at least 1"),
            (self.max_bad_steps >= 0, f"max-bad-steps must be >= 0, got {self.max_bad_steps}"),
            (self.d0 is None or self.d0 >= 1, f"d0 must be at least 1, got {self.d0}"),
            (self.subset is None or self.subset >= 2, "subset must be at least 2 images"),
            (seed_problem(self.seed) is None, f"seed {seed_problem(self.seed)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        self._check_finite()
        self.checkpoint_interval  # noqa: B018 - parsed (and checked) here, once
        known = {f.name for f in dataclasses.fields(AugmentConfig)}
        unknown = sorted(set(self.augment) - known)
        if unknown:
            raise UsageError(
                f"unknown augmentation setting(s) {', '.join(unknown)}; "
                f"choose from {', '.join(sorted(known))}"
            )

    def _check_finite(self) -> None:
        """inf or NaN passes the sign checks above but trains nothing (NaN at step 2)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                name = f.name.replace("_", " ")
                raise UsageError(f"{name} must be a finite number, got {value}")

    @functools.cached_property
    def checkpoint_interval(self) -> tuple[int, float]:
        """``checkpoint_every`` as ``(steps, seconds)`` (:func:`parse_checkpoint_every`),
        parsed once; a UsageError when it reads as neither."""
        return parse_checkpoint_every(self.checkpoint_every)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def check_settings(cls, data: Any, source: str | None = None) -> None:
        """Refuse a mapping of settings with a key that is no field or a value of the wrong
        type (every one, including those a later layer overrides); ``source``: the file or
        checkpoint they come from, named first in the message."""
        where = f"{source}: " if source else ""
        if not isinstance(data, dict):
            raise UsageError(f"{where}expected a mapping of settings, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(data) - names)
        if unknown:
            raise UsageError(f"{where}unknown training setting(s): {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            try:
                _check_type(name, value, hints[name])
            except UsageError as exc:
                raise UsageError(f"{where}{exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> TrainConfig:
        """Build from a dict of field values, refusing unknown keys and wrong types
        (:meth:`check_settings`)."""
        cls.check_settings(data, source)
        return cls(**data)


def parse_checkpoint_every(text: str | int) -> tuple[int, float]:
    """``--checkpoint-every`` as ``(steps, seconds)``, one of them 0: ``"500"`` -> (500, 0),
    ``"10m"``/``"10min"`` -> (0, 600), ``"90s"`` -> (0, 90), ``"0"`` -> (0, 0) (epoch ends only)."""
    raw = str(text).strip().lower()
    units = (("min", 60.0), ("m", 60.0), ("s", 1.0), ("h", 3600.0))
    try:
        for suffix, scale in units:
            if raw.endswith(suffix):
                seconds = float(raw[: -len(suffix)]) * scale
                if not seconds >= 0 or seconds == float("inf"):
                    raise ValueError
                return 0, seconds
        steps = int(raw)
        if steps < 0:
            raise ValueError
        return steps, 0.0
    except ValueError:
        raise UsageError(
            f"checkpoint-every must be a number of steps (500) or of minutes (10m), got {text!r}"
        ) from None


# ---- command-line and YAML plumbing ----------------------------------------------------------


def base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of an annotation."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _check_type(name: str, value: Any, annotation: Any) -> None:
    """One-line error for a setting of the wrong type (e.g. ``epochs: "lots"`` in a YAML file).

    An int is accepted for a float setting; a bool is not accepted for a number."""
    tp, optional = base_type(annotation)
    if value is None:
        if optional:
            return
        ok = False
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is dict:
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        want = {
            int: "an integer",
            float: "a number",
            bool: "true or false",
            str: "a string",
            dict: "a mapping (field: value)",
        }
        expected = want.get(tp, getattr(tp, "__name__", str(tp)))
        if optional:
            expected += " or null"
        raise UsageError(
            f"setting {name}: expected {expected}, got {value!r} ({type(value).__name__})"
        )


@functools.cache
def yaml_loader() -> type:
    """PyYAML's safe loader, reading numbers as YAML 1.2 does.

    PyYAML follows YAML 1.1, whose floats need a dot: ``5e-3`` and ``1e4`` would be strings,
    and ``base_lr: 5e-3`` refused as "expected a number". This loader also reads a number with
    an exponent and no dot as a float; everything else reads as ``yaml.safe_load`` reads it."""
    import yaml  # lean --help: yaml 30 ms

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return Loader


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of TrainConfig fields, with one-line errors."""
    import yaml  # lean --help: yaml 30 ms

    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, not a YAML config file")
    if not p.is_file():
        raise UsageError(f"{p}: no such config file")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=yaml_loader()) or {}
    except UnicodeDecodeError:
        raise UsageError(f"{p}: not a YAML text file (binary content)") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{p}: expected a mapping of settings, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def yaml_scalar(text: str) -> Any:
    """``text`` read as a value of a YAML file reads (``25`` an int, ``5e-3`` a float, ``ntxent``
    a string); text that is not valid YAML stays text."""
    import yaml  # lean --help: yaml 30 ms

    try:
        return yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError:
        return text


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The settings of ``dimcollapse train``: :func:`layered_config`'s configuration."""
    return layered_config(args)[0]


def layered_config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The training settings in layers, each file read once: the defaults, then (on
    ``--resume`` into ``--out``) the run's saved settings, then ``--config``'s YAML, then the
    options typed on the command line; a setting named nowhere keeps the run's value, not the
    default. ``resume`` and ``out`` count wherever they are set, typed or in the YAML file.
    Returns the checked configuration and the run's saved settings (the ``config`` mapping of
    its config.yaml; ``{}`` when it has none, None when not resuming into a named ``out``),
    which the resume check compares the augmentation with."""
    given: dict[str, Any] = load_yaml(args.config) if getattr(args, "config", None) else {}
    # every value of the file is checked, also those an option typed here overrides
    TrainConfig.check_settings(given, getattr(args, "config", None))
    saved: dict[str, Any] | None = None
    base: dict[str, Any] = {}
    resume, out = _resume_target(args, given)
    if resume:
        saved, base = _saved_settings(out)
    given_augment = given.get("augment") or {}
    if not isinstance(given_augment, dict):
        raise UsageError(
            f"{args.config}: setting augment: expected a mapping of augmentation settings "
            f"(field: value), got {given_augment!r} ({type(given_augment).__name__})"
        )
    typed = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name not in ("augment", "method_options") and getattr(args, f.name, None) is not None
    }
    typed_augment = {
        key[4:]: list(value) if isinstance(value, list) else value
        for key, value in vars(args).items()
        if key.startswith("aug_") and value is not None
    }
    # the run's resolved recipe fills in what neither the file nor the options name
    saved_augment = {
        key: list(value) if isinstance(value, list) else value
        for key, value in ((saved or {}).get("augment") or {}).items()
        if key not in given_augment and key not in typed_augment
    }
    data = {**base, **given, **typed}
    data["method_options"] = _layered_method_options(data, typed, args)
    data["augment"] = {**given_augment, **typed_augment, **saved_augment}
    cfg = TrainConfig.from_dict(data)
    cfg.validate()
    return cfg, saved


def _layered_method_options(
    data: dict[str, Any], typed: dict[str, Any], args: argparse.Namespace
) -> Any:
    """The loss options after the layers: ``--method-option NAME=VALUE`` over the same name in
    the file's (or run's) ``method_options``; a typed field that carries an option
    (``--temperature``, ``--loss``) over that option's name there, as every typed option beats
    the file. The same option typed both ways is refused, never one of them ignored."""
    options = data.get("method_options") or {}
    if not isinstance(options, dict):
        return options  # TrainConfig's check says what is wrong
    typed_options = dict(getattr(args, "method_options", None) or ())
    recipe = RECIPES.get(data.get("method", TrainConfig.method))
    for option in recipe.options if recipe else ():
        if option.field not in typed:
            continue
        if option.name in typed_options:
            flag = "--" + option.field.replace("_", "-")
            raise UsageError(
                f"{option.name} given twice: {flag} {typed[option.field]} and --method-option "
                f"{option.name}={typed_options[option.name]}; give one"
            )
        if option.name in options:  # the name keeps the typed value: one value, said twice
            options = {**options, option.name: typed[option.field]}
    return {**options, **typed_options}


def _resume_target(args: argparse.Namespace, given: dict[str, Any]) -> tuple[bool, str]:
    """(whether to resume, the run directory): the typed ``--resume``/``--out`` over the YAML
    file's ``resume``/``out``; no resume without a named directory."""
    typed_resume, typed_out = getattr(args, "resume", None), getattr(args, "out", None)
    resume = given.get("resume") if typed_resume is None else typed_resume
    out = given.get("out") if typed_out is None else typed_out
    return resume is True and isinstance(out, str) and bool(out), str(out)


def _saved_settings(out: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A run's saved settings (config.yaml's ``config``; ``{}`` without the file) and every
    field they give, checked, defaults filled in for those an older run lacks."""
    path = RunLayout(out).config
    if not path.is_file():
        return {}, {}
    saved = load_yaml(path).get("config", {})
    if not isinstance(saved, dict):
        raise UsageError(f"{path}: its config is a {type(saved).__name__}, not a mapping")
    base = TrainConfig.from_dict(dict(saved), str(path)).to_dict()
    base.pop("augment")
    return saved, base
