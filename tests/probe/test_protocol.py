"""The reproduction's probe protocol: splits carved from the training images, weight decay chosen
on the validation split, the test set scored once."""

from __future__ import annotations

import pytest
import torch

from dimcollapse.errors import UsageError
from dimcollapse.probe.linear import linear_probe
from dimcollapse.probe.protocol import protocol_probes, protocol_splits, tuned_linear_probe


def _labels(per_class: list[int]) -> torch.Tensor:
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    return y[torch.randperm(y.numel(), generator=torch.Generator().manual_seed(1))]


def test_splits_are_class_balanced_disjoint_and_seeded():
    y = _labels([50, 80, 65])
    s = protocol_splits(y, labelled_per_class=7, val_per_class=11, seed=3)
    assert torch.bincount(y[s.labelled]).tolist() == [7, 7, 7]
    assert torch.bincount(y[s.val]).tolist() == [11, 11, 11]
    lab, val, rest = set(s.labelled.tolist()), set(s.val.tolist()), set(s.all_labels.tolist())
    assert not lab & val and not val & rest
    assert lab <= rest and len(rest) == y.numel() - 33
    again = protocol_splits(y, labelled_per_class=7, val_per_class=11, seed=3)
    other = protocol_splits(y, labelled_per_class=7, val_per_class=11, seed=4)
    assert torch.equal(again.labelled, s.labelled) and torch.equal(again.val, s.val)
    assert not torch.equal(other.labelled, s.labelled)


def test_splits_refuse_a_class_too_small():
    with pytest.raises(UsageError, match="class 1 has 5 training images"):
        protocol_splits(_labels([30, 5]), labelled_per_class=3, val_per_class=3, seed=0)


def _blobs(n: int, seed: int, dim: int = 6, noise: float = 2.0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    centres = torch.eye(3, dim) * 2.0
    return centres[y] + noise * torch.randn(n, dim, generator=gen), y


def test_tuned_probe_chooses_on_validation_and_scores_test_once():
    train, val, test = _blobs(60, 0), _blobs(200, 1), _blobs(300, 2)
    grid = (1e-6, 1e-2, 1.0)
    res = tuned_linear_probe(train, val, test, num_classes=3, epochs=5, grid=grid, knn=False)
    # the reference: one plain probe per weight decay, scored on validation
    val_acc = {
        wd: linear_probe(*train, *val, num_classes=3, epochs=5, weight_decay=wd)["top1"]
        for wd in grid
    }
    best = max(val_acc.values())
    assert res["val_top1"] == best
    assert res["weight_decay"] == max(wd for wd, a in val_acc.items() if a == best)
    assert res["val_by_weight_decay"] == {f"{wd:g}": a for wd, a in val_acc.items()}
    chosen = linear_probe(*train, *test, num_classes=3, epochs=5, weight_decay=res["weight_decay"])
    assert res["top1"] == chosen["top1"] and res["labels"] == 60
    assert res["test_images"] == 300 and res["knn_top1_k20"] is None


def test_tuned_probe_prefers_more_regularisation_on_ties():
    x = torch.zeros(12, 2)  # constant features: every weight decay scores the same
    y = torch.arange(12) % 2
    res = tuned_linear_probe(
        (x, y), (x, y), (x, y), num_classes=2, epochs=2, grid=(1e-6, 1e-3, 1e-1)
    )
    assert res["weight_decay"] == 1e-1 and res["knn_top1_k20"] is not None


def test_protocol_probes_rows_train_on_their_splits():
    x, y = _blobs(300, 5)
    splits = protocol_splits(y, labelled_per_class=10, val_per_class=20, seed=0)
    rows = protocol_probes(x, y, _blobs(100, 6), splits, num_classes=3, epochs=20)
    assert rows["full"]["labels"] == 30 and rows["full"]["epochs"] == 20
    assert rows["all_labels"]["labels"] == 300 - 60 and rows["all_labels"]["epochs"] == 2
    only = protocol_probes(x, y, _blobs(100, 6), splits, num_classes=3, epochs=20, all_labels=False)
    assert set(only) == {"full"} and only["full"]["top1"] == rows["full"]["top1"]
