"""The offline kNN probe on frozen features.

* **kNN**: cosine similarity, the k most similar train rows vote with weight
  ``exp(similarity / 0.07)`` (InstDisc's rule, as in solo-learn and lightly's kNN benchmarks);
  the class with the largest total weight wins (ties: the lowest class index); k is clipped to
  the train set size. Computed in the features' own dtype (float32, or float64 if given), in
  batches of test rows: memory O(batch x N_train).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dimcollapse.errors import UsageError
from dimcollapse.probe.features import check_splits
from dimcollapse.progress import track

#: InstDisc's temperature for the kNN vote weights exp(sim / T).
KNN_TEMPERATURE = 0.07
DEFAULT_KS = (20, 200)


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
    clipped_k = {int(k): min(int(k), n) for k in ks}
    kmax = max(clipped_k.values())
    out: dict[int, list[Tensor]] = {k: [] for k in clipped_k}
    starts = range(0, test_x.shape[0], batch_size)
    desc = f"kNN probe: {test_x.shape[0]:,} test images against {n:,} train images"
    for start in track(starts, desc, total=len(starts)):
        q = F.normalize(test_x[start : start + batch_size].detach().to(dev, dtype), dim=1)
        sim = q @ train.T  # (B, N)
        top_sim, top_idx = sim.topk(kmax, dim=1, largest=True, sorted=True)
        top_lab = labels[top_idx]
        weights = torch.exp(top_sim / temperature)
        for k, k_used in clipped_k.items():
            scores = torch.zeros(q.shape[0], num_classes, device=dev, dtype=dtype)
            scores.scatter_add_(1, top_lab[:, :k_used], weights[:, :k_used])
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
    check_splits(train_x, train_y, test_x, test_y, num_classes)
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


def knn_skipped(ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """:func:`knn_probe`'s keys, all None: the result of a probe asked for without kNN."""
    result: dict[str, Any] = {f"knn_top1_k{k}": None for k in ks}
    result["knn_temperature"] = None
    return result
