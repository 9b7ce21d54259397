"""The offline linear probe on frozen features.

* **Recipe** (the paper code's ``linear_probe.py``): ``Linear(D, classes)`` initialised
  N(0, 0.01) with zero bias, SGD momentum 0.9, lr 0.1, weight decay 1e-6 (on weight and bias),
  batch 256, 100 epochs, cross-entropy, cosine annealing of the lr to 0 over the epochs, stepped
  once per epoch. The paper's script builds that cosine schedule but never steps it (its lr stays
  0.1); we step it, as intended. The paper's script reports the best test accuracy over the
  epochs; we report the accuracy after the last epoch (no model selection on the test set).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dimcollapse.errors import UsageError
from dimcollapse.probe.features import check_splits, standardized_splits
from dimcollapse.progress import track

#: The recipe's defaults (module docstring).
EPOCHS = 100
LR = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-6
BATCH_SIZE = 256

#: ``batches(epoch, generator)``: one epoch's ``(features (B, D), int64 labels (B,))`` batches.
EpochBatches = Callable[[int, torch.Generator], Iterable[tuple[Tensor, Tensor]]]


def _topk_correct(logits: Tensor, y: Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    pred = logits.topk(k, dim=1).indices
    return int((pred == y.view(-1, 1)).any(dim=1).sum())


def _fit_linear(
    dim: int,
    num_classes: int,
    epoch_batches: EpochBatches,
    *,
    epochs: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
) -> tuple[nn.Linear, float]:
    """Train ``Linear(dim, num_classes)`` on the batches ``epoch_batches(epoch, gen)`` yields.

    Returns the layer and the last epoch's mean training loss.
    """
    gen = torch.Generator().manual_seed(int(seed))
    layer = nn.Linear(dim, num_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(num_classes, dim, generator=gen) * 0.01)
        layer.bias.zero_()
    layer.to(device)
    opt = torch.optim.SGD(layer.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    last_loss = math.nan
    desc = f"linear probe: {epochs} epochs on {dim}-d features"
    for epoch in track(range(epochs), desc, total=epochs):
        total, count = torch.zeros((), device=device, dtype=torch.float64), 0
        for xb, yb in epoch_batches(epoch, gen):
            loss = F.cross_entropy(layer(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * yb.shape[0]
            count += yb.shape[0]
        sched.step()
        last_loss = float(total) / max(count, 1)
        if not math.isfinite(last_loss):
            raise UsageError(
                f"the linear probe's loss became {last_loss} in epoch {epoch + 1}; lower its "
                "learning rate or standardise the features"
            )
    return layer, last_loss


@torch.no_grad()
def _evaluate(
    layer: nn.Linear, x: Tensor, y: Tensor, num_classes: int, batch: int = 4096
) -> tuple[float, float | None]:
    top1 = top5 = 0
    for start in range(0, x.shape[0], batch):
        logits = layer(x[start : start + batch])
        yb = y[start : start + batch]
        top1 += _topk_correct(logits, yb, 1)
        if num_classes >= 5:
            top5 += _topk_correct(logits, yb, 5)
    n = max(int(x.shape[0]), 1)
    return top1 / n, (top5 / n if num_classes >= 5 else None)


def linear_probe_from_batches(
    epoch_batches: EpochBatches,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    epochs: int,
    seed: int,
    device: torch.device,
    lr: float = LR,
    momentum: float = MOMENTUM,
    weight_decay: float = WEIGHT_DECAY,
) -> dict[str, Any]:
    """A linear layer trained on ``epoch_batches``, scored on ``train_x (N, D)``/``train_y`` and
    ``test_x (M, D)``/``test_y`` (on ``device``, prepared as the batches' features are).

    Returns ``{"top1", "top5", "train_top1", "train_loss"}``.
    """
    layer, loss = _fit_linear(
        train_x.shape[1],
        num_classes,
        epoch_batches,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
    )
    top1, top5 = _evaluate(layer, test_x, test_y, num_classes)
    train_top1, _ = _evaluate(layer, train_x, train_y, num_classes)
    return {"top1": top1, "top5": top5, "train_top1": train_top1, "train_loss": loss}


def _shuffled_batches(x: Tensor, y: Tensor, batch_size: int) -> EpochBatches:
    """Per epoch: ``x``, ``y`` in a fresh random order (from the fit's generator), in batches."""
    n = x.shape[0]

    def batches(_epoch: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(n, generator=gen).to(x.device)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            yield x.index_select(0, idx), y.index_select(0, idx)

    return batches


def _check_recipe(
    epochs: int, batch_size: int, lr: float, weight_decay: float, momentum: float
) -> None:
    for name, ok in (
        ("epochs", epochs >= 1),
        ("batch size", batch_size >= 1),
        ("learning rate", lr > 0),
        ("weight decay", weight_decay >= 0),
        ("momentum", 0 <= momentum < 1),
    ):
        if not ok:
            raise UsageError(f"linear probe: invalid {name}")


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    epochs: int = EPOCHS,
    lr: float = LR,
    momentum: float = MOMENTUM,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
    device: str | torch.device = "cpu",
    standardize: bool = True,
) -> dict[str, Any]:
    """Offline linear probe on precomputed features, with the paper code's recipe.

    ``train_x (N, D)``, ``train_y (N,)`` int, ``test_x (M, D)``, ``test_y (M,)`` int, labels in
    ``0..num_classes-1``. SGD (``lr``, ``momentum``, ``weight_decay``), cosine over ``epochs``,
    shuffled batches of ``batch_size`` (the last partial one kept), cross-entropy; features
    standardised with the train statistics unless ``standardize=False``
    (:mod:`dimcollapse.probe.features`). Deterministic given ``seed`` on the CPU (initialisation
    and shuffling come from one seeded generator).

    Returns ``{"top1", "top5", "train_top1", "train_loss", "standardize"}``: offline accuracies as
    fractions in [0, 1] on the test set (``top5`` None for fewer than 5 classes), the train-set
    accuracy and the last epoch's mean loss.
    """
    check_splits(train_x, train_y, test_x, test_y, num_classes)
    _check_recipe(epochs, batch_size, lr, weight_decay, momentum)
    dev = torch.device(device)
    xtr, xte, _stats = standardized_splits(train_x, test_x, standardize=standardize, device=dev)
    ytr = train_y.detach().to(dev, torch.int64)
    yte = test_y.detach().to(dev, torch.int64)
    scores = linear_probe_from_batches(
        _shuffled_batches(xtr, ytr, batch_size),
        xtr,
        ytr,
        xte,
        yte,
        num_classes=num_classes,
        epochs=epochs,
        seed=seed,
        device=dev,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
    )
    return {**scores, "standardize": bool(standardize)}
