"""Optimisers and the learning-rate schedule of the paper's recipe, and the optimisation of a
training run (:func:`build_optimization`, shared by ``train`` and ``bench``).

The paper's code trains with LARS (momentum, trust coefficient eta and weight decay as in
:class:`~dimcollapse.config.TrainConfig`, whose fields give every default here; 1-D parameters
excluded from decay and adaptation), lr 4.8 for a global batch of 4096 (0.3 per 256 images,
linear scaling), 10 warm-up epochs then a cosine decay to ``final_lr_ratio`` x lr. The names
accepted here (:data:`OPTIMIZERS`, :data:`LR_SCALING_RULES`) are the choices of TrainConfig's
``optimizer`` and ``lr_scaling`` fields, defined beside it in :mod:`dimcollapse.config`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from dimcollapse.config import LR_SCALING_RULES, OPTIMIZERS, TrainConfig
from dimcollapse.errors import UsageError


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al., 2017) as in the paper's code.

    For each parameter ``p`` with gradient ``grad``, per step::

        g = grad + weight_decay * p                       (unless p is excluded)
        if not excluded and ||p|| > 0 and ||g|| > 0:
            g = g * eta * ||p|| / ||g||                   (trust ratio)
        mu = momentum * mu + g                            (mu starts at 0)
        p = p - lr * mu

    Parameters with ``ndim <= 1`` (biases, BatchNorm scales and shifts) are excluded from both the
    weight decay and the trust-ratio adaptation when ``exclude_1d`` is true (the default), as in
    the paper's code: for them the update is plain SGD with momentum. Options can be set per
    parameter group; a group with ``adapt=False`` gets no trust ratio at all (plain SGD with
    momentum and weight decay), e.g. a linear probe trained beside the network.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = TrainConfig.momentum,
        weight_decay: float = TrainConfig.weight_decay,
        eta: float = TrainConfig.lars_eta,
        exclude_1d: bool = True,
    ) -> None:
        _check_hyperparameters(lr, weight_decay, momentum, eta)
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, exclude_1d=exclude_1d
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group.get("adapt", True):
                    g = g.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else g
                elif not (group["exclude_1d"] and p.ndim <= 1):
                    g = g.add(p, alpha=group["weight_decay"])
                    p_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(g)
                    # torch.where, not Python ifs, so that no value leaves the device.
                    ratio = torch.where(
                        (p_norm > 0) & (g_norm > 0),
                        group["eta"] * p_norm / g_norm,
                        torch.ones_like(p_norm),
                    )
                    g = g * ratio
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                mu = state["momentum_buffer"]
                mu.mul_(group["momentum"]).add_(g)
                p.add_(mu, alpha=-group["lr"])
        return loss


def build_optimizer(
    name: str,
    params_or_model: nn.Module | Iterable[Tensor] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    momentum: float = TrainConfig.momentum,
    eta: float = TrainConfig.lars_eta,
) -> torch.optim.Optimizer:
    """Build ``lars``, ``sgd`` (with momentum) or ``adamw`` over a model or parameters.

    ``params_or_model``: a module (its parameters that require grad), an iterable of tensors, or
    an iterable of parameter-group dicts (other keys, such as a group's own ``lr``, are kept).
    Every group is split in two: parameters with ``ndim >= 2`` get ``weight_decay``; 1-D ones
    (biases, BatchNorm) get none, for all three optimisers. LARS also skips its trust ratio for
    them. A 1-D parameter carrying the attribute :data:`MATRIX_LIKE_ATTR` counts as a weight:
    the trainable diagonal projector's ``w`` (``z = r * w``) is the diagonal of the linear
    projector it is compared with in section 6.3, so it gets the same weight decay and trust
    ratio; treated as a bias it would move by plain momentum SGD at the full learning rate
    (4.8 in the ImageNet recipe), hundreds of times faster than any weight. ``momentum`` is used by LARS and SGD, ``eta`` by LARS only; AdamW keeps its default
    betas.
    """
    if name not in OPTIMIZERS:
        raise UsageError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    _check_hyperparameters(lr, weight_decay, momentum, eta)
    groups = _decay_groups(params_or_model, weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def _decay_groups(
    params_or_model: nn.Module | Iterable[Tensor] | Iterable[dict[str, Any]], weight_decay: float
) -> list[dict[str, Any]]:
    if isinstance(params_or_model, nn.Module):
        given: list[dict[str, Any]] = [{"params": list(params_or_model.parameters())}]
    else:
        items = list(params_or_model)
        if items and all(isinstance(item, dict) for item in items):
            given = [dict(item) for item in items]
        else:
            given = [{"params": items}]
    groups: list[dict[str, Any]] = []
    for group in given:
        params = group.pop("params")
        params = [params] if isinstance(params, Tensor) else list(params)
        params = [p for p in params if p.requires_grad]
        decay = [p for p in params if _matrix_like(p)]
        no_decay = [p for p in params if not _matrix_like(p)]
        # LARS's exclusion follows the same split, so a 1-D weight marked as matrix-like (the
        # diagonal projector) gets the trust ratio and the weight decay
        if decay:
            groups.append(
                {**group, "params": decay, "weight_decay": weight_decay, "exclude_1d": False}
            )
        if no_decay:
            groups.append({**group, "params": no_decay, "weight_decay": 0.0, "exclude_1d": True})
    if not groups:
        raise UsageError("the optimizer got no trainable parameters")
    return groups


#: Attribute that marks a 1-D parameter as a weight (decayed and LARS-adapted), not a bias.
MATRIX_LIKE_ATTR = "dimcollapse_matrix_like"


def _matrix_like(p: Tensor) -> bool:
    return p.ndim >= 2 or bool(getattr(p, MATRIX_LIKE_ATTR, False))


def _check_hyperparameters(lr: float, weight_decay: float, momentum: float, eta: float) -> None:
    if not lr > 0:
        raise UsageError(f"learning rate must be > 0, got {lr!r}")
    if not weight_decay >= 0:
        raise UsageError(f"weight decay must be >= 0, got {weight_decay!r}")
    if not 0 <= momentum < 1:
        raise UsageError(f"momentum must be in [0, 1), got {momentum!r}")
    if not eta > 0:
        raise UsageError(f"LARS eta must be > 0, got {eta!r}")


def scaled_lr(base_lr: float, batch_size: int, rule: str = "linear") -> float:
    """Learning rate for a global batch, from ``base_lr`` given per 256 images.

    ``"linear"`` (Goyal et al., 2017; SimCLR and the paper's code): ``base_lr * batch / 256``,
    so 0.3 at batch 4096 gives the paper's 4.8. ``"sqrt"``: ``base_lr * sqrt(batch / 256)``,
    the square-root scaling SimCLR suggests for small batches, equal to the linear rule at 256.
    """
    if rule not in LR_SCALING_RULES:
        raise UsageError(f"unknown lr scaling rule {rule!r}; choose one of linear, sqrt")
    if not base_lr > 0:
        raise UsageError(f"base learning rate must be > 0, got {base_lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise UsageError(f"batch size must be a positive integer, got {batch_size!r}")
    ratio = batch_size / 256
    return base_lr * (ratio if rule == "linear" else math.sqrt(ratio))


class _WarmupCosine:
    """The multiplier of :func:`warmup_cosine`; a callable object, so that ``LambdaLR``'s
    ``state_dict`` records its settings (it keeps the ``__dict__`` of callable objects)."""

    def __init__(self, total_steps: int, warmup_steps: int, final_ratio: float) -> None:
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_ratio = final_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.final_ratio + (1.0 - self.final_ratio) * cosine


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_steps: int,
    final_ratio: float = TrainConfig.final_lr_ratio,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay, stepped once per optimiser step.

    Multiplier of each group's base lr at step ``s`` (the value in force for the ``s``-th update,
    counting from 0):

    * ``s < warmup_steps``: ``(s + 1) / warmup_steps``, from ``1 / warmup_steps`` up to 1;
    * then ``final_ratio + (1 - final_ratio) * (1 + cos(pi * t)) / 2`` with
      ``t = (s - warmup_steps) / (total_steps - warmup_steps)``: 1 at the end of the warm-up,
      ``final_ratio`` at ``total_steps`` and after.

    The paper's code: 10 warm-up epochs, ``final_ratio`` TrainConfig's ``final_lr_ratio``. Call ``scheduler.step()`` after
    each ``optimizer.step()``. ``state_dict()`` holds the step and these settings; to resume,
    build the scheduler again on the restored optimiser and ``load_state_dict``.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
        raise UsageError(f"total_steps must be a positive integer, got {total_steps!r}")
    if (
        isinstance(warmup_steps, bool)
        or not isinstance(warmup_steps, int)
        or not 0 <= warmup_steps <= total_steps
    ):
        raise UsageError(
            f"warmup_steps must be an integer in [0, {total_steps}], got {warmup_steps!r}"
        )
    if not 0 <= final_ratio <= 1:
        raise UsageError(f"final_ratio must be in [0, 1], got {final_ratio!r}")
    schedule = _WarmupCosine(total_steps, warmup_steps, float(final_ratio))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


@dataclass
class Optimization:
    """The optimiser (backbone and head, plus the online probe's own group), its warm-up +
    cosine schedule, the fp16 GradScaler (disabled otherwise) and the peak learning rate."""

    optimizer: Any
    scheduler: Any
    scaler: Any
    lr: float


def build_optimization(
    model: nn.Module,
    cfg: TrainConfig,
    *,
    total_steps: int,
    warmup_steps: int,
    precision: str,
    device: torch.device,
) -> Optimization:
    """The optimisation of a :class:`~dimcollapse.model.ContrastiveModel` from ``cfg``'s
    optimiser, ``base_lr``, ``batch_size``, ``lr_scaling``, ``online_probe_lr``,
    ``weight_decay``, ``momentum``, ``lars_eta`` and ``final_lr_ratio``: ``lr = base_lr x
    batch / 256`` (or its square root), LARS/SGD/AdamW over the backbone and head, and the
    online probe with its own learning rate and no LARS adaptation."""
    lr = scaled_lr(cfg.base_lr, cfg.batch_size, cfg.lr_scaling)
    probe_params = list(model.online_probe.parameters())
    probe_ids = {id(q) for q in probe_params}
    groups = [
        {"params": [q for q in model.parameters() if id(q) not in probe_ids]},
        {"params": probe_params, "lr": cfg.online_probe_lr, "adapt": False},
    ]
    opt = build_optimizer(
        cfg.optimizer,
        groups,
        lr=lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        eta=cfg.lars_eta,
    )
    scheduler = warmup_cosine(
        opt, total_steps=total_steps, warmup_steps=warmup_steps, final_ratio=cfg.final_lr_ratio
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return Optimization(opt, scheduler, scaler, lr)
