"""The evaluation protocol of the reproduction: which training images are labelled, which
validate, and a linear probe whose regularisation is chosen on the validation images.

* **Splits** (:func:`protocol_splits`): pretraining sees every training image, unlabelled. From
  the training images a seeded draw sets aside a class-balanced *validation* split
  (``val_per_class`` per class) and, disjoint from it, a fixed class-balanced *labelled* subset
  (``labelled_per_class`` per class). Every row of the report (each method, raw pixels, a random
  network) is probed on the same labelled subset, so rows differ only in their features. A
  second row trains on *all* training labels except the validation split.
* **Length**: the labelled row trains for the recipe's epochs, the all-labels row for a tenth
  of them (:data:`ALL_LABELS_EPOCH_DIVISOR`).
* **Regularisation** (:func:`tuned_linear_probe`): the linear probe (the paper code's recipe,
  :mod:`~dimcollapse.probe.linear`) is trained once per weight decay of
  :data:`WEIGHT_DECAY_GRID`; the one with the best validation accuracy (ties: the larger weight
  decay) is kept, and only it is scored on the test images. The test set decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dimcollapse.errors import UsageError
from dimcollapse.probe.linear import EPOCHS, linear_probe
from dimcollapse.probe.offline import offline_result

#: The weight decays the validation split chooses from (the paper's 1e-6 is the first).
WEIGHT_DECAY_GRID = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1)
#: The all-labels row trains for a tenth of the labelled row's epochs: on Fashion-MNIST it has
#: 55 times the images, so 10 epochs are 2,150 SGD steps of 256 (the labelled row's 100 epochs
#: of 1,000 images are 400), and 100 would cost 7 x 80 s of one core per run.
ALL_LABELS_EPOCH_DIVISOR = 10


@dataclass(frozen=True)
class ProtocolSplits:
    """Indices into the training images (1-D int64 tensors, sorted, pairwise disjoint)."""

    #: the fixed class-balanced labelled subset the main probe row trains on
    labelled: Tensor
    #: the validation split that chooses each probe's regularisation
    val: Tensor
    #: every training image outside the validation split (the all-labels row trains on these)
    all_labels: Tensor


def protocol_splits(
    labels: Tensor, *, labelled_per_class: int, val_per_class: int, seed: int
) -> ProtocolSplits:
    """Draw the validation split and the labelled subset from training ``labels (N,)``.

    Per class, a permutation from a generator seeded by ``seed`` gives the first
    ``val_per_class`` images to validation and the next ``labelled_per_class`` to the labelled
    subset. UsageError when a class has fewer than their sum.
    """
    if labelled_per_class < 1 or val_per_class < 1:
        raise UsageError(
            "the probe protocol needs at least 1 labelled and 1 validation image per class"
        )
    y = labels.detach().cpu().long()
    gen = torch.Generator().manual_seed(int(seed))
    labelled, val = [], []
    need = labelled_per_class + val_per_class
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).flatten()
        if members.numel() < need:
            raise UsageError(
                f"class {c} has {members.numel()} training images; the probe protocol needs "
                f"{need} ({val_per_class} validation + {labelled_per_class} labelled)"
            )
        order = members[torch.randperm(members.numel(), generator=gen)]
        val.append(order[:val_per_class])
        labelled.append(order[val_per_class:need])
    val_idx = torch.cat(val).sort().values
    in_val = torch.zeros(y.numel(), dtype=torch.bool)
    in_val[val_idx] = True
    return ProtocolSplits(
        labelled=torch.cat(labelled).sort().values,
        val=val_idx,
        all_labels=torch.nonzero(~in_val).flatten(),
    )


def tuned_linear_probe(
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    num_classes: int,
    epochs: int = EPOCHS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    grid: tuple[float, ...] = WEIGHT_DECAY_GRID,
    knn: bool = True,
) -> dict[str, Any]:
    """Linear probe of ``train = (x (N, D), y (N,))`` with the weight decay of ``grid`` that
    scores best on ``val``, scored once on ``test``; plus the kNN probe of ``train`` on ``test``.

    Returns the offline probe fields (``top1``, ``top5``, ``train_top1``, ``dim``,
    ``train_images``, ``test_images``, ``knn_top1_k<k>``, None without ``knn``), and ``weight_decay`` (chosen),
    ``val_top1`` (its validation accuracy), ``val_by_weight_decay`` and ``labels`` (N).
    """
    (xtr, ytr), (xva, yva), (xte, yte) = train, val, test
    common = dict(num_classes=num_classes, epochs=int(epochs), seed=int(seed), device=device)
    by_wd = {}
    for wd in grid:
        by_wd[float(wd)] = linear_probe(xtr, ytr, xva, yva, weight_decay=float(wd), **common)[
            "top1"
        ]
    best = max(by_wd.values())
    chosen = max(wd for wd, acc in by_wd.items() if acc == best)  # ties: more regularisation
    scored = linear_probe(xtr, ytr, xte, yte, weight_decay=chosen, **common)
    result = offline_result(
        xtr, ytr, xte, yte, scored, num_classes=num_classes, epochs=epochs, knn=knn, device=device
    )
    result.update(
        labels=int(xtr.shape[0]),
        weight_decay=chosen,
        val_top1=best,
        val_by_weight_decay={f"{wd:g}": acc for wd, acc in by_wd.items()},
    )
    return result


def protocol_probes(
    features: Tensor,
    labels: Tensor,
    test: tuple[Tensor, Tensor],
    splits: ProtocolSplits,
    *,
    num_classes: int,
    epochs: int = EPOCHS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    all_labels: bool = True,
) -> dict[str, dict[str, Any]]:
    """Both rows of the protocol for the training images' ``features (N, D)`` and ``labels``:
    ``{"full": the labelled-subset row, "all_labels": the all-labels row}`` (the second only
    with ``all_labels``, for ``epochs // ALL_LABELS_EPOCH_DIVISOR`` epochs), each chosen on the
    same validation split."""
    y = labels.long()
    val = (features[splits.val], y[splits.val])
    common = dict(num_classes=num_classes, epochs=epochs, seed=seed, device=device)
    rows = {
        "full": tuned_linear_probe(
            (features[splits.labelled], y[splits.labelled]), val, test, **common
        )
    }
    if all_labels:
        rows["all_labels"] = tuned_linear_probe(
            (features[splits.all_labels], y[splits.all_labels]),
            val,
            test,
            knn=False,
            **{**common, "epochs": max(1, int(epochs) // ALL_LABELS_EPOCH_DIVISOR)},
        )
    return rows
