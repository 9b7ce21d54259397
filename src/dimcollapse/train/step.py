"""One optimisation step, shared by ``train`` and ``bench`` (so a benchmark times the trainer's
own code): the per-epoch tally and the step itself, built by :func:`build_stepper` from the
config; the loss is the method's (:func:`dimcollapse.losses.build_recipe`), the optimiser,
schedule and scaler it steps come from :func:`dimcollapse.optim.build_optimization`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dimcollapse.config import TrainConfig
from dimcollapse.losses import LossFn, build_recipe
from dimcollapse.optim import Optimization
from dimcollapse.runtime import autocast
from dimcollapse.train.guard import DivergenceGuard


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
    """Optimisation steps: forward both views, the method's loss ``loss_fn(z1, z2)`` (a scalar
    from the ``(B, D)`` embeddings, :data:`dimcollapse.losses.LOSSES`) plus the online probe's
    cross-entropy, backward, optimiser and schedule. The loss stays on the device; the
    divergence guard watches every step."""

    def __init__(
        self,
        forward: nn.Module,
        optimization: Optimization,
        guard: DivergenceGuard,
        *,
        loss_fn: LossFn,
        online_probe: bool,
        precision: str,
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.forward, self.guard = forward, guard
        self.optimizer = optimization.optimizer
        self.scheduler = optimization.scheduler
        self.scaler = optimization.scaler
        self.loss_fn = loss_fn
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
        loss = self.loss_fn(z1.float(), z2.float())
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
        tally.loss_sum += torch.where(bad, 0.0, loss.detach())
        tally.probe_sum += torch.where(bad, 0.0, probe_loss.detach())
        tally.good_steps += (~bad).to(tally.good_steps.dtype)
        tally.seen += y.shape[0]


def build_stepper(
    forward: nn.Module,
    optimization: Optimization,
    guard: DivergenceGuard,
    cfg: TrainConfig,
    *,
    precision: str,
    device: torch.device,
    channels_last: bool,
) -> Stepper:
    """The :class:`Stepper` of a run of ``cfg``: the loss of its method's recipe
    (:func:`dimcollapse.losses.build_recipe`) and ``cfg.online_probe``; ``train`` and ``bench``
    both build theirs here."""
    return Stepper(
        forward,
        optimization,
        guard,
        loss_fn=build_recipe(cfg).loss_fn,
        online_probe=cfg.online_probe,
        precision=precision,
        device=device,
        channels_last=channels_last,
    )
