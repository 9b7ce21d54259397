"""What a reproduction runs: the resolved settings (:func:`resolve_plan` builds the
:class:`~dimcollapse.manifest.settings.Plan`, the reuse key: the asked settings with the
scale's defaults, fitted to the dataset) and the pretraining runs, seed by seed, each with its
training configuration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dimcollapse import backbones
from dimcollapse.config import TrainConfig
from dimcollapse.data.augment import use_small_stem
from dimcollapse.data.datasets import DATASETS, load_dataset
from dimcollapse.errors import UsageError
from dimcollapse.manifest import ReproduceLayout
from dimcollapse.manifest.settings import D0_DIVISORS, SCALE_DEFAULTS, SCALES, TRAIN_SETTINGS, Plan
from dimcollapse.methods import D0_SWEEP_GROUP, PLANNED_GROUPS, RECIPES, methods_in_group
from dimcollapse.options import seed_problem
from dimcollapse.projectors import default_d0
from dimcollapse.reproduce.scales import ReproduceSettings

#: TrainConfig fields that say how, not what: they may differ between a run and its reuse.
EXECUTION_FIELDS = ("out", "resume", "device", "workers", "data_path", "log_every")


@dataclass
class RunPlan:
    """One pretraining run of the reproduction."""

    name: str
    method: str
    group: str  # a group of dimcollapse.methods.GROUPS, or D0_SWEEP_GROUP
    d0: int | None = None
    seed: int = 0

    @property
    def task_id(self) -> str:
        return f"run:{self.name}:{self.seed}"

    def directory(self, out: Path) -> Path:
        return ReproduceLayout(out).run(self.name, self.seed)


def resolve_plan(settings: ReproduceSettings) -> Plan:
    """Fill in the scale's defaults and check them (loads the dataset once to size it)."""
    defaults = _scale_defaults(settings.scale)
    asked = _asked_values(settings, defaults)
    subset, test_subset, batch_size, image_size, class_sizes = _fit_to_dataset(
        asked["dataset"],
        settings.data_root,
        asked["subset"],
        asked["test_subset"],
        asked["batch_size"],
        settings.subset is not None,
    )
    # the protocol's splits take at most a third of the smallest class each
    smallest_class, num_classes = min(class_sizes), len(class_sizes)
    labelled_per_class = max(1, min(int(defaults["labelled_per_class"]), smallest_class // 3))
    val_per_class = max(1, min(int(defaults["val_per_class"]), smallest_class // 3))
    rep_dim = backbones.rep_dim(defaults["backbone"], asked["width"])
    small = use_small_stem(defaults["small_stem"], image_size)
    stem = backbones.resolve_stem(defaults["stem"], small)
    sweep = settings.d0_sweep if settings.d0_sweep is not None else defaults["d0_sweep"]
    toy_steps = asked["toy_steps"]
    return Plan(
        scale=settings.scale,
        dataset=asked["dataset"],
        data_root=settings.data_root,
        backbone=defaults["backbone"],
        epochs=asked["epochs"],
        subset=subset,
        width=asked["width"],
        small_stem=defaults["small_stem"],
        batch_size=batch_size,
        monitor_samples=asked["monitor_samples"],
        probe_epochs=asked["probe_epochs"],
        test_subset=test_subset,
        toy_steps=None if toy_steps is None else int(toy_steps),
        seed=int(settings.seed),
        rep_dim=rep_dim,
        default_d0=int(default_d0(rep_dim)),
        d0_values=sorted({max(1, rep_dim // k) for k in D0_DIVISORS}) if sweep else [],
        seeds=[int(settings.seed) + i for i in range(asked["seeds"])],
        proj_out=defaults.get("proj_out"),
        stem=stem,
        labelled_per_class=labelled_per_class,
        val_per_class=val_per_class,
        all_labels_row=bool(defaults["all_labels_row"]),
        probe_labels=labelled_per_class * num_classes,
        val_size=val_per_class * num_classes,
        feature_maps=backbones.feature_map_sizes(stem, image_size),
        channels_last=defaults["channels_last"],
        image_steps=int(asked["image_steps"] or 0) or None,
    )


def _scale_defaults(scale: str) -> dict[str, Any]:
    if scale not in SCALES:
        raise UsageError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    return SCALE_DEFAULTS[scale]


def _asked_values(settings: ReproduceSettings, defaults: dict[str, Any]) -> dict[str, Any]:
    """The settings asked for, the scale's defaults in place of those not asked, checked."""

    def pick(name: str) -> Any:
        value = getattr(settings, name)
        return defaults[name] if value is None else value

    dataset = pick("dataset")
    if dataset not in DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    asked = {"dataset": dataset, "width": float(pick("width"))}
    for name in ("epochs", "batch_size", "monitor_samples", "seeds", "probe_epochs"):
        asked[name] = int(pick(name))
    for name in ("subset", "test_subset", "toy_steps", "image_steps"):
        asked[name] = pick(name)
    _check_values(**{k: v for k, v in asked.items() if k != "dataset"})
    _check_seeds(int(settings.seed), asked["seeds"])
    return asked


def _check_seeds(seed: int, seeds: int) -> None:
    """Refuse a seed range that leaves the seeds a run takes, before anything is written
    (``--seed S --seeds K`` trains seeds S .. S + K - 1)."""
    for value in (seed, seed + seeds - 1):
        problem = seed_problem(value)
        if problem:
            what = "seed" if value == seed else f"the last seed (--seed {seed} --seeds {seeds})"
            raise UsageError(f"{what} {problem}")


def _check_values(
    epochs: int,
    subset: int | None,
    width: float,
    batch_size: int,
    probe_epochs: int,
    test_subset: int | None,
    toy_steps: int | None,
    image_steps: int | None,
    monitor_samples: int,
    seeds: int,
) -> None:
    """Refuse sizes no run can have, with the first problem's message."""
    for ok, message in (
        (epochs >= 1, f"epochs must be at least 1, got {epochs}"),
        (subset is None or int(subset) >= 2, f"subset must be at least 2 images, got {subset}"),
        (width > 0, f"width must be positive, got {width}"),
        (batch_size >= 2, f"batch size must be at least 2, got {batch_size}"),
        (probe_epochs >= 1, f"probe epochs must be at least 1, got {probe_epochs}"),
        (test_subset is None or int(test_subset) >= 1, "test subset must be at least 1"),
        (toy_steps is None or int(toy_steps) >= 1, "toy steps must be at least 1"),
        (image_steps is None or int(image_steps) >= 0, "image steps must be at least 0"),
        (monitor_samples >= 0, "monitor samples must be >= 0"),
        (seeds >= 1, f"seeds must be at least 1, got {seeds}"),
    ):
        if not ok:
            raise UsageError(message)


def _fit_to_dataset(
    dataset: str,
    data_root: str | None,
    subset: int | None,
    test_subset: int | None,
    batch_size: int,
    subset_asked: bool = False,
) -> tuple[int | None, int | None, int, int, list[int]]:
    """``(subset, test_subset, batch_size, image_size, training images per class)`` fitted to the dataset's sizes: a subset
    as large as its split is no subset (None), and the batch no larger than the training
    images. A subset the user asked for (``subset_asked``) larger than the split is refused, as
    ``train`` refuses it; a scale's default is fitted."""
    train_set = load_dataset(dataset, "train", root=data_root, can_download=False)
    n_train = len(train_set)
    n_test = len(load_dataset(dataset, "test", root=data_root, can_download=False))
    if subset_asked and subset is not None and int(subset) > n_train:
        raise UsageError(
            f"subset must be between 1 and {n_train} (the size of {dataset}), got {subset}"
        )
    subset = None if subset is None or int(subset) >= n_train else int(subset)
    test_subset = None if test_subset is None or int(test_subset) >= n_test else int(test_subset)
    images = subset or n_train
    # at least one full batch per epoch (the training loader drops the last partial batch)
    batch = max(2, min(batch_size, images - images % 2))
    return subset, test_subset, batch, int(train_set.image_size), _class_sizes(train_set)


def _class_sizes(dataset: Any) -> list[int]:
    """The number of training images of each class."""
    return torch.bincount(dataset.labels(), minlength=int(dataset.num_classes)).tolist()


def plan_runs(plan: Plan, groups: tuple[str, ...] = PLANNED_GROUPS) -> list[RunPlan]:
    """The pretraining runs, seed by seed: each group's methods in ``groups``' order (by
    default :data:`~dimcollapse.methods.PLANNED_GROUPS`: Table 1, then the ablations), then the
    d0 sweep (if any). A method is planned only through its group, named here: the methods of
    a group not asked for (``"extra"``: VICReg, Barlow Twins) are not trained.

    Seed-major order, so that with parallel workers every method's first seed finishes before
    any second seed starts (an interrupted reproduction has whole seeds to reuse)."""
    runs = []
    for seed in plan.seeds:
        for group in groups:
            runs += [RunPlan(m, m, group, seed=seed) for m in methods_in_group(group)]
        for d0 in plan.d0_values:
            if d0 != plan.default_d0:  # the main directclr run already covers the default d0
                runs.append(RunPlan(f"directclr-d0-{d0}", "directclr", D0_SWEEP_GROUP, d0, seed))
    return runs


def run_names(runs: list[RunPlan]) -> list[str]:
    """The distinct run names (one per method or sweep point), in plan order."""
    return list(dict.fromkeys(r.name for r in runs))


def train_config(plan: Plan, run: RunPlan, out: Path, device: str, cpu: bool) -> TrainConfig:
    """The :class:`~dimcollapse.config.TrainConfig` of one run."""
    in_memory = plan.dataset != "imagefolder"
    return TrainConfig(
        **{name: getattr(plan, name) for name in TRAIN_SETTINGS},
        method=run.method,
        d0=run.d0,
        proj_out=plan.proj_out if _takes_papers_z(run.method) else None,
        seed=run.seed,
        device=device,
        # on a CPU the batched "device" augmentation in-process beats per-image transforms
        data_path="device" if cpu and in_memory else "auto",
        workers=0 if cpu else 2,
        out=str(out),
    )


def _takes_papers_z(method: str) -> bool:
    """Whether the scale's ``proj_out`` (the paper's z, its projector's 128 outputs) sets this
    method's head: a head of the paper's methods that takes an output size (SimCLR's MLP and
    linear projectors). A method beyond the paper (``EXTRA_GROUPS``: VICReg's and Barlow
    Twins' expanders, 4 x rep_dim wide as their papers' 8192 on a 2048-d r) keeps its own
    paper's head."""
    recipe = RECIPES[method]
    return recipe.takes_proj_out and recipe.group in PLANNED_GROUPS


def semantic_config(config: dict[str, Any]) -> dict[str, Any]:
    """A TrainConfig dict without its :data:`EXECUTION_FIELDS`: what a reused run must match.

    An empty ``method_options`` is left out too, so that runs saved before the field existed
    match the runs that do not set it."""
    return {
        k: v
        for k, v in config.items()
        if k not in EXECUTION_FIELDS and not (k == "method_options" and not v)
    }
