"""What a training run is built from its config: the data, the augmentation recipe, the model's
spec, and the device settings."""

from __future__ import annotations

import dataclasses

import torch

from dimcollapse.config import TrainConfig
from dimcollapse.data.augment import AugmentConfig, use_small_stem
from dimcollapse.data.datasets import load_dataset
from dimcollapse.data.formats import FORMATS
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.model import ModelSpec


def use_sync_bn(setting: bool | None, device: torch.device) -> bool:
    """Whether to convert BatchNorm to SyncBatchNorm under DDP: the setting, or by default on
    CUDA (the paper's code always converts: batch statistics over the global batch, which
    InfoNCE's negatives otherwise leak through) and off on the CPU, where gloo has no
    SyncBatchNorm support."""
    return device.type == "cuda" if setting is None else bool(setting)


def resolve_augment(cfg: TrainConfig, dataset: ImageDataset) -> AugmentConfig:
    """The recipe (``cfg.aug_recipe``: :meth:`AugmentConfig.recipe`; no flip for a dataset
    whose record says mirrored images change class) with ``cfg.augment`` overrides, scaled by ``cfg.aug_strength`` (:meth:`AugmentConfig.scaled`; 1 leaves it)."""
    size = int(cfg.augment.get("image_size", dataset.image_size))
    base = AugmentConfig.recipe(cfg.aug_recipe, size, dataset.channels)
    record = FORMATS.get(cfg.dataset)
    if record is not None and not record.mirror:  # a mirrored digit can be another digit
        base = dataclasses.replace(base, flip_prob=0.0)
    values = {**dataclasses.asdict(base), **cfg.augment}
    aug = AugmentConfig(**values)
    return aug if cfg.aug_strength == 1.0 else aug.scaled(cfg.aug_strength)


def model_spec(cfg: TrainConfig, dataset: ImageDataset, image_size: int) -> ModelSpec:
    """The architecture of ``cfg`` for this dataset (channels, classes, stem)."""
    return ModelSpec(
        method=cfg.method,
        backbone=cfg.backbone,
        width=cfg.width,
        in_channels=dataset.channels,
        small_stem=use_small_stem(cfg.small_stem, image_size),
        num_classes=dataset.num_classes,
        d0=cfg.d0,
        proj_hidden=cfg.proj_hidden,
        proj_out=cfg.proj_out,
        seed=cfg.seed,
        diagonal_init=cfg.diagonal_init,
        stem=cfg.stem,
    )


def load_training_data(
    cfg: TrainConfig, main: bool
) -> tuple[ImageDataset, ImageDataset | None, str]:
    """(training images, held-out images for the monitor or None, the held-out split's name).

    The spectra are measured on held-out images; an npz set without a test file has none, so a
    fixed subset of its training images stands in (said in config.yaml as monitor_split). Only
    rank 0 measures, and only rank 0 downloads.
    """
    common = {
        "root": cfg.data_root,
        "download": cfg.download and main,
        "seed": cfg.seed,
        "test_file": cfg.test_file,
    }
    train_set = load_dataset(cfg.dataset, "train", subset=cfg.subset, **common)
    monitor_split = "train" if cfg.dataset == "npz" and not cfg.test_file else "test"
    held_out = None
    if main and cfg.monitor_samples > 0:
        held_out = load_dataset(cfg.dataset, monitor_split, **common)
        if cfg.monitor_samples < len(held_out):
            held_out = load_dataset(
                cfg.dataset, monitor_split, subset=cfg.monitor_samples, **common
            )
    return train_set, held_out, monitor_split


def configure_backends(deterministic: bool, device: torch.device) -> None:
    """Deterministic algorithms when asked; otherwise, on CUDA, cuDNN autotuning and TF32."""
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
