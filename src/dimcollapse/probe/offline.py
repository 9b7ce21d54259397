"""Both offline probes of precomputed features, linear and kNN, in one result.

For baselines the report needs (raw pixels, a randomly initialised backbone), foreign models,
and, through :func:`offline_result`, the probe of a trained run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from dimcollapse.probe.knn import DEFAULT_KS, knn_probe, knn_skipped
from dimcollapse.probe.linear import EPOCHS, linear_probe


def offline_result(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    linear: dict[str, Any],
    *,
    num_classes: int,
    epochs: int,
    knn: bool,
    device: str | torch.device,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, Any]:
    """:func:`probe_features`'s result from ``linear`` (a :func:`~dimcollapse.probe.linear_probe`
    result on these features), with the kNN accuracies of ``train_x``/``test_x`` added (None
    without ``knn``)."""
    result: dict[str, Any] = {
        "probe": "offline",
        "dim": int(train_x.shape[1]),
        "epochs": int(epochs),
        "train_images": int(train_x.shape[0]),
        "test_images": int(test_x.shape[0]),
        "top1": linear["top1"],
        "top5": linear["top5"],
        "train_top1": linear["train_top1"],
        "standardize": linear["standardize"],
    }
    if knn:
        result.update(
            knn_probe(
                train_x, train_y, test_x, test_y, ks=ks, num_classes=num_classes, device=device
            )
        )
    else:
        result.update(knn_skipped(ks))
    return result


def probe_features(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    epochs: int = EPOCHS,
    knn: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    standardize: bool = True,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, Any]:
    """Offline linear (and kNN) probe of precomputed features: the result dict of
    :func:`~dimcollapse.probe.probe_run`.

    ``train_x (N, D)``, ``train_y (N,)``, ``test_x (M, D)``, ``test_y (M,)``. For baselines the
    report needs, e.g. raw pixels (``images.flatten(1).float()``) or a randomly initialised
    backbone's features. Returns ``probe: "offline"``, ``dim``, ``epochs``, ``train_images``,
    ``test_images``, ``top1``, ``top5``, ``train_top1``, ``standardize`` and ``knn_top1_k<k>``
    for each k (``None`` when ``knn=False``).
    """
    linear = linear_probe(
        train_x,
        train_y,
        test_x,
        test_y,
        num_classes=num_classes,
        epochs=epochs,
        seed=seed,
        device=device,
        standardize=standardize,
    )
    return offline_result(
        train_x,
        train_y,
        test_x,
        test_y,
        linear,
        num_classes=num_classes,
        epochs=epochs,
        knn=knn,
        device=device,
        ks=ks,
    )
