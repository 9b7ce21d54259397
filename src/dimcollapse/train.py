"""Contrastive pretraining (section 6): SimCLR projector variants, DirectCLR and the ablations.

One loop for one process, one GPU or many under ``torchrun`` (PyTorch DDP). Each epoch it
measures collapse the way the paper does: the covariance spectra (Eq. 1) of the representation
r (Figs. 7b, 9) and of the embedding z (Fig. 2) on held-out images, streamed through
:class:`~dimcollapse.spectrum.SpectrumAccumulator`, with RankMe and collapsed-dimension counts,
plus the accuracy of the online linear probe trained on ``r.detach()``.

Run directory (``cfg.out``)::

    config.yaml             the resolved configuration
    metrics.jsonl           one line per epoch
    spectra.jsonl           one line per epoch: representation and embedding singular values
    tensorboard/            the same scalars for TensorBoard
    checkpoints/last.pt     after every epoch and every ``--checkpoint-every`` inside one, and
                            at the step a SIGTERM/Ctrl-C arrives (atomic);
                            checkpoints/final.pt at the end

Preemption and faults: a signal lets the step finish, saves, and raises
:class:`~dimcollapse.errors.Terminated` / :class:`~dimcollapse.errors.Interrupted`; a resume at
any step continues with the same batches (``ViewLoader.set_epoch(e, start_step=k)``) and the
epoch's partial sums, so it is bit-identical to an uninterrupted run. :class:`DivergenceGuard`
stops a run at a non-finite loss or gradient before anything is saved.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dimcollapse import distributed as dist
from dimcollapse.checkpoint import load_checkpoint, save_checkpoint
from dimcollapse.config import TrainConfig, parse_checkpoint_every
from dimcollapse.data.augment import AugmentConfig
from dimcollapse.data.datasets import ImageDataset, load_dataset
from dimcollapse.data.loaders import build_eval_loader, build_view_loader
from dimcollapse.errors import Interrupted, Terminated, UsageError
from dimcollapse.fileio import remove_orphan_temps, write_text_atomic
from dimcollapse.losses import info_nce
from dimcollapse.model import ContrastiveModel, ModelSpec, build_model
from dimcollapse.optim import build_optimizer, scaled_lr, warmup_cosine
from dimcollapse.runtime import (
    autocast,
    resolve_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
)
from dimcollapse.spectrum import SpectrumAccumulator

#: Config fields a resume may change (applied and recorded in config.yaml); every other field
#: must match the run's (optimiser, learning rate, batch size, augmentation, method, ...).
RESUME_MAY_CHANGE = (
    "epochs",
    "log_every",
    "checkpoint_every",
    "max_bad_steps",
    "workers",
    "device",
    "data_root",
    "download",
    "out",
    "resume",
)


@dataclass
class RunResult:
    """What a finished run left behind."""

    out: Path
    metrics: list[dict[str, Any]]
    checkpoint: Path


def use_sync_bn(setting: bool | None, device: torch.device) -> bool:
    """Whether to convert BatchNorm to SyncBatchNorm under DDP: the setting, or by default on
    CUDA (the paper's code always converts: batch statistics over the global batch, which
    InfoNCE's negatives otherwise leak through) and off on the CPU, where gloo has no
    SyncBatchNorm support."""
    return device.type == "cuda" if setting is None else bool(setting)


def resolve_augment(cfg: TrainConfig, dataset: ImageDataset) -> AugmentConfig:
    """The dataset-size recipe (``AugmentConfig.for_dataset``) with ``cfg.augment`` overrides."""
    size = int(cfg.augment.get("image_size", dataset.image_size))
    base = AugmentConfig.for_dataset(size, dataset.channels)
    values = {**dataclasses.asdict(base), **cfg.augment}
    return AugmentConfig(**values)


def model_spec(cfg: TrainConfig, dataset: ImageDataset, image_size: int) -> ModelSpec:
    """The architecture of ``cfg`` for this dataset (channels, classes, stem)."""
    small = cfg.small_stem if cfg.small_stem is not None else image_size <= 64
    return ModelSpec(
        method=cfg.method,
        backbone=cfg.backbone,
        width=cfg.width,
        in_channels=dataset.channels,
        small_stem=bool(small),
        num_classes=dataset.num_classes,
        d0=cfg.d0,
        proj_hidden=cfg.proj_hidden,
        proj_out=cfg.proj_out,
        seed=cfg.seed,
        diagonal_init=cfg.diagonal_init,
    )


#: What a run directory holds (the files ``train`` writes); a run without a checkpoint holds
#: only these and can be started again in place.
RUN_FILES = ("config.yaml", "metrics.jsonl", "spectra.jsonl", "tensorboard", "checkpoints")


def _prepare_out_dir(cfg: TrainConfig) -> dict[str, Any] | None:
    """Refuse to overwrite another run; return the checkpoint to resume from, if any.

    A run directory with no checkpoint yet (stopped before its first save: killed in epoch 1,
    a NaN, a full disk) is not a dead end: ``--resume`` starts it again from its first step,
    in place. Temporary files that a kill during an atomic write left behind are removed.
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file, not a run directory; choose another --out")
    for folder in (out, out / "checkpoints"):
        remove_orphan_temps(folder)
    last = out / "checkpoints" / "last.pt"
    if cfg.resume:
        if not last.is_file():
            if _without_checkpoint(out):
                print(
                    f"note: {out}: no checkpoint yet (the run stopped before its first save); "
                    "starting it again from its first step",
                    file=sys.stderr,
                )
                _clear_run_files(out)
                return None
            raise UsageError(f"{out}: nothing to resume (no run there); start it without --resume")
        ckpt = load_checkpoint(last)
        if ckpt.get("kind") != "pretrain":
            raise UsageError(f"{last}: not a pretraining checkpoint")
        _check_resume_settings(out, ckpt["config"], cfg)
        return ckpt
    if out.exists() and any(out.iterdir()):
        if _without_checkpoint(out):
            raise UsageError(
                f"{out}: holds a run that stopped before its first checkpoint; --resume starts "
                "it again in place, or choose a new --out"
            )
        raise UsageError(f"{out}: already holds another run; choose a new --out, or --resume it")
    return None


def _check_resume_settings(out: Path, saved: dict[str, Any], cfg: TrainConfig) -> None:
    """Refuse a resume that changes anything but :data:`RESUME_MAY_CHANGE`, naming the setting,
    before any file is written. Settings an older checkpoint lacks count as their defaults; the
    augmentation is compared with the resolved recipe the run recorded in its config.yaml."""
    defaults = TrainConfig(out=str(out)).to_dict()
    for key, value in cfg.to_dict().items():
        if key in RESUME_MAY_CHANGE or key == "augment":
            continue
        before = saved.get(key, defaults.get(key))
        if _plain(before) != _plain(value):
            raise UsageError(
                f"{out}: cannot resume with {key}={value!r}: the run has {key}={before!r} "
                f"(a resume may change only {', '.join(RESUME_MAY_CHANGE[:3])}, ...)"
            )
    recorded: dict[str, Any] = {}
    config_file = out / "config.yaml"
    if config_file.is_file():
        import yaml

        try:
            recorded = (yaml.safe_load(config_file.read_text()) or {}).get("config", {})
        except yaml.YAMLError:
            recorded = {}
    recipe = {**(saved.get("augment") or {}), **(recorded.get("augment") or {})}
    for key, value in (cfg.augment or {}).items():
        if key in recipe and _plain(recipe[key]) != _plain(value):
            raise UsageError(
                f"{out}: cannot resume with augmentation {key}={value!r}: the run has "
                f"{recipe[key]!r}"
            )


def _without_checkpoint(out: Path) -> bool:
    """A dimcollapse run directory (config.yaml, only run files) with no checkpoint file."""
    if not (out / "config.yaml").is_file():
        return False
    if any(p.name not in RUN_FILES for p in out.iterdir()):
        return False
    ckpts = out / "checkpoints"
    return not (ckpts.is_dir() and any(ckpts.glob("*.pt")))


def _clear_run_files(out: Path) -> None:
    import shutil

    for name in RUN_FILES:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


class _Monitor:
    """Per-epoch collapse measurements on a fixed held-out set (rank 0 only)."""

    def __init__(self, dataset: ImageDataset | None, batch_size: int, device: torch.device):
        self.loader = (
            build_eval_loader(dataset, batch_size=batch_size, device=device)
            if dataset is not None
            else None
        )

    @torch.no_grad()
    def measure(
        self, model: ContrastiveModel, precision: str, device: torch.device, channels_last: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.loader is None:
            return {}, {}
        was_training = model.training
        model.eval()
        rep = SpectrumAccumulator(device=device)
        emb = SpectrumAccumulator(device=device)
        correct = torch.zeros((), device=device)
        total = 0
        for x, y in self.loader:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(precision, device):
                r = model.encode(x)
                z = model.head(r)
                logits = model.online_probe(r)
            rep.update(r.float())
            emb.update(z.float())
            correct += (logits.argmax(dim=1) == y).sum()
            total += y.numel()
        model.train(was_training)
        rs, es = rep.summary(), emb.summary()
        metrics = {
            "representation_rankme": rs.rankme,
            "representation_collapsed_dims": rs.collapsed_dims,
            "representation_entropy_rank": rs.entropy_rank,
            "representation_dim": rs.dim,
            "embedding_rankme": es.rankme,
            "embedding_collapsed_dims": es.collapsed_dims,
            "embedding_dim": es.dim,
            "online_probe_top1": float(correct) / max(total, 1),
        }
        spectra = {"representation": rs.singular_values, "embedding": es.singular_values}
        return metrics, spectra


class _StopSignals:
    """SIGTERM and SIGINT while training: remember the signal and let the step in progress
    finish; the loop then saves a checkpoint at that step and raises :meth:`stop`. A second
    Ctrl-C stops at once, saving nothing. Handlers are installed only in the main thread and
    restored on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        import signal

        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *_exc: object) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def stop(self, saved: str) -> BaseException:
        """The exception that ends the command (exit 130 for Ctrl-C, else 143), saying what
        was saved."""
        import signal

        return Interrupted(saved) if self.received == signal.SIGINT else Terminated(saved)


class _CheckpointClock:
    """When to save inside an epoch (``--checkpoint-every`` steps or minutes) and whether a
    signal stops the run, agreed by every process under torchrun: they compare notes every
    :attr:`AGREE_EVERY` steps (one tiny all-reduce), so all stop and save at the same step."""

    AGREE_EVERY = 8

    def __init__(self, every: str, world: int, device: torch.device) -> None:
        self.steps, self.seconds = parse_checkpoint_every(every)
        self.world, self.device = world, device
        self.since = time.monotonic()

    def decide(self, step: int, stop: bool) -> tuple[bool, bool]:
        """(stop now, save now) after global step ``step``."""
        by_steps = bool(self.steps) and step % self.steps == 0
        by_time = bool(self.seconds) and time.monotonic() - self.since >= self.seconds
        if self.world == 1:
            return stop, by_steps or by_time
        if step % self.AGREE_EVERY and not by_steps:
            return False, False
        # every process counts the steps alike; the time is rank 0's
        flags = torch.tensor([int(stop), int(by_time and dist.rank() == 0)], device=self.device)
        dist.all_reduce_sum(flags)
        return bool(flags[0]), by_steps or bool(flags[1])

    def agree_stop(self, stop: bool) -> bool:
        """Whether any process was signalled (at an epoch's end)."""
        if self.world == 1:
            return stop
        flag = torch.tensor([int(stop)], device=self.device)
        return bool(dist.all_reduce_sum(flag))

    def saved(self) -> None:
        self.since = time.monotonic()


class _Progress:
    """A tqdm bar on a terminal, plain periodic lines otherwise (rank 0 only)."""

    def __init__(self, enabled: bool, steps: int, epoch: int, epochs: int, log_every: int):
        self.enabled, self.steps, self.epoch, self.epochs = enabled, steps, epoch, epochs
        self.log_every = log_every
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=steps, desc=f"epoch {epoch}/{epochs}", leave=False, dynamic_ncols=True
            )

    def update(self, step_in_epoch: int, loss: float | None, lr: float, ips: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.3g}", img_s=f"{ips:.0f}")
        elif loss is not None:
            print(
                f"epoch {self.epoch}/{self.epochs} step {step_in_epoch}/{self.steps} "
                f"loss {loss:.4f} lr {lr:.4g} {ips:.0f} img/s",
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _open_tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: metrics.jsonl still has everything
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def train(cfg: TrainConfig, *, verbose: bool = True, stop_after: int | None = None) -> RunResult:
    """Pretrain as ``cfg`` says and return the run's metrics; see the module docstring.

    ``stop_after``: leave after this many epochs of this call (checkpointed, resumable with
    ``cfg.resume``), e.g. to fit a run into a time-limited job slot.
    """
    cfg.validate()
    joined = not dist.is_distributed()  # a caller's process group is left as it was
    rank, local_rank, world = dist.setup_from_env(
        "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"
    )
    try:
        return _train(cfg, rank, local_rank, world, verbose, stop_after)
    finally:
        if joined:
            dist.cleanup()


def _train(
    cfg: TrainConfig, rank: int, local_rank: int, world: int, verbose: bool, stop_after: int | None
) -> RunResult:
    main = rank == 0
    device = resolve_device(cfg.device, local_rank)
    precision = resolve_precision(cfg.precision, device)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"
    if cfg.batch_size % world:
        raise UsageError(f"global batch {cfg.batch_size} does not split over {world} processes")
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(cfg.out)
    resume_from = _prepare_out_dir(cfg) if main else None
    if world > 1:
        dist.barrier()
        if not main and cfg.resume and (out / "checkpoints" / "last.pt").is_file():
            resume_from = load_checkpoint(out / "checkpoints" / "last.pt")
    seed_everything(cfg.seed + rank)

    # ---- data
    common = {
        "root": cfg.data_root,
        "download": cfg.download and main,
        "seed": cfg.seed,
        "test_file": cfg.test_file,
    }
    train_set = load_dataset(cfg.dataset, "train", subset=cfg.subset, **common)
    held_out = None
    # The spectra are measured on held-out images; an npz set without a test file has none, so
    # a fixed subset of its training images stands in (said in config.yaml as monitor_split).
    monitor_split = "train" if cfg.dataset == "npz" and not cfg.test_file else "test"
    if main and cfg.monitor_samples > 0:
        held_out = load_dataset(cfg.dataset, monitor_split, **common)
        if cfg.monitor_samples < len(held_out):
            held_out = load_dataset(
                cfg.dataset, monitor_split, subset=cfg.monitor_samples, **common
            )
    aug = resolve_augment(cfg, train_set)
    per_rank = cfg.batch_size // world
    loader = build_view_loader(
        train_set,
        aug,
        batch_size=per_rank,
        device=device,
        path=cfg.data_path,
        workers=cfg.workers,
        seed=cfg.seed,
        rank=rank,
        world_size=world,
    )
    steps_per_epoch = len(loader)

    # ---- model, optimiser, schedule
    spec = model_spec(cfg, train_set, aug.image_size)
    model = build_model(spec).to(device)
    if world > 1 and use_sync_bn(cfg.sync_bn, device):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    lr = scaled_lr(cfg.base_lr, cfg.batch_size, cfg.lr_scaling)
    probe_params = list(model.online_probe.parameters())
    probe_ids = {id(q) for q in probe_params}
    groups = [
        {"params": [q for q in model.parameters() if id(q) not in probe_ids]},
        {"params": probe_params, "lr": cfg.online_probe_lr, "adapt": False},
    ]
    optimizer = build_optimizer(
        cfg.optimizer,
        groups,
        lr=lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        eta=cfg.lars_eta,
    )
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(round(min(cfg.warmup_epochs, cfg.epochs / 10) * steps_per_epoch))
    scheduler = warmup_cosine(
        optimizer,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        final_ratio=cfg.final_lr_ratio,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    start_epoch, step = 0, 0
    if resume_from is not None:
        model.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        scheduler.load_state_dict(resume_from["scheduler"])
        if resume_from.get("scaler"):
            scaler.load_state_dict(resume_from["scaler"])
        start_epoch, step = int(resume_from["epoch"]), int(resume_from["step"])
        set_rng_state(resume_from["rng"])
    forward: nn.Module = model
    if world > 1:
        forward = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        forward = torch.compile(forward)

    # ---- run directory
    resolved = {**cfg.to_dict(), "augment": dataclasses.asdict(aug)}
    head = model.head
    facts = {
        "rep_dim": model.rep_dim,
        "d0": head.d0,
        "embedding_dim": head.out_features,
        "lr": lr,
        "steps_per_epoch": steps_per_epoch,
        "world_size": world,
        "device": str(device),
        "precision": precision,
        "data_path": loader.path,
        "channels": train_set.channels,
        "image_size": aug.image_size,
        "num_classes": train_set.num_classes,
        "mean": list(train_set.mean),
        "std": list(train_set.std),
        "train_images": len(train_set),
        "monitor_split": monitor_split,
    }
    run_dir = _RunDir(out, resolved, facts, start_epoch if resume_from else None) if main else None
    if main and verbose:
        print(
            f"training {cfg.method} on {cfg.dataset} ({len(train_set):,} images, "
            f"{cfg.backbone} x{cfg.width}, rep_dim {model.rep_dim}"
            + (f", d0 {head.d0}" if head.d0 else "")
            + f") for {cfg.epochs} epochs; "
            f"{world} process(es), {device}, {precision}, data path {loader.path}; "
            f"run directory {out}",
            flush=True,
        )
    monitor = _Monitor(held_out, 512, device)
    guard = DivergenceGuard(model, precision, cfg.max_bad_steps, device)
    if resume_from is not None:
        guard.bad_steps = int(resume_from.get("bad_steps", 0))
        guard.kept = f"checkpoints/last.pt keeps the last good state (step {resume_from['step']})"
    stepper = Stepper(
        forward,
        optimizer,
        scheduler,
        scaler,
        guard,
        temperature=cfg.temperature,
        loss_convention=cfg.loss,
        online_probe=cfg.online_probe,
        precision=precision,
        device=device,
        channels_last=channels_last,
    )

    def save(epochs_done: int, step: int, line: dict[str, Any], partial: EpochTally | None) -> None:
        """checkpoints/last.pt (rank 0): at an epoch's end, or inside epoch ``epochs_done + 1``
        with the ``partial`` tally of its steps so far."""
        if not main:
            return
        save_checkpoint(
            out / "checkpoints" / "last.pt",
            {
                "kind": "pretrain",
                "model_spec": dataclasses.asdict(spec),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "epoch": epochs_done,
                "step": step,
                "step_in_epoch": 0 if partial is None else step - epochs_done * steps_per_epoch,
                "partial_epoch": None if partial is None else partial.to_state(),
                "bad_steps": guard.bad_steps,
                "rng": rng_state(),
                "config": cfg.to_dict(),
                "data": _plain(facts),
                "metrics": line,
            },
        )
        guard.kept = f"checkpoints/last.pt keeps the last good state (step {step})"

    # ---- epochs
    model.train()
    end_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    resumed_at = 0 if resume_from is None else int(resume_from.get("step_in_epoch", 0))
    last_line = resume_from.get("metrics", {}) if resume_from is not None else {}
    clock = _CheckpointClock(cfg.checkpoint_every, world, device)
    with _StopSignals() as signals:
        for epoch in range(start_epoch, end_epoch):
            first_steps = resumed_at if epoch == start_epoch else 0
            loader.set_epoch(epoch, start_step=first_steps)
            tally = EpochTally.zero(device)
            if first_steps and resume_from is not None and resume_from.get("partial_epoch"):
                tally = EpochTally.from_state(resume_from["partial_epoch"], device)
            progress = _Progress(
                main and verbose, steps_per_epoch, epoch + 1, cfg.epochs, cfg.log_every
            )
            t0 = time.perf_counter() - tally.seconds
            for i, (v1, v2, y) in enumerate(loader, start=first_steps):
                step += 1
                stepper.step(v1, v2, y, step, tally)
                if (i + 1) % cfg.log_every == 0:
                    guard.check()  # one host sync per log_every steps
                if progress.enabled and ((i + 1) % cfg.log_every == 0 or progress.bar):
                    shown = None
                    if (i + 1) % cfg.log_every == 0:
                        shown = float(tally.loss_sum / tally.good_steps.clamp(min=1))
                    ips = tally.seen * world / (time.perf_counter() - t0)
                    progress.update(i + 1, shown, scheduler.get_last_lr()[0], ips)
                if i + 1 == steps_per_epoch:
                    break  # the epoch's end saves below
                stop, due = clock.decide(step, signals.received is not None)
                if stop or due:
                    guard.check()
                    tally.seconds = time.perf_counter() - t0
                    save(epoch, step, last_line, tally)
                    clock.saved()
                    if stop:
                        dist.barrier()
                        raise signals.stop(
                            f"saved checkpoints/last.pt at step {step} "
                            f"(epoch {epoch + 1}, step {i + 1} of {steps_per_epoch})"
                        )
            progress.close()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            tally.seconds = time.perf_counter() - t0
            guard.check()
            dist.all_reduce_sum(tally.loss_sum)
            dist.all_reduce_sum(tally.probe_sum)
            dist.all_reduce_sum(tally.good_steps)
            good = max(float(tally.good_steps), 1.0)
            if main:
                measured, spectra = monitor.measure(model, precision, device, channels_last)
                line = {
                    "epoch": epoch + 1,
                    "step": step,
                    "loss": float(tally.loss_sum) / good,
                    "online_probe_loss": float(tally.probe_sum) / good,
                    "lr": scheduler.get_last_lr()[0],
                    "images_per_s": tally.seen * world / tally.seconds,
                    "epoch_seconds": tally.seconds,
                    **measured,
                }
                if cfg.max_bad_steps:
                    line["bad_steps"] = guard.bad_steps
                assert run_dir is not None
                run_dir.record(line, spectra)
                if verbose:
                    print(_epoch_text(line, cfg.epochs), flush=True)
                last_line = line
            save(epoch + 1, step, last_line, None)
            clock.saved()
            if clock.agree_stop(signals.received is not None):
                raise signals.stop(f"saved checkpoints/last.pt at the end of epoch {epoch + 1}")
    final = out / "checkpoints" / "final.pt"
    if main:
        last = out / "checkpoints" / "last.pt"
        if last.is_file() and end_epoch == cfg.epochs:
            import shutil

            from dimcollapse.fileio import atomic_path

            with atomic_path(final) as tmp:
                shutil.copyfile(last, tmp)
        assert run_dir is not None
        run_dir.close()
        if verbose:
            print(
                f"done: checkpoints in {out / 'checkpoints'}, metrics in {run_dir.metrics_path}",
                flush=True,
            )
    return RunResult(out=out, metrics=run_dir.history if run_dir else [], checkpoint=final)


@dataclass
class EpochTally:
    """What an epoch has summed so far, kept on the device (no per-step host sync); saved in a
    mid-epoch checkpoint so that a resumed epoch reports the same means as an uninterrupted one.

    loss_sum, probe_sum: summed contrastive and online-probe losses of the good steps;
    good_steps: how many steps counted (steps skipped by ``--max-bad-steps`` do not);
    seen: images this process trained on; seconds: time spent in the epoch's steps.
    """

    loss_sum: torch.Tensor
    probe_sum: torch.Tensor
    good_steps: torch.Tensor
    seen: int = 0
    seconds: float = 0.0

    @classmethod
    def zero(cls, device: torch.device) -> EpochTally:
        z = torch.zeros((), device=device)
        return cls(z.clone(), z.clone(), z.clone())

    def to_state(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum.detach().cpu(),
            "probe_sum": self.probe_sum.detach().cpu(),
            "good_steps": self.good_steps.detach().cpu(),
            "seen": self.seen,
            "seconds": self.seconds,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> EpochTally:
        return cls(
            state["loss_sum"].to(device),
            state["probe_sum"].to(device),
            state["good_steps"].to(device),
            int(state["seen"]),
            float(state["seconds"]),
        )


class Stepper:
    """Optimisation steps: forward both views, InfoNCE (Eq. 5's loss, ``losses.info_nce``) plus
    the online probe's cross-entropy, backward, optimiser and schedule. The loss stays on the
    device; the divergence guard watches every step."""

    def __init__(
        self,
        forward: nn.Module,
        optimizer: Any,
        scheduler: Any,
        scaler: Any,
        guard: DivergenceGuard,
        *,
        temperature: float,
        loss_convention: str,
        online_probe: bool,
        precision: str,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.forward, self.optimizer, self.scheduler = forward, optimizer, scheduler
        self.scaler, self.guard = scaler, guard
        self.temperature, self.loss_convention = temperature, loss_convention
        self.online_probe, self.precision = online_probe, precision
        self.device, self.channels_last = device, channels_last

    def step(
        self, v1: torch.Tensor, v2: torch.Tensor, y: torch.Tensor, step: int, tally: EpochTally
    ) -> None:
        """One optimisation step on a batch of two views ``(B, C, S, S)`` and labels ``(B,)``;
        ``step`` is the global step number it becomes (1-based), for the guard's report."""
        if self.channels_last:
            v1 = v1.contiguous(memory_format=torch.channels_last)
            v2 = v2.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device):
            _r1, z1, _r2, z2, logits = self.forward(v1, v2)
        loss = info_nce(
            z1.float(), z2.float(), temperature=self.temperature, convention=self.loss_convention
        )
        if self.online_probe:
            probe_loss = F.cross_entropy(logits.float(), y)
        else:  # keep the probe in the graph with a zero gradient: DDP expects every parameter
            probe_loss = 0.0 * logits.float().sum()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss + probe_loss).backward()
        bad = self.guard.inspect(loss.detach(), probe_loss.detach(), step)
        if not self.guard.skip_step(bad):
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        good = (~bad).to(tally.loss_sum.dtype)
        tally.loss_sum += torch.where(bad, 0.0, loss.detach())
        tally.probe_sum += torch.where(bad, 0.0, probe_loss.detach())
        tally.good_steps += good
        tally.seen += y.shape[0]


class DivergenceGuard:
    """Finds non-finite losses and gradients without a host sync per step.

    Each step's contrastive loss, online-probe loss and (outside fp16, where the GradScaler
    owns overflow) gradient norms are checked on the device; the first bad step, its cause and
    the parameter whose gradient went bad are remembered there. :meth:`check` (at log lines,
    before every checkpoint and at each epoch's end) turns a bad step into a ``UsageError``
    naming the step and cause, so no checkpoint or metrics line ever holds a diverged model.
    With ``max_bad_steps`` N > 0 every step is read at once (one sync per step), a bad step's
    update is skipped (fp16: the scaler skips it and lowers its scale) and the run stops at
    the (N+1)-th.
    """

    _CAUSES = ("", "the contrastive loss", "the online probe's loss", "a gradient")

    def __init__(
        self, model: nn.Module, precision: str, max_bad_steps: int, device: torch.device
    ) -> None:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.check_grads = precision != "fp16"
        self.precision = precision
        self.max_bad_steps = int(max_bad_steps)
        self.bad_steps = 0
        self.first_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.first_cause = torch.zeros((), dtype=torch.int64, device=device)
        self.first_param = torch.full((), -1, dtype=torch.int64, device=device)
        self.first_value = torch.zeros((), device=device)
        #: What the run directory keeps, for the message; the trainer updates it at each save.
        self.kept = "no checkpoint was saved yet (--resume starts the run again)"
        self._have: tuple[int, ...] = ()
        self._have_index = torch.zeros(0, dtype=torch.int64)

    def inspect(self, loss: torch.Tensor, probe_loss: torch.Tensor, step: int) -> torch.Tensor:
        """A device bool: whether this step is bad; the first bad step is remembered."""
        loss_bad, probe_bad = ~torch.isfinite(loss), ~torch.isfinite(probe_loss)
        bad = loss_bad | probe_bad
        cause = torch.where(loss_bad, 1, torch.where(probe_bad, 2, 3))
        param = torch.full_like(self.first_param, -1)
        if self.check_grads:
            have = tuple(i for i, p in enumerate(self.params) if p.grad is not None)
            if have:
                norms = torch.stack(torch._foreach_norm([self.params[i].grad for i in have]))
                grad_bad = ~torch.isfinite(norms)
                if self._have != have:  # the same every step: one copy to the device
                    self._have, self._have_index = have, torch.tensor(have, device=norms.device)
                where_bad = self._have_index[grad_bad.int().argmax()]
                param = torch.where(grad_bad.any(), where_bad, param)
                bad = bad | grad_bad.any()
        new = bad & (self.first_step < 0)
        self.first_step = torch.where(new, step, self.first_step)
        self.first_cause = torch.where(new, cause, self.first_cause)
        self.first_param = torch.where(new, param, self.first_param)
        self.first_value = torch.where(new, loss.float() + probe_loss.float(), self.first_value)
        return bad

    def skip_step(self, bad: torch.Tensor) -> bool:
        """With ``max_bad_steps``: whether to skip this step's update (a host sync per step;
        under torchrun every rank agrees). Without it the update is applied and :meth:`check`
        stops the run before anything is saved. fp16 never skips here: the GradScaler does."""
        if self.max_bad_steps == 0:
            return False
        flag = bad.to(torch.int64).reshape(1)
        if not bool(dist.all_reduce_sum(flag)):
            return False
        self.bad_steps += 1
        if self.bad_steps > self.max_bad_steps:
            self.check(force=True)
        self.first_step.fill_(-1)  # the next bad step is reported afresh
        return self.precision != "fp16"

    def check(self, *, force: bool = False) -> None:
        """Raise a ``UsageError`` naming the first bad step and its cause, if there was one
        (on any process)."""
        flag = (self.first_step >= 0).to(torch.int64).reshape(1)
        if not bool(dist.all_reduce_sum(flag)) and not force:
            return
        raise UsageError(self.describe())

    def describe(self) -> str:
        step = int(self.first_step)
        if step < 0:
            return "a step on another process was not finite; " + _divergence_advice(self.precision)
        cause = self._CAUSES[int(self.first_cause)]
        if int(self.first_cause) == 3:
            what = f"the gradient of {self.names[int(self.first_param)]} became non-finite"
        else:
            what = f"{cause} became {float(self.first_value)}"
        limit = f" (after {self.max_bad_steps} skipped)" if self.max_bad_steps else ""
        return f"{what} at step {step}{limit}; {self.kept}; {_divergence_advice(self.precision)}"


class _RunDir:
    """The run directory's files (rank 0): config.yaml, metrics/spectra lines, TensorBoard."""

    def __init__(
        self, out: Path, resolved: dict[str, Any], facts: dict[str, Any], resumed_epoch: int | None
    ) -> None:
        import yaml

        self.metrics_path, self.spectra_path = out / "metrics.jsonl", out / "spectra.jsonl"
        self.history: list[dict[str, Any]] = []
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            out / "config.yaml",
            yaml.safe_dump({"config": _plain(resolved), "run": _plain(facts)}, sort_keys=False),
        )
        if resumed_epoch is not None:  # drop lines of epochs the checkpoint does not hold
            for path in (self.metrics_path, self.spectra_path):
                if path.exists():
                    keep = [r for r in read_jsonl(path) if r.get("epoch", 0) <= resumed_epoch]
                    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))
            self.history = read_jsonl(self.metrics_path) if self.metrics_path.exists() else []
        self.writer = _open_tensorboard(out)

    def record(self, line: dict[str, Any], spectra: dict[str, Any]) -> None:
        """Append one epoch's metrics (and spectra) to the files and TensorBoard."""
        self.history.append(line)
        _append_line(self.metrics_path, line)
        if spectra:
            _append_line(self.spectra_path, {"epoch": line["epoch"], **spectra})
        if self.writer is not None:
            for key, value in line.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, line["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a run file. A torn last line (a crash during its append) is dropped
    with a warning on stderr; an unreadable line before the last is a UsageError."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    rows = []
    for i, ln in enumerate(lines):
        try:
            rows.append(json.loads(ln))
        except ValueError:
            if i == len(lines) - 1:
                print(
                    f"warning: {path}: dropped a torn last line (an interrupted write)",
                    file=sys.stderr,
                )
                break
            raise UsageError(f"{path}: line {i + 1} is not JSON; the file is damaged") from None
    return rows


def _divergence_advice(precision: str) -> str:
    """What to try after a non-finite loss, for the precision the run actually used."""
    if precision == "fp32":
        return "lower the learning rate (--base-lr) or lengthen the warm-up (--warmup-epochs)"
    return f"lower the learning rate, or train in fp32 (this run is {precision})"


def _append_line(path: Path, obj: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(obj) + "\n")


def _plain(obj: Any) -> Any:
    """Tuples -> lists, recursively (for YAML and weights_only checkpoints)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _epoch_text(m: dict[str, Any], epochs: int) -> str:
    text = (
        f"epoch {m['epoch']}/{epochs}  loss {m['loss']:.4f}  lr {m['lr']:.4g}  "
        f"{m['images_per_s']:.0f} img/s"
    )
    if "representation_rankme" in m:
        text += (
            f"  | r: RankMe {m['representation_rankme']:.1f}, collapsed "
            f"{m['representation_collapsed_dims']}/{m['representation_dim']}"
            f"  z: RankMe {m['embedding_rankme']:.1f}, collapsed "
            f"{m['embedding_collapsed_dims']}/{m['embedding_dim']}"
            f"  | online probe top-1 {100 * m['online_probe_top1']:.1f}%"
        )
    return text
