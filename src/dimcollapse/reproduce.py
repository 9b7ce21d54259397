"""Reproduce the paper's experiments end to end (``dimcollapse reproduce``).

One call pretrains every method of Table 1 (``simclr-mlp``, ``simclr-linear``, ``simclr-none``,
``directclr``) and the two ablations of section 6.3 (``fixed-lowrank``, ``diagonal``), at ``full``
scale also a sweep of DirectCLR's sub-vector size d0; probes each frozen backbone offline (linear
and kNN, on the full representation and, for DirectCLR, on the sub-vector ``r[:d0]``); measures
the covariance spectra (Eq. 1) of the representation and the embedding on held-out images; probes
two baselines (raw pixels, a randomly initialised backbone); runs the theory lab
(:mod:`dimcollapse.toy`); and writes the report (:mod:`dimcollapse.report`).

Output directory::

    reproduce.json            settings, environment, every result (machine-readable)
    report.md, report.html    the report (the HTML embeds its figures: one self-contained file)
    figures/*.png             the report's figures
    runs/<name>/              one pretraining run each (``dimcollapse train`` layout) plus
                              reproduce_stage.json, the stage's probe and spectrum results
    baselines/                raw-pixel and random-backbone probes
    toys/                     the theory lab's figures and summaries

Resuming: a stage whose ``reproduce_stage.json`` holds the same settings is reused; a run
interrupted during pretraining resumes from its ``checkpoints/last.pt``; so an interrupted
reproduce continues when rerun with the same command. A directory holding a report of other
settings (or anything else) is refused.

Seeds: every method is trained with ``--seeds K`` seeds (``seed``, ``seed + 1``, ...; each
seed trains every method on the same images in the same order). ``reproduce.json`` keeps each
seed's results in ``runs[name]["seeds"]`` and reports their mean in the usual fields with a 95%
Student-t interval beside the main ones (``top1_ci95``, ``knn_top1_k20_ci95``, ``rankme_ci95``;
:mod:`dimcollapse.aggregate`); claims are judged from the paired differences across seeds
(:mod:`dimcollapse.claims`).

Scales (``--epochs``, ``--subset``, ``--width``, ``--seeds`` override them). The defaults come
from the study in ``docs/experiments/fashion-mnist-collapse.md``:

* ``quick`` (the demo, at most 10 minutes on 2 cores): Fashion-MNIST, 3 seeds, 4,000 training
  images, 6 epochs at batch 128, ResNet-18 at width 0.25 with its standard stem (stride-2 conv
  and max-pool: a 7x7 map after the stem, ten times cheaper than the small-image stem), the
  paper's absolute 128-d embedding (a rep/16 = 16-d one uses every dimension and cannot show
  Fig. 2's collapse; 128 shows 5-12 collapsed dimensions in every seed), 30-epoch probes on
  the whole test set, no d0 sweep. Batch 128 doubles the steps of so short a run (collapse is
  a product of optimisation steps; it was tighter across seeds than at 256). Three seeds are
  the fewest with which an interval can decide anything.
* ``cpu`` (67 minutes measured on 2 busy cores; at most 90): the same network, 3 seeds, 8,000 images, 30 epochs
  at the paper's batch-size rule (256), 100-epoch probes on the whole test set, the theory lab
  at its full lengths: enough seeds and steps to judge every Table 1 claim.
* ``full``: one GPU (or several under ``torchrun``; rank 0 probes and writes the report). All of
  Fashion-MNIST (or ``--dataset cifar10 --data-root DIR``), 3 seeds, ResNet-18 at width 1 with
  the small-image stem, 100 epochs, 100-epoch probes on the whole test set, and the d0 sweep.

On a CPU the runs go to parallel single-threaded worker processes: on a 2-core machine two
processes of one thread each trained 4.3 times as many images per second as one process with
two threads (``benchmarks/bench_cpu_step.py --processes``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dimcollapse.errors import UsageError
from dimcollapse.fileio import write_json_atomic

SCALES = ("quick", "cpu", "full")
#: Table 1 of the paper, in its order.
TABLE1_METHODS = ("simclr-mlp", "simclr-linear", "simclr-none", "directclr")
#: The projector ablations of section 6.3.
ABLATION_METHODS = ("fixed-lowrank", "diagonal")
METHODS = TABLE1_METHODS + ABLATION_METHODS

#: The paper's ImageNet linear-probe top-1 (%), ResNet-50, 100 epochs (Table 1, section 6.3).
PAPER_TOP1: dict[str, float] = {
    "simclr-mlp": 66.5,
    "simclr-linear": 61.1,
    "simclr-none": 51.5,
    "directclr": 62.7,
    "fixed-lowrank": 62.3,
    "diagonal": 60.2,
}
#: Section 6.3: a linear probe on DirectCLR's sub-vector r[:d0] only.
PAPER_SUBVECTOR_TOP1 = 47.9

FORMAT = "dimcollapse-reproduce"
FORMAT_VERSION = 1
STAGE_FILE = "reproduce_stage.json"
STAGE_FORMAT = "dimcollapse-reproduce-stage"

#: Per-scale defaults. ``small_stem`` None: the training default (on for images <= 64 px).
SCALE_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": {
        "dataset": "fashion-mnist",
        "backbone": "resnet18",
        "epochs": 6,
        "subset": 4000,
        "width": 0.25,
        "small_stem": False,
        "batch_size": 128,
        "monitor_samples": 1000,
        "probe_epochs": 30,
        "test_subset": None,
        "toy_steps": 4000,
        "d0_sweep": False,
        "seeds": 3,
        "proj_out": 128,
    },
    "cpu": {
        "dataset": "fashion-mnist",
        "backbone": "resnet18",
        "epochs": 30,
        "subset": 8000,
        "width": 0.25,
        "small_stem": False,
        "batch_size": 256,
        "monitor_samples": 1000,
        "probe_epochs": 100,
        "test_subset": None,
        "toy_steps": None,
        "d0_sweep": False,
        "seeds": 3,
        "proj_out": 128,
    },
    "full": {
        "dataset": "fashion-mnist",
        "backbone": "resnet18",
        "epochs": 100,
        "subset": None,
        "width": 1.0,
        "small_stem": None,
        "batch_size": 512,
        "monitor_samples": 2048,
        "probe_epochs": 100,
        "test_subset": None,
        "toy_steps": None,
        "d0_sweep": True,
        "seeds": 3,
        "proj_out": 128,
    },
}
#: The d0 sweep: rep_dim divided by these.
D0_DIVISORS = (32, 16, 8, 4, 2)

#: TrainConfig fields that say how, not what: they may differ between a run and its reuse.
_EXECUTION_FIELDS = ("out", "resume", "device", "workers", "data_path", "log_every")


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
    d0_sweep: bool | None = None
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
        for name in ("batch_size", "monitor_samples", "probe_epochs", "test_subset", "toy_steps"):
            value = getattr(self, name)
            if value is not None:
                parts += ["--" + name.replace("_", "-"), str(value)]
        if self.d0_sweep is not None:
            parts += ["--d0-sweep", "on" if self.d0_sweep else "off"]
        parts += ["--out", str(self.out)]
        return shlex.join(parts)


@dataclass
class Plan:
    """The resolved settings: everything that determines the results (the reuse key)."""

    scale: str
    dataset: str
    data_root: str | None
    backbone: str
    epochs: int
    subset: int | None
    width: float
    small_stem: bool | None
    batch_size: int
    monitor_samples: int
    probe_epochs: int
    test_subset: int | None
    toy_steps: int | None
    seed: int
    rep_dim: int
    default_d0: int
    d0_values: list[int] = field(default_factory=list)
    #: every seed a method is trained with (``seed``, ``seed + 1``, ...; default: ``[seed]``)
    seeds: list[int] = field(default_factory=list)
    #: the projectors' output size (simclr-mlp, simclr-linear); None: scaled from rep_dim
    proj_out: int | None = None

    def __post_init__(self) -> None:
        if not self.seeds:
            self.seeds = [self.seed]

    def key(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RunPlan:
    """One pretraining run of the reproduction."""

    name: str
    method: str
    group: str  # "table1" | "ablation" | "d0-sweep"
    d0: int | None = None
    seed: int = 0

    @property
    def task_id(self) -> str:
        return f"run:{self.name}:{self.seed}"

    def directory(self, out: Path) -> Path:
        return out / "runs" / self.name / f"seed-{self.seed}"


# ---- planning ---------------------------------------------------------------------------------


def resolve_plan(settings: ReproduceSettings) -> Plan:
    """Fill in the scale's defaults and check them (loads the dataset once to size it)."""
    from dimcollapse.backbones import build_backbone
    from dimcollapse.data.datasets import DATASETS, load_dataset
    from dimcollapse.projectors import default_d0

    if settings.scale not in SCALES:
        raise UsageError(f"unknown scale {settings.scale!r}; choose from {', '.join(SCALES)}")
    d = SCALE_DEFAULTS[settings.scale]

    def pick(name: str) -> Any:
        value = getattr(settings, name)
        return d[name] if value is None else value

    dataset = pick("dataset")
    if dataset not in DATASETS:
        raise UsageError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    epochs, subset, width = int(pick("epochs")), pick("subset"), float(pick("width"))
    batch_size, monitor = int(pick("batch_size")), int(pick("monitor_samples"))
    n_seeds = int(pick("seeds"))
    probe_epochs, test_subset, toy_steps = (
        int(pick("probe_epochs")),
        pick("test_subset"),
        pick("toy_steps"),
    )
    for ok, message in (
        (epochs >= 1, f"epochs must be at least 1, got {epochs}"),
        (subset is None or int(subset) >= 2, f"subset must be at least 2 images, got {subset}"),
        (width > 0, f"width must be positive, got {width}"),
        (batch_size >= 2, f"batch size must be at least 2, got {batch_size}"),
        (probe_epochs >= 1, f"probe epochs must be at least 1, got {probe_epochs}"),
        (test_subset is None or int(test_subset) >= 1, "test subset must be at least 1"),
        (toy_steps is None or int(toy_steps) >= 1, "toy steps must be at least 1"),
        (monitor >= 0, "monitor samples must be >= 0"),
        (n_seeds >= 1, f"seeds must be at least 1, got {n_seeds}"),
    ):
        if not ok:
            raise UsageError(message)
    train_set = load_dataset(dataset, "train", root=settings.data_root)
    test_set = load_dataset(dataset, "test", root=settings.data_root)
    n_train, n_test = len(train_set), len(test_set)
    subset = None if subset is None or int(subset) >= n_train else int(subset)
    test_subset = None if test_subset is None or int(test_subset) >= n_test else int(test_subset)
    images = subset or n_train
    # at least one full batch per epoch (the training loader drops the last partial batch)
    batch_size = max(2, min(batch_size, images - images % 2))
    small_stem = d["small_stem"]
    small = small_stem if small_stem is not None else train_set.image_size <= 64
    _module, rep_dim = build_backbone(
        d["backbone"], in_channels=train_set.channels, small_images=bool(small), width=width
    )
    del _module
    sweep = settings.d0_sweep if settings.d0_sweep is not None else d["d0_sweep"]
    d0_values = sorted({max(1, rep_dim // k) for k in D0_DIVISORS}) if sweep else []
    return Plan(
        scale=settings.scale,
        dataset=dataset,
        data_root=settings.data_root,
        backbone=d["backbone"],
        epochs=epochs,
        subset=subset,
        width=width,
        small_stem=small_stem,
        batch_size=batch_size,
        monitor_samples=monitor,
        probe_epochs=probe_epochs,
        test_subset=test_subset,
        toy_steps=None if toy_steps is None else int(toy_steps),
        seed=int(settings.seed),
        rep_dim=int(rep_dim),
        default_d0=int(default_d0(rep_dim)),
        d0_values=d0_values,
        seeds=[int(settings.seed) + i for i in range(n_seeds)],
        proj_out=d.get("proj_out"),
    )


def plan_runs(plan: Plan) -> list[RunPlan]:
    """The pretraining runs, seed by seed: Table 1, the ablations, then the d0 sweep (if any).

    Seed-major order, so that with parallel workers every method's first seed finishes before
    any second seed starts (an interrupted reproduction has whole seeds to reuse)."""
    runs = []
    for seed in plan.seeds:
        runs += [RunPlan(m, m, "table1", seed=seed) for m in TABLE1_METHODS]
        runs += [RunPlan(m, m, "ablation", seed=seed) for m in ABLATION_METHODS]
        for d0 in plan.d0_values:
            if d0 != plan.default_d0:  # the main directclr run already covers the default d0
                runs.append(RunPlan(f"directclr-d0-{d0}", "directclr", "d0-sweep", d0, seed))
    return runs


def run_names(runs: list[RunPlan]) -> list[str]:
    """The distinct run names (one per method or sweep point), in plan order."""
    return list(dict.fromkeys(r.name for r in runs))


def train_config(plan: Plan, run: RunPlan, out: Path, device: str, cpu: bool) -> Any:
    """The :class:`~dimcollapse.config.TrainConfig` of one run."""
    from dimcollapse.config import TrainConfig

    in_memory = plan.dataset != "imagefolder"
    return TrainConfig(
        method=run.method,
        backbone=plan.backbone,
        width=plan.width,
        small_stem=plan.small_stem,
        d0=run.d0,
        proj_out=plan.proj_out if run.method in ("simclr-mlp", "simclr-linear") else None,
        dataset=plan.dataset,
        data_root=plan.data_root,
        subset=plan.subset,
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        monitor_samples=plan.monitor_samples,
        seed=run.seed,
        device=device,
        # on a CPU the batched "device" augmentation in-process beats per-image transforms
        data_path="device" if cpu and in_memory else "auto",
        workers=0 if cpu else 2,
        out=str(out),
    )


def _semantic(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in _EXECUTION_FIELDS}


# ---- environment --------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Versions and hardware, for the report."""
    import torch
    import torchvision

    from dimcollapse import __version__

    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "dimcollapse": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "gpus": gpus,
    }


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ---- stages (module-level functions: they run in worker processes) -----------------------------


def _read_stage(directory: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The result of a finished stage with this key, else None."""
    path = directory / STAGE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("format") != STAGE_FORMAT or data.get("key") != _jsonable(key):
        return None
    return data.get("result")


def _write_stage(directory: Path, key: dict[str, Any], result: dict[str, Any]) -> None:
    write_json_atomic(
        directory / STAGE_FILE, {"format": STAGE_FORMAT, "key": _jsonable(key), "result": result}
    )


def _jsonable(obj: Any) -> Any:
    """Round-trip through JSON so that tuples and lists compare equal."""
    return json.loads(json.dumps(obj))


def _log(verbose: bool, text: str) -> None:
    if verbose:
        print(f"[reproduce] {text}", flush=True)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def _history(run_dir: Path) -> list[dict[str, Any]]:
    keep = (
        "epoch",
        "loss",
        "online_probe_top1",
        "representation_rankme",
        "representation_collapsed_dims",
        "embedding_rankme",
        "embedding_collapsed_dims",
        "epoch_seconds",
        "images_per_s",
    )
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return [{k: r.get(k) for k in keep if k in r} for r in rows]


def _summary(x: Any) -> dict[str, Any]:
    from dimcollapse.spectrum import summarize

    return summarize(x).to_dict()


def _stage_run(task: dict[str, Any]) -> dict[str, Any]:
    """Pretrain one method (or reuse/resume it), then probe it and measure its spectra."""
    import torch

    from dimcollapse.checkpoint import load_checkpoint, load_model
    from dimcollapse.config import TrainConfig
    from dimcollapse.probe import extract_features, load_run_data, probe_features
    from dimcollapse.runtime import resolve_device
    from dimcollapse.train import train

    _set_threads(task.get("threads"))
    run_dir = Path(task["dir"])
    key = task["key"]
    main = task.get("rank", 0) == 0
    verbose = task["verbose"]
    name = task["name"]
    done = _read_stage(run_dir, key)
    if done is not None:
        return {**done, "reused": True}

    cfg = TrainConfig.from_dict(task["config"])
    final, last = run_dir / "checkpoints" / "final.pt", run_dir / "checkpoints" / "last.pt"
    want = _semantic(cfg.to_dict())
    trained = False
    t0 = time.perf_counter()
    if final.is_file():
        ckpt = load_checkpoint(final)
        trained = _semantic(ckpt.get("config") or {}) == want and ckpt.get("epoch") == cfg.epochs
        del ckpt
    if not trained:
        resume = False
        if last.is_file():
            ckpt = load_checkpoint(last)
            resume = _semantic(ckpt.get("config") or {}) == want
            del ckpt
        if not resume and main and run_dir.exists():
            shutil.rmtree(run_dir)
        cfg.resume = resume
        _log(verbose and main, f"{name}: pretraining{' (resuming)' if resume else ''}")
        train(cfg, verbose=verbose and task.get("train_verbose", False))
    train_seconds = time.perf_counter() - t0
    if not main:
        return {"name": name}
    history = _history(run_dir)
    if trained:  # pretrained by an earlier invocation: its own epoch times
        train_seconds = sum(float(h.get("epoch_seconds") or 0.0) for h in history)

    t1 = time.perf_counter()
    model, ckpt = load_model(final)
    dev = resolve_device(task["device"])
    probe = task["probe"]
    seed = int(probe["seed"])
    train_set = load_run_data(ckpt, "train", subset=probe["train_subset"], seed=seed)
    test_set = load_run_data(ckpt, "test", subset=probe["test_subset"], seed=seed)
    num_classes = int(train_set.num_classes)
    train_x, train_y = extract_features(model, train_set, device=dev)
    test_x, test_y = extract_features(model, test_set, device=dev)
    common = dict(num_classes=num_classes, epochs=int(probe["epochs"]), seed=seed, device=dev)
    probes = {"full": probe_features(train_x, train_y, test_x, test_y, **common)}
    d0 = getattr(model.head, "d0", None)
    if task["method"] == "directclr" and d0:
        probes["subvector"] = probe_features(
            train_x[:, :d0].contiguous(), train_y, test_x[:, :d0].contiguous(), test_y, **common
        )
    with torch.no_grad():
        z = model.head(test_x.to(dev)).float().cpu()
    rep, emb = _summary(test_x), _summary(z)
    probe_seconds = time.perf_counter() - t1
    result = {
        "name": name,
        "seed": int(task["seed"]),
        "method": task["method"],
        "group": task["group"],
        "d0": d0,
        "rep_dim": int(model.rep_dim),
        "embedding_dim": int(z.shape[1]),
        "num_classes": num_classes,
        "probe": probes,
        "representation": rep,
        "embedding": emb,
        "history": history,
        "seconds": {"train": train_seconds, "probe": probe_seconds},
        "pretraining_reused": trained,
        "run_dir": str(run_dir),
    }
    _write_stage(run_dir, key, result)
    top1 = 100 * probes["full"]["top1"]
    _log(
        verbose,
        f"{name}: done (pretraining {train_seconds:.0f} s, probes {probe_seconds:.0f} s); "
        f"linear top-1 {top1:.1f}%, representation RankMe {rep['rankme']:.1f}, "
        f"{rep['collapsed_dims']}/{rep['dim']} collapsed dims",
    )
    return {**result, "reused": False}


def _stage_baselines(task: dict[str, Any]) -> dict[str, Any]:
    """Probes of raw pixels and of a randomly initialised backbone (no pretraining)."""
    import torch

    from dimcollapse.data.datasets import load_dataset
    from dimcollapse.model import ModelSpec, build_model
    from dimcollapse.probe import extract_features, probe_features
    from dimcollapse.runtime import resolve_device

    _set_threads(task.get("threads"))
    out = Path(task["dir"])
    key = task["key"]
    done = _read_stage(out, key)
    if done is not None:
        return {**done, "reused": True}
    p = task["plan"]
    t0 = time.perf_counter()
    dev = resolve_device(task["device"])
    common_data = {"root": p["data_root"], "seed": p["seed"]}
    train_set = load_dataset(p["dataset"], "train", subset=p["subset"], **common_data)
    test_set = load_dataset(p["dataset"], "test", subset=p["test_subset"], **common_data)
    num_classes = int(train_set.num_classes)
    probe_args = dict(num_classes=num_classes, epochs=p["probe_epochs"], seed=p["seed"], device=dev)
    result: dict[str, Any] = {}

    tr, te = train_set.tensors(), test_set.tensors()
    if tr is not None and te is not None:
        train_x = tr[0].flatten(1).float() / 255.0
        test_x = te[0].flatten(1).float() / 255.0
        t1 = time.perf_counter()
        probe = probe_features(train_x, tr[1].long(), test_x, te[1].long(), **probe_args)
        result["pixels"] = {
            "name": "raw pixels",
            "probe": probe,
            "representation": _summary(test_x),
            "seconds": time.perf_counter() - t1,
        }

    t1 = time.perf_counter()
    small = p["small_stem"] if p["small_stem"] is not None else train_set.image_size <= 64
    torch.manual_seed(int(p["seed"]) + 1_000_003)  # another seed than any pretraining run
    spec = ModelSpec(
        method="simclr-none",
        backbone=p["backbone"],
        width=p["width"],
        in_channels=train_set.channels,
        small_stem=bool(small),
        num_classes=num_classes,
        seed=int(p["seed"]) + 1_000_003,
    )
    model = build_model(spec).to(dev)
    _recompute_batchnorm(model, train_set, dev)
    train_x, train_y = extract_features(model, train_set, device=dev)
    test_x, test_y = extract_features(model, test_set, device=dev)
    result["random"] = {
        "name": "random backbone",
        "note": "random weights; batch-norm statistics of the training images",
        "probe": probe_features(train_x, train_y, test_x, test_y, **probe_args),
        "representation": _summary(test_x),
        "seconds": time.perf_counter() - t1,
    }
    result["seconds"] = time.perf_counter() - t0
    _write_stage(out, key, result)
    _log(task["verbose"], f"baselines: done ({result['seconds']:.0f} s)")
    return {**result, "reused": False}


def _recompute_batchnorm(model: Any, dataset: Any, device: Any) -> None:
    """Set every batch-norm layer's running statistics to those of ``dataset``'s images.

    A freshly initialised network in eval mode normalises with mean 0 and variance 1, which
    are not its activations' statistics: its features then degenerate (a handful of effective
    dimensions) and the baseline says more about that mismatch than about random features.
    """
    import torch
    from torch import nn

    from dimcollapse.data.loaders import build_eval_loader

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the whole pass
    model.train()
    with torch.no_grad():
        for x, _y in build_eval_loader(dataset, batch_size=512, device=device):
            if x.shape[0] > 1:
                model.encode(x)
    model.eval()


def _stage_toys(task: dict[str, Any]) -> dict[str, Any]:
    """The theory lab's scenarios (sections 4-5): figures and summaries into ``toys/``."""
    _set_threads(task.get("threads"))
    out = Path(task["dir"])
    key = task["key"]
    done = _finished(task)
    if done is not None:
        return {**done, "reused": True}
    t0 = time.perf_counter()
    result = run_toys(out, steps=task["steps"], seed=task["seed"])
    result["seconds"] = time.perf_counter() - t0
    _write_stage(out, key, result)
    _log(task["verbose"], f"theory lab: done ({result['seconds']:.0f} s)")
    return {**result, "reused": False}


#: The theory lab's scenarios, in the report's order, with the paper's figures they reproduce.
TOY_SCENARIOS: tuple[tuple[str, str], ...] = (
    ("strong-aug", "Section 4 (Theorem 1): strong augmentation, one linear layer"),
    ("two-layer", "Figs. 4 and 5: two linear layers, alignment and singular value dynamics"),
    ("depth", "Fig. 6a: more linear layers, more collapse"),
    ("relu", "Fig. 6b: two layers with and without ReLU"),
)


def run_toys(out: Path, *, steps: int | None, seed: int) -> dict[str, Any]:
    """Run every theory-lab scenario (:mod:`dimcollapse.toy`) into ``out``.

    Writes ``<scenario>.png`` (the lab's figure) and ``<scenario>.json`` (its summary) per
    scenario. Returns ``{"available", "figures": [{"scenario", "caption", "file"}],
    "summaries": {scenario: [{"run", "collapsed_dims", "dim", "alignment_diag_mean"}]}}`` with
    file names relative to ``out``; ``steps`` None keeps the lab's step counts.
    """
    from dimcollapse.fileio import atomic_path

    try:
        from dimcollapse.toy import run_scenarios, scenario_figure
    except (ImportError, AttributeError):  # pragma: no cover - the lab ships with the package
        return {"available": False, "figures": [], "summaries": {}}
    out.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"seed": int(seed)}
    if steps is not None:
        overrides["steps"] = int(steps)
    captions = dict(TOY_SCENARIOS)
    results = run_scenarios(list(captions), **overrides)
    figures: list[dict[str, Any]] = []
    summaries: dict[str, Any] = {}
    for res in results:
        fig = scenario_figure(res)
        png = out / f"{res.name}.png"
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        data = _jsonable(res.to_dict())
        write_json_atomic(out / f"{res.name}.json", data)
        figures.append({"scenario": res.name, "caption": captions[res.name], "file": png.name})
        summaries[res.name] = [
            {
                "run": r.get("run"),
                "collapsed_dims": r.get("collapsed_dims"),
                "dim": r.get("dim"),
                "alignment_diag_mean": r.get("alignment_diag_mean"),
                "rel_tol": data.get("rel_tol"),
            }
            for r in data.get("runs", [])
        ]
    return {"available": True, "figures": figures, "summaries": summaries}


def _finished(task: dict[str, Any]) -> dict[str, Any] | None:
    """The stored result of a stage finished with the same settings, else None."""
    directory = Path(task["dir"])
    done = _read_stage(directory, task["key"])
    if done is None:
        return None
    if task["kind"] == "toys":
        if not all((directory / f["file"]).is_file() for f in done.get("figures", [])):
            return None
    elif task["kind"] == "run" and not (directory / "checkpoints" / "final.pt").is_file():
        return None
    return done


def _run_task(task: dict[str, Any]) -> dict[str, Any]:
    kind = task["kind"]
    if kind == "run":
        return _stage_run(task)
    if kind == "baselines":
        return _stage_baselines(task)
    return _stage_toys(task)


# ---- the whole reproduction ---------------------------------------------------------------------


def _check_out_dir(out: Path, plan: Plan) -> dict[str, Any] | None:
    """Refuse a directory that holds anything but a reproduction of the same settings."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a directory; choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return None
    manifest = out / "reproduce.json"
    if not manifest.is_file():
        raise UsageError(
            f"{out} holds another report (or other files: no reproduce.json); choose another --out"
        )
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"{out} holds another report (unreadable reproduce.json); choose another --out"
        ) from None
    if data.get("format") != FORMAT:
        raise UsageError(f"{out} holds another report (not a reproduce.json); choose another --out")
    theirs, ours = data.get("settings") or {}, _jsonable(plan.key())
    if theirs != ours:
        diff = [k for k in ours if theirs.get(k) != ours[k]]
        what = ", ".join(f"{k} {theirs.get(k)!r} not {ours[k]!r}" for k in diff[:3])
        raise UsageError(f"{out} holds another report ({what}); choose another --out")
    return data


def _build_tasks(
    plan: Plan,
    runs: list[RunPlan],
    settings: ReproduceSettings,
    out: Path,
    device: Any,
    rank: int,
    verbose: bool,
) -> list[dict[str, Any]]:
    """Every stage as a picklable task: one per pretraining run, then (rank 0) toys, baselines."""
    cpu = device.type == "cpu"
    main = rank == 0
    probe = {
        "epochs": plan.probe_epochs,
        "train_subset": plan.subset,
        "test_subset": plan.test_subset,
        "seed": plan.seed,
    }
    tasks: list[dict[str, Any]] = []
    for run in runs:
        # the device as asked ("auto", "cuda"): under torchrun each rank picks its own GPU
        cfg = train_config(plan, run, run.directory(out), settings.device, cpu)
        run_probe = {**probe, "seed": run.seed}
        tasks.append(
            {
                "kind": "run",
                "id": run.task_id,
                "name": run.name,
                "seed": run.seed,
                "method": run.method,
                "group": run.group,
                "dir": str(run.directory(out)),
                "config": cfg.to_dict(),
                "key": {"train": _semantic(cfg.to_dict()), "probe": run_probe},
                "probe": run_probe,
                "device": str(device),
                "rank": rank,
                "verbose": verbose,
            }
        )
    if main:
        base_key = {
            k: plan.key()[k]
            for k in (
                "dataset",
                "data_root",
                "subset",
                "test_subset",
                "probe_epochs",
                "seed",
                "backbone",
                "width",
                "small_stem",
            )
        }
        tasks.append(
            {
                "kind": "toys",
                "id": "toys",
                "dir": str(out / "toys"),
                "key": {"steps": plan.toy_steps, "seed": plan.seed},
                "steps": plan.toy_steps,
                "seed": plan.seed,
                "verbose": verbose,
            }
        )
        for seed in plan.seeds:
            tasks.append(
                {
                    "kind": "baselines",
                    "id": f"baselines:{seed}",
                    "dir": str(out / "baselines" / f"seed-{seed}"),
                    "key": {**base_key, "seed": seed},
                    "plan": {**plan.key(), "seed": seed},
                    "device": str(device),
                    "verbose": verbose,
                }
            )

    return tasks


def _execute(
    tasks: list[dict[str, Any]],
    jobs: int,
    cpus: int,
    world: int,
    device: Any,
    execution: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Run the unfinished tasks (reusing finished stages) in ``jobs`` processes or in this one;
    records the jobs and threads used in ``execution``; returns results by task id."""
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for task in tasks:  # finished stages are read here, without starting a worker
        done = _finished(task)
        if done is not None:
            results[_task_id(task)] = {**done, "reused": True}
        else:
            pending.append(task)
    jobs = min(jobs, max(1, len(pending)))
    threads = max(1, cpus // jobs) if jobs > 1 else None
    execution["jobs"], execution["threads_per_job"] = jobs, threads
    for task in pending:
        task["threads"] = threads
        task["train_verbose"] = jobs == 1
    if jobs == 1:
        with _one_process_group(world, device.type):
            for task in pending:
                results[_task_id(task)] = _run_task(task)
    else:
        _run_parallel(pending, jobs, results)
    return results


def reproduce(settings: ReproduceSettings) -> dict[str, Any]:
    """Run the whole reproduction (see the module docstring); return ``reproduce.json``'s data."""
    t_start = time.perf_counter()
    rank = int(os.environ.get("RANK", "0")) if "WORLD_SIZE" in os.environ else 0
    world = int(os.environ.get("WORLD_SIZE", "1"))
    main = rank == 0
    out = Path(settings.out)
    plan = resolve_plan(settings)
    _check_out_dir(out, plan)
    runs = plan_runs(plan)

    from dimcollapse.runtime import resolve_device

    device = resolve_device(settings.device)
    cpu = device.type == "cpu"
    cpus = _usable_cpus()
    if settings.jobs is not None:
        if settings.jobs < 1:
            raise UsageError(f"jobs must be at least 1, got {settings.jobs}")
        jobs = settings.jobs
    else:
        jobs = min(len(runs), cpus) if cpu and world == 1 else 1
    if world > 1:
        jobs = 1
    verbose = settings.verbose and main

    env = environment() if main else {}
    execution: dict[str, Any] = {
        "device": str(device),
        "jobs": jobs,
        "threads_per_job": None,
        "world_size": world,
    }
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "status": "running",
        "settings": _jsonable(plan.key()),
        "command": settings.command_line(),
        "argv": sys.argv,
        "execution": execution,
        "environment": env,
    }
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "reproduce.json", manifest)
    _log(
        verbose,
        f"{len(runs)} pretraining runs ({len(plan.seeds)} seed(s) each) of {plan.epochs} epochs "
        f"on {plan.dataset} "
        f"({plan.subset or 'all'} images, {plan.backbone} x{plan.width}, rep_dim {plan.rep_dim}), "
        f"probes, baselines, theory lab; {device}, {jobs} parallel job(s); output in {out}",
    )

    tasks = _build_tasks(plan, runs, settings, out, device, rank, verbose)

    t_stages = time.perf_counter()
    results = _execute(tasks, jobs, cpus, world, device, execution)
    stages_wall = time.perf_counter() - t_stages
    if not main:
        return {}

    from dimcollapse.aggregate import aggregate_baselines, aggregate_seeds

    seeds = plan.seeds
    run_results = {
        name: aggregate_seeds([results[r.task_id] for r in runs if r.name == name])
        for name in run_names(runs)
    }
    baselines = aggregate_baselines([results[f"baselines:{s}"] for s in seeds])
    manifest.update(
        {
            "runs": run_results,
            "baselines": {k: v for k, v in baselines.items() if isinstance(v, dict)},
            "toys": results["toys"],
            "paper": {"top1": PAPER_TOP1, "subvector_top1": PAPER_SUBVECTOR_TOP1},
        }
    )
    t_report = time.perf_counter()
    from dimcollapse.report import write_report

    timing: dict[str, Any] = {
        "pretraining_s": sum(r["seconds"]["train"] for r in run_results.values()),
        "probes_s": sum(r["seconds"]["probe"] for r in run_results.values()),
        "baselines_s": baselines.get("seconds"),
        "toys_s": results["toys"].get("seconds"),
        "stages_wall_s": stages_wall,
        "reused": sorted(k for k, v in results.items() if v.get("reused")),
    }
    manifest["timing"] = timing
    manifest["status"] = "complete"
    # the report's own time and the total are known only after it is drawn: draw, then redraw
    # the text with the final numbers (figures are kept)
    claims = write_report(manifest, out)
    timing["report_s"] = time.perf_counter() - t_report
    timing["total_wall_s"] = time.perf_counter() - t_start
    manifest["claims"] = claims
    write_report(manifest, out, figures=False)
    write_json_atomic(out / "reproduce.json", manifest)
    _log(
        verbose,
        f"done in {timing['total_wall_s']:.0f} s: {out / 'report.md'}, {out / 'report.html'}",
    )
    return manifest


