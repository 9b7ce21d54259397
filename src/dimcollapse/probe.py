"""Offline evaluation of frozen features: linear probe, kNN probe, feature extraction.

*Offline* here means: after pretraining, on a frozen backbone (``model.eval()``, no gradients),
with a fresh linear classifier trained from scratch. It is not the *online* probe of
:mod:`dimcollapse.train` (``online_probe_top1`` in ``metrics.jsonl``), a linear layer trained
alongside the backbone on ``r.detach()`` of augmented views and measured on a held-out subset each
epoch. The keys ``top1``/``top5`` of every result here are offline linear-probe accuracies, and
every result carries ``probe: "offline"``.

Documented choices:

* **Recipe** (the paper code's ``linear_probe.py``): ``Linear(D, classes)`` initialised
  N(0, 0.01) with zero bias, SGD momentum 0.9, lr 0.1, weight decay 1e-6 (on weight and bias),
  batch 256, 100 epochs, cross-entropy, cosine annealing of the lr to 0 over the epochs, stepped
  once per epoch. The paper's script builds that cosine schedule but never steps it (its lr stays
  0.1); we step it, as intended. The paper's script reports the best test accuracy over the
  epochs; we report the accuracy after the last epoch (no model selection on the test set).
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
* **Features**: ``full`` is the representation ``r`` (backbone output, as the paper probes);
  ``subvector`` is exactly ``r[:, :d0]``, the part DirectCLR's loss sees (section 6.3, "linear
  probe on subvector z", 47.9% against 62.7% for the full r on ImageNet). For ``fixed-lowrank``
  runs, ``r[:, :d0]`` is the same slice of r, which is not the sub-space its fixed projector
  keeps (that one is rotated by a random orthogonal matrix).
* **kNN**: cosine similarity, the k most similar train rows vote with weight
  ``exp(similarity / 0.07)`` (InstDisc's rule, as in solo-learn and lightly's kNN benchmarks);
  the class with the largest total weight wins (ties: the lowest class index); k is clipped to
  the train set size. Computed in the features' own dtype (float32, or float64 if given), in
  batches of test rows: memory O(batch x N_train).
* **On-the-fly augmentation** (``augment=True``, slower): each epoch the linear layer is trained
  on features of freshly augmented train images, one view each, random resized crop
  (scale 0.08-1, bilinear) + horizontal flip, as the paper's ``linear_probe.py``; test images
  are not augmented. Standardisation statistics come from the unaugmented train features.

Accuracies are fractions in [0, 1]; ``top5`` is ``None`` for fewer than 5 classes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dimcollapse.errors import UsageError

#: What :func:`probe_run` can probe: the whole representation r, or DirectCLR's r[:, :d0].
FEATURE_SETS = ("full", "subvector")
#: Where :func:`extract_features` reads: the backbone output r or the head output z.
SPACES = ("representation", "embedding")
#: InstDisc's temperature for the kNN vote weights exp(sim / T).
KNN_TEMPERATURE = 0.07
DEFAULT_KS = (20, 200)
#: Dimensions whose train std is below this fraction of the largest are only centred.
STD_REL_FLOOR = 1e-6


# ----------------------------------------------------------------------------------------------
# feature extraction


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
    batch_size: int = 512,
    precision: str = "fp32",
    workers: int = 0,
) -> tuple[Tensor, Tensor]:
    """Frozen features of every image of ``dataset``, in the dataset's order.

    ``model`` is a :class:`~dimcollapse.model.ContrastiveModel`; it is put in eval mode for the
    pass (and back to its former mode after), without gradients. ``space``: ``representation``
    (r = backbone output, ``(N, rep_dim)``) or ``embedding`` (z = head(r), ``(N, out_dim)``).
    ``device``: where to compute (the model is moved there, as ``nn.Module.to`` does); default:
    the model's device. ``precision``: ``fp32`` | ``bf16`` | ``fp16`` | ``auto`` (autocast).
    Images come unaugmented and normalised from :func:`~dimcollapse.data.loaders.build_eval_loader`.

    Returns ``(features float32 (N, D) on the CPU, labels int64 (N,))``.
    """
    from dimcollapse.data.loaders import build_eval_loader
    from dimcollapse.runtime import autocast, resolve_precision

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
            for x, y in loader:
                with autocast(prec, dev):
                    f = _features_of(model, x, space)
                feats.append(f.float().cpu())
                labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not feats:
        raise UsageError("the dataset is empty: no features to extract")
    return torch.cat(feats), torch.cat(labels).to(torch.int64)


# ----------------------------------------------------------------------------------------------
# checks and standardisation


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


def _check_pair(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int
) -> None:
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


# ----------------------------------------------------------------------------------------------
# linear probe


def _topk_correct(logits: Tensor, y: Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    pred = logits.topk(k, dim=1).indices
    return int((pred == y.view(-1, 1)).any(dim=1).sum())


def _fit_linear(
    dim: int,
    num_classes: int,
    epoch_batches: Callable[[int, torch.Generator], Iterable[tuple[Tensor, Tensor]]],
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
    for epoch in range(epochs):
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
def _evaluate(layer: nn.Linear, x: Tensor, y: Tensor, num_classes: int, batch: int = 4096):
    top1 = top5 = 0
    for s in range(0, x.shape[0], batch):
        logits = layer(x[s : s + batch])
        yb = y[s : s + batch]
        top1 += _topk_correct(logits, yb, 1)
        if num_classes >= 5:
            top5 += _topk_correct(logits, yb, 5)
    n = max(int(x.shape[0]), 1)
    return top1 / n, (top5 / n if num_classes >= 5 else None)


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    epochs: int = 100,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-6,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    standardize: bool = True,
) -> dict[str, Any]:
    """Offline linear probe on precomputed features, with the paper code's recipe.

    ``train_x (N, D)``, ``train_y (N,)`` int, ``test_x (M, D)``, ``test_y (M,)`` int, labels in
    ``0..num_classes-1``. SGD (``lr``, ``momentum``, ``weight_decay``), cosine over ``epochs``,
    shuffled batches of ``batch_size`` (the last partial one kept), cross-entropy; features
    standardised with the train statistics unless ``standardize=False`` (module docstring).
    Deterministic given ``seed`` on the CPU (initialisation and shuffling come from one seeded
    generator).

    Returns ``{"top1", "top5", "train_top1", "train_loss", "standardize"}``: offline accuracies as
    fractions in [0, 1] on the test set (``top5`` None for fewer than 5 classes), the train-set
    accuracy and the last epoch's mean loss.
    """
    _check_pair(train_x, train_y, test_x, test_y, num_classes)
    for name, ok in (
        ("epochs", epochs >= 1),
        ("batch size", batch_size >= 1),
        ("learning rate", lr > 0),
        ("weight decay", weight_decay >= 0),
        ("momentum", 0 <= momentum < 1),
    ):
        if not ok:
            raise UsageError(f"linear probe: invalid {name}")
    dev = torch.device(device)
    xtr = train_x.detach().to(dev, torch.float32)
    xte = test_x.detach().to(dev, torch.float32)
    if standardize:
        mean, scale = standardization(train_x)
        mean, scale = mean.to(dev), scale.to(dev)
        xtr = (xtr - mean) / scale
        xte = (xte - mean) / scale
    ytr = train_y.detach().to(dev, torch.int64)
    yte = test_y.detach().to(dev, torch.int64)
    n = xtr.shape[0]

    def batches(_epoch: int, gen: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(n, generator=gen).to(dev)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            yield xtr.index_select(0, idx), ytr.index_select(0, idx)

    layer, loss = _fit_linear(
        xtr.shape[1],
        num_classes,
        batches,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
        device=dev,
    )
    top1, top5 = _evaluate(layer, xte, yte, num_classes)
    train_top1, _ = _evaluate(layer, xtr, ytr, num_classes)
    return {
        "top1": top1,
        "top5": top5,
        "train_top1": train_top1,
        "train_loss": loss,
        "standardize": bool(standardize),
    }


# ----------------------------------------------------------------------------------------------
# kNN probe


def knn_predict(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    num_classes: int,
    temperature: float = KNN_TEMPERATURE,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> dict[int, Tensor]:
    """Weighted cosine kNN predictions of ``test_x (M, D)`` from ``train_x (N, D)``, ``train_y (N,)``.

    For each requested k (clipped to N): the k train rows most similar by cosine similarity vote
    for their label with weight ``exp(sim / temperature)``; the largest total wins (ties: the
    lowest class index). Returns ``{k requested: int64 (M,) predictions on the CPU}``. Works in
    float64 when either feature set is float64, else float32; memory O(batch_size x N).
    """
    if not ks or any(int(k) < 1 for k in ks):
        raise UsageError(f"kNN k values must be at least 1, got {list(ks)}")
    if temperature <= 0:
        raise UsageError(f"kNN temperature must be positive, got {temperature}")
    dev = torch.device(device)
    dtype = torch.float64 if torch.float64 in (train_x.dtype, test_x.dtype) else torch.float32
    train = F.normalize(train_x.detach().to(dev, dtype), dim=1)
    labels = train_y.detach().to(dev, torch.int64)
    n = train.shape[0]
    used = {int(k): min(int(k), n) for k in ks}
    kmax = max(used.values())
    out: dict[int, list[Tensor]] = {k: [] for k in used}
    for s in range(0, test_x.shape[0], batch_size):
        q = F.normalize(test_x[s : s + batch_size].detach().to(dev, dtype), dim=1)
        sim = q @ train.T  # (B, N)
        top_sim, top_idx = sim.topk(kmax, dim=1, largest=True, sorted=True)
        top_lab = labels[top_idx]
        weights = torch.exp(top_sim / temperature)
        for k, kk in used.items():
            scores = torch.zeros(q.shape[0], num_classes, device=dev, dtype=dtype)
            scores.scatter_add_(1, top_lab[:, :kk], weights[:, :kk])
            out[k].append(scores.argmax(dim=1).cpu())
    return {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.int64) for k, v in out.items()}


def knn_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    num_classes: int,
    temperature: float = KNN_TEMPERATURE,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Offline weighted cosine kNN accuracy (see :func:`knn_predict`) for each k in ``ks``.

    Shapes as :func:`knn_predict`, plus ``test_y (M,)``. Returns ``{"knn_top1_k<k>": fraction in
    [0, 1]}`` for each requested k (named by the requested k even when it was clipped to the
    train set size), plus ``knn_temperature``.
    """
    _check_pair(train_x, train_y, test_x, test_y, num_classes)
    preds = knn_predict(
        train_x,
        train_y,
        test_x,
        ks=ks,
        num_classes=num_classes,
        temperature=temperature,
        batch_size=batch_size,
        device=device,
    )
    y = test_y.detach().cpu().to(torch.int64)
    result: dict[str, Any] = {
        f"knn_top1_k{k}": float((p == y).double().mean()) for k, p in preds.items()
    }
    result["knn_temperature"] = float(temperature)
    return result


