"""Frozen features of a model over a dataset; checks on (features, labels); standardisation.

* **Standardisation** (default on, ``standardize=False`` follows the paper exactly): features
  are centred and scaled per dimension with the *train* set's mean and standard deviation
  (float64 statistics) before the probe. The paper's recipe was tuned for ResNet-50 features on
  ImageNet; a batch-norm-free linear layer at lr 0.1 on raw features of other backbones or raw
  pixels converges badly or diverges when their scale is far from 1. A per-dimension affine map
  does not change the set of linear classifiers (only the optimisation's conditioning and the
  weight decay's effect), and, being diagonal, it keeps the rank of the feature covariance: it
  does not hide dimensional collapse. Dimensions whose standard deviation is below
  ``1e-6 x`` the largest one (numerically constant, e.g. dead ReLUs) are only centred, not
  blown up to unit variance.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dimcollapse.choices import FEATURE_BATCH, SPACES
from dimcollapse.data.loaders import build_eval_loader
from dimcollapse.errors import UsageError
from dimcollapse.progress import track
from dimcollapse.runtime import autocast, resolve_precision

#: Dimensions whose train std is below this fraction of the largest are only centred.
STD_REL_FLOOR = 1e-6


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _features_of(model: nn.Module, x: Tensor, space: str) -> Tensor:
    r = model.encode(x)
    return model.head(r) if space == "embedding" else r


def extract_features(
    model: nn.Module,
    dataset: Any,
    *,
    space: str = "representation",
    device: str | torch.device | None = None,
    batch_size: int = FEATURE_BATCH,
    precision: str = "fp32",
    workers: int = 0,
    label: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Frozen features of every image of ``dataset``, in the dataset's order.

    ``model`` is a :class:`~dimcollapse.model.ContrastiveModel`; it is put in eval mode for the
    pass (and back to its former mode after), without gradients. ``space``: ``representation``
    (r = backbone output, ``(N, rep_dim)``) or ``embedding`` (z = head(r), ``(N, out_dim)``).
    ``device``: where to compute (the model is moved there, as ``nn.Module.to`` does); default:
    the model's device. ``precision``: ``fp32`` | ``bf16`` | ``fp16`` | ``auto`` (autocast).
    Images come unaugmented and normalised from :func:`~dimcollapse.data.loaders.build_eval_loader`.
    ``label`` names the model in the progress a command shows (:mod:`dimcollapse.progress`).

    Returns ``(features float32 (N, D) on the CPU, labels int64 (N,))``.
    """
    if space not in SPACES:
        raise UsageError(f"unknown feature space {space!r}; choose from {', '.join(SPACES)}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    dev = torch.device(device) if device is not None else _device_of(model)
    model.to(dev)
    prec = resolve_precision(precision, dev)
    loader = build_eval_loader(dataset, batch_size=batch_size, device=dev, workers=workers)
    feats: list[Tensor] = []
    labels: list[Tensor] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            desc = f"embedding {len(dataset):,} images" + (f" with {label}" if label else "")
            for x, y in track(loader, desc, total=len(loader)):
                with autocast(prec, dev):
                    f = _features_of(model, x, space)
                feats.append(f.float().cpu())
                labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise UsageError("the dataset is empty: no features to extract")
    return torch.cat(feats), torch.cat(labels).to(torch.int64)


def _check_split(x: Tensor, y: Tensor, num_classes: int, what: str) -> None:
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise UsageError(f"{what}: features and labels must be torch tensors")
    if x.ndim != 2:
        raise UsageError(f"{what} features must be 2-D (N x D), got shape {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise UsageError(f"{what}: {x.shape[0]} feature rows but labels of shape {tuple(y.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise UsageError(f"{what}: no features (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise UsageError(f"{what} features must be floating point, got {x.dtype}")
    if y.is_floating_point() or y.is_complex():
        raise UsageError(f"{what} labels must be integers, got {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise UsageError(
            f"{what} labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}"
        )
    if not bool(torch.isfinite(x).all()):
        raise UsageError(f"{what} features hold NaN or infinite values")


def check_splits(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int
) -> None:
    """UsageError unless both splits are finite ``(N, D)`` features with labels in range."""
    if num_classes < 2:
        raise UsageError(f"need at least 2 classes, got {num_classes}")
    _check_split(train_x, train_y, num_classes, "train")
    _check_split(test_x, test_y, num_classes, "test")
    if train_x.shape[1] != test_x.shape[1]:
        raise UsageError(
            f"train features are {train_x.shape[1]}-d but test features {test_x.shape[1]}-d"
        )


def standardization(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension ``(mean, scale)`` of ``x (N, D)`` (float64 statistics, float32 results).

    ``scale`` is the population standard deviation, replaced by 1 for dimensions whose standard
    deviation is below ``STD_REL_FLOOR`` times the largest (those are only centred).
    """
    x64 = x.detach().to(torch.float64)
    mean = x64.mean(dim=0)
    std = x64.std(dim=0, unbiased=False) if x64.shape[0] > 1 else torch.zeros_like(mean)
    floor = STD_REL_FLOOR * float(std.max()) if std.numel() else 0.0
    scale = torch.where(std > max(floor, 1e-30), std, torch.ones_like(std))
    return mean.to(torch.float32), scale.to(torch.float32)


def standardized_splits(
    train_x: Tensor, test_x: Tensor, *, standardize: bool, device: torch.device
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """``train_x (N, D)`` and ``test_x (M, D)`` as float32 on ``device``, standardised with the
    train set's :func:`standardization` when ``standardize``; and that ``(mean, scale)`` on
    ``device`` (None without ``standardize``), for features computed later."""
    xtr = train_x.detach().to(device, torch.float32)
    xte = test_x.detach().to(device, torch.float32)
    if not standardize:
        return xtr, xte, None
    mean, scale = (t.to(device) for t in standardization(train_x))
    return (xtr - mean) / scale, (xte - mean) / scale, (mean, scale)
