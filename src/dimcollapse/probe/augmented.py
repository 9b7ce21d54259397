"""The linear probe trained on augmented views of the train images (``augment=True``, slower).

* **On-the-fly augmentation**: each epoch the linear layer is trained on features of freshly
  augmented train images, one view each, random resized crop (scale 0.08-1, bilinear) +
  horizontal flip, as the paper's ``linear_probe.py``; test images are not augmented.
  Standardisation statistics come from the unaugmented train features.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from dimcollapse.data.augment_config import AugmentConfig
from dimcollapse.data.loaders import build_view_loader
from dimcollapse.probe.features import check_splits, standardized_splits
from dimcollapse.probe.linear import EpochBatches, linear_probe_from_batches
from dimcollapse.runtime import autocast


def _probe_augmentation(image_size: int) -> AugmentConfig:
    """Random resized crop and horizontal flip only (no colour, blur or solarisation)."""
    return replace(
        AugmentConfig(image_size=image_size),
        jitter_prob=0.0,
        grayscale_prob=0.0,
        blur_prob=(0.0, 0.0),
        solarize_prob=(0.0, 0.0),
        interpolation="bilinear",
    )


def _augmented_batches(
    model: nn.Module,
    dataset: Any,
    *,
    d0: int | None,
    stats: tuple[Tensor, Tensor] | None,
    batch_size: int,
    seed: int,
    device: torch.device,
    precision: str,
    workers: int,
) -> EpochBatches:
    """Per epoch: shuffled batches of (frozen r of one augmented view, or ``r[:, :d0]``,
    standardised with ``stats = (mean, scale)`` unless None; int64 labels)."""
    in_memory = dataset.tensors() is not None
    loader = build_view_loader(
        dataset,
        _probe_augmentation(int(dataset.image_size)),
        batch_size=min(batch_size, len(dataset)),
        device=device,
        path="device" if in_memory else "workers",
        workers=workers,
        seed=seed,
        drop_last=False,
    )

    def batches(epoch: int, _gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        loader.set_epoch(epoch)
        model.eval()
        for view, _other, y in loader:  # one view: the second is discarded
            with torch.no_grad(), autocast(precision, device):
                r = model.encode(view)
            f = r.float()
            if d0 is not None:
                f = f[:, :d0]
            if stats is not None:
                mean, scale = stats
                f = (f - mean) / scale
            yield f, y.to(torch.int64)

    return batches


def augmented_linear_probe(
    model: nn.Module,
    train_set: Any,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    d0: int | None,
    epochs: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    precision: str,
    workers: int,
    standardize: bool,
) -> dict[str, Any]:
    """:func:`~dimcollapse.probe.linear_probe`'s result, the layer trained with the same recipe
    on features of augmented ``train_set`` images (``model``'s r, or ``r[:, :d0]``).

    ``train_x (N, D)``, ``train_y (N,)`` are ``train_set``'s unaugmented frozen features (the
    standardisation statistics and the train accuracy), ``test_x (M, D)``, ``test_y (M,)`` the
    test set's. ``batch_size`` images per step, computed in autocast ``precision``.
    """
    check_splits(train_x, train_y, test_x, test_y, num_classes)
    xtr, xte, stats = standardized_splits(train_x, test_x, standardize=standardize, device=device)
    batches = _augmented_batches(
        model,
        train_set,
        d0=d0,
        stats=stats,
        batch_size=batch_size,
        seed=seed,
        device=device,
        precision=precision,
        workers=workers,
    )
    scores = linear_probe_from_batches(
        batches,
        xtr,
        train_y.to(device),
        xte,
        test_y.to(device),
        num_classes=num_classes,
        epochs=epochs,
        seed=seed,
        device=device,
    )
    return {**scores, "standardize": bool(standardize)}