# ----------------------------------------------------------------------------------------------
# probe on precomputed features (baselines: raw pixels, random backbone)


def probe_features(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    num_classes: int,
    epochs: int = 100,
    knn: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    standardize: bool = True,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, Any]:
    """Offline linear (and kNN) probe of precomputed features: the result dict of :func:`probe_run`.

    ``train_x (N, D)``, ``train_y (N,)``, ``test_x (M, D)``, ``test_y (M,)``. For baselines the
    report needs, e.g. raw pixels (``images.flatten(1).float()``) or a randomly initialised
    backbone's features. Returns ``probe: "offline"``, ``dim``, ``epochs``, ``train_images``,
    ``test_images``, ``top1``, ``top5``, ``train_top1``, ``standardize`` and ``knn_top1_k<k>``
    for each k (``None`` when ``knn=False``).
    """
    lin = linear_probe(
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
    result: dict[str, Any] = {
        "probe": "offline",
        "dim": int(train_x.shape[1]),
        "epochs": int(epochs),
        "train_images": int(train_x.shape[0]),
        "test_images": int(test_x.shape[0]),
        "top1": lin["top1"],
        "top5": lin["top5"],
        "train_top1": lin["train_top1"],
        "standardize": lin["standardize"],
    }
    if knn:
        result.update(
            knn_probe(
                train_x, train_y, test_x, test_y, ks=ks, num_classes=num_classes, device=device
            )
        )
    else:
        result.update({f"knn_top1_k{k}": None for k in ks})
        result["knn_temperature"] = None
    return result


# ----------------------------------------------------------------------------------------------
# probe of a trained run


def result_dir(run_or_checkpoint: str | os.PathLike[str]) -> Path:
    """Where results about a run go: the run directory itself, or for a checkpoint file its
    parent's parent when that is a run directory (holds ``config.yaml``), else its directory."""
    p = Path(run_or_checkpoint)
    if p.is_dir():
        return p
    run = p.parent.parent
    return run if (run / "config.yaml").is_file() else p.parent


def load_run_data(
    ckpt: dict[str, Any],
    split: str,
    *,
    data_root: str | None = None,
    subset: int | None = None,
    seed: int = 0,
) -> Any:
    """The ``split`` of the dataset a checkpoint was trained on (its config's name, root and
    test file; ``data_root`` overrides the root), optionally a seeded random ``subset``."""
    from dimcollapse.data.datasets import load_dataset

    cfg = ckpt.get("config") or {}
    data = ckpt.get("data") or {}
    name = cfg.get("dataset")
    if not name:
        raise UsageError("the checkpoint does not say which dataset it was trained on")
    root = data_root if data_root is not None else cfg.get("data_root")
    test_file = cfg.get("test_file")
    image_size = int(data["image_size"]) if name == "imagefolder" and "image_size" in data else None
    return load_dataset(
        name,
        split,
        root=root,
        subset=subset,
        seed=seed,
        test_file=test_file,
        image_size=image_size,
    )


def _feature_slice(model: nn.Module, ckpt: dict[str, Any], features: str) -> int | None:
    """None for the full r, d0 for the sub-vector; UsageError for a run without d0."""
    if features not in FEATURE_SETS:
        raise UsageError(f"unknown features {features!r}; choose from {', '.join(FEATURE_SETS)}")
    if features == "full":
        return None
    d0 = getattr(model.head, "d0", None)
    if d0 is None:
        method = (ckpt.get("config") or {}).get("method") or getattr(model.head, "method", "?")
        raise UsageError(
            f"--features subvector needs a run with d0 (directclr or fixed-lowrank); "
            f"this run is {method}"
        )
    return int(d0)


def _augmented_batches(
    model: nn.Module,
    dataset: Any,
    *,
    d0: int | None,
    mean: Tensor | None,
    scale: Tensor | None,
    batch_size: int,
    seed: int,
    device: torch.device,
    precision: str,
    workers: int,
) -> Callable[[int, torch.Generator], Iterator[tuple[Tensor, Tensor]]]:
    """Per epoch: shuffled batches of (standardised frozen features of one augmented view, y)."""
    from dataclasses import replace

    from dimcollapse.data.augment import AugmentConfig
    from dimcollapse.data.loaders import build_view_loader
    from dimcollapse.runtime import autocast

    cfg = AugmentConfig(image_size=int(dataset.image_size))
    cfg = replace(
        cfg,
        jitter_prob=0.0,
        grayscale_prob=0.0,
        blur_prob=(0.0, 0.0),
        solarize_prob=(0.0, 0.0),
        interpolation="bilinear",
    )
    in_memory = dataset.tensors() is not None
    loader = build_view_loader(
        dataset,
        cfg,
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
            if mean is not None and scale is not None:
                f = (f - mean) / scale
            yield f, y.to(torch.int64)

    return batches


def probe_run(
    run_or_checkpoint: str | os.PathLike[str],
    *,
    features: str = "full",
    knn: bool = True,
    epochs: int = 100,
    device: str = "auto",
    data_root: str | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    augment: bool = False,
    seed: int = 0,
    precision: str = "fp32",
    batch_size: int = 256,
    extract_batch_size: int = 512,
    workers: int = 0,
    standardize: bool = True,
) -> dict[str, Any]:
    """Offline linear (and kNN) probe of a trained run's frozen backbone on its own dataset.

    ``features``: ``full`` (r, ``rep_dim``-d) or ``subvector`` (exactly ``r[:, :d0]``; only for
    runs with d0). The dataset, its root and test file come from the checkpoint's config
    (``data_root`` overrides the root); the whole labelled splits are used (not the run's
    pretraining ``subset``) unless ``train_subset``/``test_subset`` ask for seeded random
    subsets. ``augment``: train the linear layer on features of augmented train images, fresh
    each epoch (module docstring); kNN always uses unaugmented features.

    Returns ``probe: "offline"``, ``features``, ``dim``, ``top1``, ``top5``, ``train_top1``,
    ``knn_top1_k20``, ``knn_top1_k200`` (None without ``knn``), ``epochs``, ``train_images``,
    ``test_images``, ``checkpoint``, ``checkpoint_epoch``, ``method``, ``dataset``, ``rep_dim``,
    ``d0``, ``augment``, ``standardize``, ``seed``, ``device``, ``seconds``, and, for comparison,
    ``online_probe_top1`` (the online probe's last value from the checkpoint, or None).
    """
    from dimcollapse.checkpoint import find_checkpoint, load_model
    from dimcollapse.runtime import resolve_device, resolve_precision

    if features not in FEATURE_SETS:
        raise UsageError(f"unknown features {features!r}; choose from {', '.join(FEATURE_SETS)}")
    if epochs < 1:
        raise UsageError(f"epochs must be at least 1, got {epochs}")
    t0 = time.perf_counter()
    path = find_checkpoint(run_or_checkpoint)
    model, ckpt = load_model(path)
    d0 = _feature_slice(model, ckpt, features)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model.to(dev)

    train_set = load_run_data(ckpt, "train", data_root=data_root, subset=train_subset, seed=seed)
    test_set = load_run_data(ckpt, "test", data_root=data_root, subset=test_subset, seed=seed)
    num_classes = int(train_set.num_classes)
    common = dict(device=dev, batch_size=extract_batch_size, precision=prec, workers=workers)
    train_x, train_y = extract_features(model, train_set, **common)
    test_x, test_y = extract_features(model, test_set, **common)
    if d0 is not None:
        train_x, test_x = train_x[:, :d0].contiguous(), test_x[:, :d0].contiguous()

    if not augment:
        result = probe_features(
            train_x,
            train_y,
            test_x,
            test_y,
            num_classes=num_classes,
            epochs=epochs,
            knn=knn,
            seed=seed,
            device=dev,
            standardize=standardize,
        )
    else:
        _check_pair(train_x, train_y, test_x, test_y, num_classes)
        mean = scale = None
        xte = test_x.to(dev)
        if standardize:
            mean, scale = (t.to(dev) for t in standardization(train_x))
            xte = (xte - mean) / scale
        batches = _augmented_batches(
            model,
            train_set,
            d0=d0,
            mean=mean,
            scale=scale,
            batch_size=batch_size,
            seed=seed,
            device=dev,
            precision=prec,
            workers=workers,
        )
        layer, _loss = _fit_linear(
            train_x.shape[1],
            num_classes,
            batches,
            epochs=epochs,
            lr=0.1,
            momentum=0.9,
            weight_decay=1e-6,
            seed=seed,
            device=dev,
        )
        top1, top5 = _evaluate(layer, xte, test_y.to(dev), num_classes)
        xtr = train_x.to(dev)
        if standardize:
            xtr = (xtr - mean) / scale
        train_top1, _ = _evaluate(layer, xtr, train_y.to(dev), num_classes)
        result = {
            "probe": "offline",
            "dim": int(train_x.shape[1]),
            "epochs": int(epochs),
            "train_images": int(train_x.shape[0]),
            "test_images": int(test_x.shape[0]),
            "top1": top1,
            "top5": top5,
            "train_top1": train_top1,
            "standardize": bool(standardize),
        }
        if knn:
            result.update(
                knn_probe(train_x, train_y, test_x, test_y, num_classes=num_classes, device=dev)
            )
        else:
            result.update({f"knn_top1_k{k}": None for k in DEFAULT_KS})
            result["knn_temperature"] = None

    cfg = ckpt.get("config") or {}
    metrics = ckpt.get("metrics") or {}
    online = metrics.get("online_probe_top1")
    return {
        "probe": "offline",
        "features": features,
        "space": "representation",
        "dim": result["dim"],
        "top1": result["top1"],
        "top5": result["top5"],
        **{k: v for k, v in result.items() if k.startswith("knn_")},
        "train_top1": result["train_top1"],
        "epochs": int(epochs),
        "augment": bool(augment),
        "standardize": result["standardize"],
        "train_images": result["train_images"],
        "test_images": result["test_images"],
        "checkpoint": str(path),
        "checkpoint_epoch": ckpt.get("epoch"),
        "method": cfg.get("method"),
        "dataset": cfg.get("dataset"),
        "rep_dim": int(model.rep_dim),
        "d0": getattr(model.head, "d0", None),
        "online_probe_top1": float(online) if online is not None else None,
        "seed": int(seed),
        "device": str(dev),
        "seconds": time.perf_counter() - t0,
    }