@contextlib.contextmanager
def _one_process_group(world: int, device_type: str) -> Iterator[None]:
    """Under ``torchrun``: one process group for all the runs, not one per run.

    Joining the group again for each run is unreliable when the ranks arrive at different times
    (rank 0 probes between runs while the others go on): the rendezvous store still holds the
    previous group's addresses and gloo/NCCL connect to stale ports. So the group is created
    once here; :func:`dimcollapse.train.train` uses a group it finds and leaves it alone, and the
    runs meet in ``train``'s own barriers. In a single process this does nothing.
    """
    if world <= 1:
        yield
        return
    from dimcollapse import distributed

    distributed.setup_from_env("cuda" if device_type == "cuda" else "cpu")
    try:
        yield
    finally:
        distributed.cleanup()


def _run_parallel(tasks: list[dict[str, Any]], jobs: int, results: dict[str, Any]) -> None:
    """Run ``tasks`` in ``jobs`` spawned worker processes; the first failure cancels the rest."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"))
    try:
        futures = {pool.submit(_run_task, t): _task_id(t) for t in tasks}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in done:
            if fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
        for fut, tid in futures.items():
            results[tid] = fut.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()  # the pool's own workers, started above
        raise
    pool.shutdown(wait=True)


def _task_id(task: dict[str, Any]) -> str:
    return str(task["id"])
