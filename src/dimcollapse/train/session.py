"""One process's training session from start (or resume) to end: built from the config (data,
model, optimization, a resumed checkpoint's state), then run epoch by epoch (steps, held-out
measurements, checkpoints) to its result. :func:`dimcollapse.train.run.train` drives it."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dimcollapse import distributed as dist
from dimcollapse.checkpoint import Checkpoint, load_model_state
from dimcollapse.config import TrainConfig
from dimcollapse.data.eval_loader import FEATURE_BATCH
from dimcollapse.data.loaders import build_view_loader
from dimcollapse.errors import UsageError
from dimcollapse.fileio import atomic_path, plain_data
from dimcollapse.model import build_model
from dimcollapse.optim import build_optimization
from dimcollapse.rundir import RunLayout, RunWriter
from dimcollapse.runtime import (
    resolve_device,
    resolve_precision,
    rng_state,
    seed_everything,
    set_rng_state,
)
from dimcollapse.train.build import (
    configure_backends,
    load_training_data,
    model_spec,
    resolve_augment,
    use_sync_bn,
)
from dimcollapse.train.guard import DivergenceGuard
from dimcollapse.train.heldout import HeldOutMonitor, HeldOutNotFinite
from dimcollapse.train.interrupt import CheckpointClock, StopSignals
from dimcollapse.train.progress import Progress, epoch_text
from dimcollapse.train.resume import check_resumed_spec, prepare_out_dir
from dimcollapse.train.step import EpochTally, build_stepper


@dataclass
class RunResult:
    """What a finished run left behind."""

    out: Path
    metrics: list[dict[str, Any]]
    checkpoint: Path


class Session:
    """Everything one process needs to train: built in ``__init__``, run by :meth:`run`."""

    def __init__(
        self,
        cfg: TrainConfig,
        rank: int,
        local_rank: int,
        world: int,
        verbose: bool,
        saved: Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg, self.rank, self.world, self.main = cfg, rank, world, rank == 0
        self.verbose = verbose and self.main
        self.device = resolve_device(cfg.device, local_rank)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.channels_last = (
            cfg.channels_last if cfg.channels_last is not None else self.device.type == "cuda"
        )
        if cfg.batch_size % world:
            raise UsageError(f"global batch {cfg.batch_size} does not split over {world} processes")
        configure_backends(cfg.deterministic, self.device)
        self.layout = RunLayout(cfg.out)
        resume_from = self._resume_checkpoint(saved)
        seed_everything(cfg.seed + rank)
        self._build_data()
        self._build_model()
        self._restore(resume_from)  # the checkpoint is not kept: its tensors are loaded
        self.facts = self._facts()
        self.writer = self._open_writer() if self.main else None
        self.monitor = HeldOutMonitor(self.held_out, FEATURE_BATCH, self.device)

    # ---- building

    def _resume_checkpoint(self, saved: Mapping[str, Any] | None) -> Checkpoint | None:
        ckpt = prepare_out_dir(self.cfg, saved) if self.main else None
        if self.world > 1:
            dist.barrier()  # rank 0 has checked (and perhaps cleared) the run directory
            if not self.main and self.cfg.resume and self.layout.last.is_file():
                ckpt = Checkpoint.load(self.layout.last)
        return ckpt

    def _build_data(self) -> None:
        cfg = self.cfg
        self.train_set, self.held_out, self.monitor_split = load_training_data(cfg, self.main)
        self.aug = resolve_augment(cfg, self.train_set)
        self.loader = build_view_loader(
            self.train_set,
            self.aug,
            batch_size=cfg.batch_size // self.world,
            device=self.device,
            path=cfg.data_path,
            workers=cfg.workers,
            seed=cfg.seed,
            rank=self.rank,
            world_size=self.world,
        )
        self.steps_per_epoch = len(self.loader)

    def _build_model(self) -> None:
        cfg, device = self.cfg, self.device
        self.spec = model_spec(cfg, self.train_set, self.aug.image_size)
        model = build_model(self.spec).to(device)
        if self.world > 1 and use_sync_bn(cfg.sync_bn, device):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimization = build_optimization(
            model,
            cfg,
            total_steps=cfg.epochs * self.steps_per_epoch,
            warmup_steps=round(min(cfg.warmup_epochs, cfg.epochs / 10) * self.steps_per_epoch),
            precision=self.precision,
            device=device,
        )
        self.guard = DivergenceGuard(model, self.precision, cfg.max_bad_steps, device)
        self.stepper = build_stepper(
            self._forward_module(),
            self.optimization,
            self.guard,
            cfg,
            precision=self.precision,
            device=device,
            channels_last=self.channels_last,
        )

    def _forward_module(self) -> nn.Module:
        """The model as the step calls it: wrapped in DDP under torchrun, compiled if asked."""
        forward: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            forward = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.cfg.compile:
            forward = torch.compile(forward)
        return forward

    def _restore(self, ckpt: Checkpoint | None) -> None:
        """Load the resumed checkpoint's state (or start at step 0); keep of it only where the
        run resumes: the epoch, the step within it and that epoch's partial tally."""
        self.start_epoch, self.step, self.resumed_at = 0, 0, 0
        self.resumed = ckpt is not None
        self.resumed_tally: dict[str, Any] | None = None
        self.last_line: dict[str, Any] = {}
        if ckpt is None:
            return
        opt = self.optimization
        check_resumed_spec(ckpt, self.spec, str(self.layout.last))
        load_model_state(self.model, ckpt.model, str(self.layout.last))
        opt.optimizer.load_state_dict(ckpt.optimizer)
        opt.scheduler.load_state_dict(ckpt.scheduler)
        if ckpt.scaler:
            opt.scaler.load_state_dict(ckpt.scaler)
        set_rng_state(ckpt.rng)
        self.start_epoch, self.step, self.resumed_at = ckpt.epoch, ckpt.step, ckpt.step_in_epoch
        self.resumed_tally = ckpt.partial_epoch
        self.last_line = ckpt.metrics
        self.guard.bad_steps = ckpt.bad_steps
        self.guard.kept = f"{RunLayout.LAST} keeps the last good state (step {ckpt.step})"

    def _facts(self) -> dict[str, Any]:
        """What config.yaml and every checkpoint record about this run beyond its config."""
        ds, head = self.train_set, self.model.head
        return {
            "rep_dim": self.model.rep_dim,
            "d0": head.d0,
            "embedding_dim": head.out_features,
            "lr": self.optimization.lr,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.world,
            "device": str(self.device),
            "precision": self.precision,
            "data_path": self.loader.path,
            "channels": ds.channels,
            "image_size": self.aug.image_size,
            "num_classes": ds.num_classes,
            "mean": list(ds.mean),
            "std": list(ds.std),
            "train_images": len(ds),
            "monitor_split": self.monitor_split,
        }

    def _open_writer(self) -> RunWriter:
        resolved = {**self.cfg.to_dict(), "augment": dataclasses.asdict(self.aug)}
        resumed = self.start_epoch if self.resumed else None
        return RunWriter(self.layout, resolved, self.facts, resumed)

    # ---- running

    def run(self, stop_after: int | None) -> RunResult:
        cfg = self.cfg
        end = cfg.epochs if stop_after is None else min(cfg.epochs, self.start_epoch + stop_after)
        self._announce()
        self.model.train()
        clock = CheckpointClock(cfg.checkpoint_interval, self.world, self.device)
        with StopSignals() as signals:
            for epoch in range(self.start_epoch, end):
                tally = self._train_epoch(epoch, signals, clock)
                self._end_epoch(epoch, tally)
                clock.saved()
                if clock.agree_stop(signals.received is not None):
                    raise signals.stop(f"saved {RunLayout.LAST} at the end of epoch {epoch + 1}")
        return self._finish(end)

    def _announce(self) -> None:
        if not self.verbose:
            return
        cfg, head = self.cfg, self.model.head
        print(
            f"training {cfg.method} on {cfg.dataset} ({len(self.train_set):,} images, "
            f"{cfg.backbone} x{cfg.width}, rep_dim {self.model.rep_dim}"
            + (f", d0 {head.d0}" if head.d0 else "")
            + f") for {cfg.epochs} epochs; "
            f"{self.world} process(es), {self.device}, {self.precision}, data path "
            f"{self.loader.path}; run directory {self.layout.root}",
            flush=True,
        )

    def _start_tally(self, epoch: int) -> tuple[int, EpochTally]:
        """(the step of the epoch to start at, the epoch's tally so far): a mid-epoch resume
        continues both where the checkpoint left them."""
        if epoch == self.start_epoch and self.resumed_at and self.resumed_tally:
            return self.resumed_at, EpochTally.from_state(self.resumed_tally, self.device)
        return 0, EpochTally.zero(self.device)

    def _train_epoch(self, epoch: int, signals: StopSignals, clock: CheckpointClock) -> EpochTally:
        """One epoch's steps; a save inside it when the clock says so, a stop at a signal."""
        cfg, steps = self.cfg, self.steps_per_epoch
        first, tally = self._start_tally(epoch)
        self.loader.set_epoch(epoch, start_step=first)
        progress = Progress(self.verbose, steps, epoch + 1, cfg.epochs)
        t0 = time.perf_counter() - tally.seconds
        for i, (v1, v2, y) in enumerate(self.loader, start=first):
            self.step += 1
            self.stepper.step(v1, v2, y, self.step, tally)
            logged = (i + 1) % cfg.log_every == 0
            if logged:
                self.guard.check()  # one host sync per log_every steps
            self._show(progress, i, tally, t0, logged)
            if i + 1 == steps:
                break  # the epoch's end saves
            stop, due = clock.decide(self.step, signals.received is not None)
            if stop or due:
                self.guard.check()  # never save a diverged model
                tally.seconds = time.perf_counter() - t0
                self._save(epoch, tally)
                clock.saved()
                if stop:
                    dist.barrier()
                    raise signals.stop(
                        f"saved {RunLayout.LAST} at step {self.step} "
                        f"(epoch {epoch + 1}, step {i + 1} of {steps})"
                    )
        progress.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        tally.seconds = time.perf_counter() - t0
        return tally

    def _show(self, progress: Progress, i: int, tally: EpochTally, t0: float, logged: bool) -> None:
        if not progress.enabled or not (logged or progress.bar is not None):
            return
        shown = float(tally.loss_sum / tally.good_steps.clamp(min=1)) if logged else None
        ips = tally.seen * self.world / (time.perf_counter() - t0)
        lr = self.optimization.scheduler.get_last_lr()[0]
        progress.update(i + 1, shown, lr, ips)

    def _end_epoch(self, epoch: int, tally: EpochTally) -> None:
        """Check, measure and record the epoch (rank 0), then save its checkpoint."""
        self.guard.check()
        for total in (tally.loss_sum, tally.probe_sum, tally.good_steps):
            dist.all_reduce_sum(total)
        if self.main:
            line, spectra = self._metrics_line(epoch, tally)
            assert self.writer is not None
            self.writer.record(line, spectra)
            if self.verbose:
                print(epoch_text(line, self.cfg.epochs), flush=True)
            self.last_line = line
        self._save(epoch + 1, None)

    def _metrics_line(self, epoch: int, tally: EpochTally) -> tuple[dict[str, Any], dict[str, Any]]:
        """The epoch's metrics line and the held-out spectra (both spectra as lists)."""
        try:
            measured, spectra = self.monitor.measure(
                self.model, self.precision, self.device, self.channels_last
            )
        except HeldOutNotFinite:
            raise UsageError(self.guard.describe_held_out(epoch + 1, self.step)) from None
        good = max(float(tally.good_steps), 1.0)
        line = {
            "epoch": epoch + 1,
            "step": self.step,
            "loss": float(tally.loss_sum) / good,
            "online_probe_loss": float(tally.probe_sum) / good,
            "lr": self.optimization.scheduler.get_last_lr()[0],
            "images_per_s": tally.seen * self.world / tally.seconds,
            "epoch_seconds": tally.seconds,
            **measured,
        }
        if self.cfg.max_bad_steps:
            line["bad_steps"] = self.guard.bad_steps
        return line, spectra

    def _save(self, epochs_done: int, partial: EpochTally | None) -> None:
        """checkpoints/last.pt (rank 0): at an epoch's end, or inside epoch ``epochs_done + 1``
        with the ``partial`` tally of its steps so far."""
        if not self.main:
            return
        opt = self.optimization
        Checkpoint(
            model_spec=dataclasses.asdict(self.spec),
            model=self.model.state_dict(),
            config=self.cfg.to_dict(),
            data=plain_data(self.facts),
            epoch=epochs_done,
            step=self.step,
            optimizer=opt.optimizer.state_dict(),
            scheduler=opt.scheduler.state_dict(),
            scaler=opt.scaler.state_dict() if opt.scaler.is_enabled() else None,
            rng=rng_state(),
            metrics=self.last_line,
            step_in_epoch=0 if partial is None else self.step - epochs_done * self.steps_per_epoch,
            partial_epoch=None if partial is None else partial.to_state(),
            bad_steps=self.guard.bad_steps,
        ).save(self.layout.last)
        self.guard.kept = f"{RunLayout.LAST} keeps the last good state (step {self.step})"

    def _finish(self, end_epoch: int) -> RunResult:
        """final.pt once every epoch is trained; the run's result."""
        layout = self.layout
        if self.main:
            if layout.last.is_file() and end_epoch == self.cfg.epochs:
                with atomic_path(layout.final) as tmp:
                    shutil.copyfile(layout.last, tmp)
            assert self.writer is not None
            self.writer.close()
            if self.verbose:
                print(
                    f"done: checkpoints in {layout.checkpoints}, metrics in {layout.metrics}",
                    flush=True,
                )
        history = self.writer.history if self.writer else []
        return RunResult(out=layout.root, metrics=history, checkpoint=layout.final)
