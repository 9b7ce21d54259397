"""The timed training step: the trainer's own model and step (:class:`dimcollapse.train.Stepper`),
so a speed-up or a regression of the step shows in ``bench`` and in ``train`` alike.

What the rest of :mod:`dimcollapse.bench` uses of it is :func:`build_step` and
:data:`BENCH_HEAD`, nothing else:

``build_step(s, device) -> (step, info)``

* ``s``: the resolved settings of :func:`~dimcollapse.bench.settings.resolve_settings`; read here:
  ``seed``, ``backbone``, ``channels``, ``small_stem``, ``stem``, ``width``, ``channels_last``, ``batch``
  (for the learning rate), ``compile`` and ``precision``, and ``method`` when present (default
  :data:`BENCH_HEAD`; no command-line option sets it).
* ``step(v1, v2)``: one training step (forward of both views, loss, online probe, backward,
  optimiser and schedule, the divergence guard's device-side checks) on two float view batches
  ``(B, C, S, S)`` already on ``device``; it returns nothing and does not synchronise, so the
  caller times it.
* ``info``: the model description merged into the result and printed by the report: ``head``,
  ``rep_dim``, ``embedding_dim``, ``loss``, ``optimizer``, ``parameters``.

The model is a :class:`~dimcollapse.model.ContrastiveModel` with the ``simclr-mlp`` method's head
and the online probe (10 classes, random labels); the loss (the method's recipe, with its
default options) and the optimiser are :class:`~dimcollapse.config.TrainConfig`'s defaults at
the bench's batch, built by the trainer's own :func:`~dimcollapse.train.build_stepper`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from dimcollapse.config import TrainConfig
from dimcollapse.losses import build_recipe
from dimcollapse.model import ModelSpec, build_model
from dimcollapse.optim import build_optimization
from dimcollapse.train import DivergenceGuard, EpochTally, build_stepper

#: The head between backbone and loss in every timed step.
BENCH_HEAD = "simclr-mlp"
#: Classes of the online probe's random labels (the probe's cost hardly depends on it).
_CLASSES = 10


def build_step(s: dict[str, Any], device: torch.device) -> tuple[Callable[..., None], dict]:
    """The timed training step ``step(v1, v2)`` and a description of the model."""
    method = s.get("method", BENCH_HEAD)
    model = _bench_model(s, device, method)
    cfg = TrainConfig(method=method, batch_size=s["batch"], online_probe=True)
    optimization = build_optimization(
        model,
        cfg,
        total_steps=1_000_000,  # the warm-up and cosine never matter to the timing
        warmup_steps=0,
        precision=s["precision"],
        device=device,
    )
    stepper = build_stepper(
        torch.compile(model) if s["compile"] else model,
        optimization,
        DivergenceGuard(model, s["precision"], 0, device),
        cfg,
        precision=s["precision"],
        device=device,
        channels_last=s["channels_last"],
    )
    tally = EpochTally.zero(device)
    labels: dict[int, Tensor] = {}
    count = {"steps": 0}

    def step(v1: Tensor, v2: Tensor) -> None:
        batch = v1.shape[0]
        if batch not in labels:
            gen = torch.Generator().manual_seed(s["seed"])
            labels[batch] = torch.randint(0, _CLASSES, (batch,), generator=gen).to(device)
        count["steps"] += 1
        stepper.step(v1, v2, labels[batch], count["steps"], tally)

    info = {
        "head": method,
        "rep_dim": model.rep_dim,
        "embedding_dim": model.head.out_features,
        "loss": f"{build_recipe(cfg).describe()}, plus the online probe",
        "optimizer": f"{cfg.optimizer} lr {optimization.lr:g} weight decay {cfg.weight_decay:g}",
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return step, info


def _bench_model(s: dict[str, Any], device: torch.device, method: str) -> Any:
    """The benchmark's ContrastiveModel (its own seed, the global RNG untouched), in train mode."""
    spec = ModelSpec(
        method=method,
        backbone=s["backbone"],
        width=s["width"],
        in_channels=s["channels"],
        small_stem=s["small_stem"],
        stem=s.get("stem"),
        num_classes=_CLASSES,
        seed=s["seed"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        model = build_model(spec).to(device)
    if s["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    return model
