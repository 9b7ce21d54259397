"""The probe protocol's data for one reproduction stage (:mod:`dimcollapse.probe.protocol`): the
plan's splits of the training images, the same for every seed and every row, and the frozen
features the protocol's rows need."""

from __future__ import annotations

from typing import Any

import torch

from dimcollapse.probe import extract_features
from dimcollapse.probe.protocol import ProtocolSplits, protocol_splits


def protocol_splits_of(plan: Any, train_set: Any) -> Any:
    """The plan's probe-protocol splits of the (whole) training set: the same for every seed
    and every row, drawn with the plan's first seed."""
    return protocol_splits(
        train_set.labels(),
        labelled_per_class=int(plan.labelled_per_class),
        val_per_class=int(plan.val_per_class),
        seed=int(plan.seed),
    )


def protocol_features(model: Any, train_set: Any, splits: Any, plan: Any, device: Any) -> Any:
    """``(features, labels, splits)`` of the training images the protocol uses: all of them
    with the all-labels row, else only the labelled and validation images (splits re-indexed)."""
    if plan.all_labels_row:
        x, y = extract_features(model, train_set, device=device)
        return x, y, splits
    keep = torch.cat([splits.labelled, splits.val])
    x, y = extract_features(model, train_set.select(keep), device=device)
    n_lab = splits.labelled.numel()
    local = ProtocolSplits(
        labelled=torch.arange(n_lab),
        val=torch.arange(n_lab, keep.numel()),
        all_labels=torch.arange(keep.numel()),
    )
    return x, y, local
