"""The baselines' stage: linear and kNN probes of raw pixels and of a randomly initialised
backbone, the floor that pretraining must beat."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dimcollapse.backbones import build_backbone
from dimcollapse.data.datasets import at_most, load_dataset
from dimcollapse.data.eval_loader import FEATURE_BATCH, build_eval_loader
from dimcollapse.model import ModelSpec, build_model
from dimcollapse.probe import extract_features
from dimcollapse.probe.protocol import protocol_probes
from dimcollapse.reproduce.protocol_data import protocol_features, protocol_splits_of
from dimcollapse.reproduce.stages import StageTask, log, read_stage, seed_label, write_stage
from dimcollapse.runtime import resolve_device
from dimcollapse.spectrum import summarize

#: Added to the seed of the random backbone: another seed than any pretraining run's.
RANDOM_BACKBONE_SEED_OFFSET = 1_000_003


def stage_baselines(task: StageTask) -> dict[str, Any]:
    """Probes of raw pixels and of a randomly initialised backbone (no pretraining), under the
    same protocol as every pretrained run (:mod:`dimcollapse.probe.protocol`)."""
    out = Path(task.directory)
    done = read_stage(out, task.key)
    if done is not None:
        return {**done, "reused": True}
    plan, seed = task.plan, task.seed
    t0 = time.perf_counter()
    device = resolve_device(task.device)
    common_data = {"root": plan.data_root, "seed": seed, "can_download": False}
    train_set = load_dataset(plan.dataset, "train", **common_data)
    test_set = load_dataset(plan.dataset, "test", subset=plan.test_subset, **common_data)
    splits = protocol_splits_of(plan, train_set)
    probe_args = dict(
        num_classes=int(train_set.num_classes), epochs=plan.probe_epochs, seed=seed, device=device
    )
    result: dict[str, Any] = {}
    pixels = _pixels_baseline(train_set, test_set, splits, plan, probe_args)
    if pixels is not None:
        result["pixels"] = pixels
        pca = _pca_pixels_baseline(train_set, test_set, splits, plan, probe_args)
        if pca is not None:
            result["pixels-pca"] = pca
    result["random"] = _random_backbone_baseline(task, train_set, test_set, splits, probe_args)
    result["seconds"] = time.perf_counter() - t0
    write_stage(out, task.key, result)
    log(
        task.verbose,
        f"baselines, {seed_label(task)}: done ({result['seconds']:.0f} s)",
    )
    return {**result, "reused": False}


def _rows(
    train_x: Any, train_y: Any, test: tuple[Any, Any], splits: Any, plan: Any, args: dict
) -> dict[str, Any]:
    """The protocol's rows as a baseline records them: ``probe`` (the labelled subset) and
    ``probe_all_labels`` (with the plan's all-labels row)."""
    rows = protocol_probes(train_x, train_y, test, splits, all_labels=plan.all_labels_row, **args)
    out = {"probe": rows["full"]}
    if "all_labels" in rows:
        out["probe_all_labels"] = rows["all_labels"]
    return out


def _spectra(test_x: Any) -> dict[str, Any]:

    return {
        "representation": summarize(test_x).to_dict(),
        "representation_normalized": summarize(test_x, normalize=True).to_dict(),
    }


def _pixels_baseline(
    train_set: Any, test_set: Any, splits: Any, plan: Any, probe_args: dict[str, Any]
) -> dict[str, Any] | None:
    """Probes of the flattened pixels in [0, 1] (None for a dataset not held in memory)."""
    train, test = train_set.tensors(), test_set.tensors()
    if train is None or test is None:
        return None
    train_x = train[0].flatten(1).float() / 255.0  # (N, C * H * W)
    test_x = test[0].flatten(1).float() / 255.0
    t0 = time.perf_counter()
    rows = _rows(train_x, train[1].long(), (test_x, test[1].long()), splits, plan, probe_args)
    return {
        "name": "raw pixels",
        **rows,
        **_spectra(test_x),
        "seconds": time.perf_counter() - t0,
    }


def pca_projection(train_x: Any, k: int) -> tuple[Any, Any]:
    """``(mean (D,), components (D, k))``: the top ``k`` principal directions of the (N, D)
    training rows (eigenvectors of their float64 covariance, largest first)."""
    x = train_x.double()
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / x.shape[0]
    _, vectors = torch.linalg.eigh(cov)  # ascending
    return mean.float(), vectors[:, -k:].flip(1).float()


def _pca_pixels_baseline(
    train_set: Any, test_set: Any, splits: Any, plan: Any, probe_args: dict[str, Any]
) -> dict[str, Any] | None:
    """A dimension-matched pixel baseline: the pixels (in [0, 1]) projected on their first
    ``rep_dim`` principal components (fitted on every training image, labels unused, as
    pretraining sees them), then the same probes (None when not held in memory or when the
    pixels are not wider than r)."""
    train, test = train_set.tensors(), test_set.tensors()
    if train is None or test is None:
        return None
    train_x = train[0].flatten(1).float() / 255.0
    test_x = test[0].flatten(1).float() / 255.0
    k = int(plan.rep_dim)
    if k >= train_x.shape[1]:
        return None
    t0 = time.perf_counter()
    mean, components = pca_projection(train_x, k)
    train_p, test_p = (train_x - mean) @ components, (test_x - mean) @ components
    rows = _rows(train_p, train[1].long(), (test_p, test[1].long()), splits, plan, probe_args)
    return {
        "name": f"pixels, PCA to {k}",
        "note": f"the pixels on their first {k} principal components (r's width), fitted on "
        "every training image",
        **rows,
        **_spectra(test_p),
        "seconds": time.perf_counter() - t0,
    }


def _random_backbone_baseline(
    task: StageTask, train_set: Any, test_set: Any, splits: Any, probe_args: dict[str, Any]
) -> dict[str, Any]:
    """Probes of the plan's backbone with random weights, every residual branch live, and the
    training images' batch-norm statistics.

    The pretraining initialisation zeroes each block's last batch-norm scale
    (``zero_init_residual``, as the paper's code does), so that an *untrained* network is a chain
    of stride-2 1x1 shortcuts: its r then depends on a sparse grid of pixels (at 28 px with the
    ImageNet stem, on the top-left 6x6 only). A random baseline is meant to show what random
    features of the whole image give, so it is built with ``zero_init_residual=False``.
    """
    plan, device = task.plan, probe_args["device"]
    t0 = time.perf_counter()
    random_seed = int(task.seed) + RANDOM_BACKBONE_SEED_OFFSET
    torch.manual_seed(random_seed)
    spec = ModelSpec(
        method="simclr-none",
        backbone=plan.backbone,
        width=plan.width,
        in_channels=train_set.channels,
        small_stem=plan.stem == "cifar",
        stem=plan.stem,
        num_classes=probe_args["num_classes"],
        seed=random_seed,
    )
    model = build_model(spec)
    model.backbone, _ = build_backbone(
        plan.backbone,
        in_channels=train_set.channels,
        stem=plan.stem,
        width=plan.width,
        zero_init_residual=False,
    )
    model = model.to(device)
    # at most BATCHNORM_IMAGES of the training images, drawn with the random network's seed
    _recompute_batchnorm(model, at_most(train_set, BATCHNORM_IMAGES, random_seed), device)
    train_x, train_y, splits = protocol_features(model, train_set, splits, plan, device)
    test_x, test_y = extract_features(model, test_set, device=device)
    return {
        "name": "random backbone",
        "note": "random weights with every residual branch live; batch-norm statistics of the "
        "training images",
        **_rows(train_x, train_y, (test_x, test_y), splits, plan, probe_args),
        **_spectra(test_x),
        "seconds": time.perf_counter() - t0,
    }


#: The batch-norm statistics of the random network come from this many training images (a
#: seeded draw): the averages settle long before, and the whole set would cost a pass of it.
BATCHNORM_IMAGES = 8192


def _recompute_batchnorm(model: Any, dataset: Any, device: Any) -> None:
    """Set every batch-norm layer's running statistics to those of ``dataset``'s images.

    A freshly initialised network in eval mode normalises with mean 0 and variance 1, which
    are not its activations' statistics: its features then degenerate (a handful of effective
    dimensions) and the baseline says more about that mismatch than about random features.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the whole pass
    model.train()
    with torch.no_grad():
        for x, _y in build_eval_loader(dataset, batch_size=FEATURE_BATCH, device=device):
            if x.shape[0] > 1:
                model.encode(x)
    model.eval()
