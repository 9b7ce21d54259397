"""Data: datasets as uint8 tensors, the two-view augmentation (CPU and device paths), loaders.

The trainer uses only :func:`load_dataset`, :class:`AugmentConfig`, :func:`build_view_loader` and
:func:`build_eval_loader`; the augmentation internals stay behind the loaders.
"""

from dimcollapse.data.augment import AugmentConfig, EvalTransform, TwoViewTransform
from dimcollapse.data.datasets import DATASETS, load_dataset
from dimcollapse.data.device_augment import DeviceTwoViewAugment
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.data.loaders import ViewLoader, build_eval_loader, build_view_loader

__all__ = [
    "DATASETS",
    "AugmentConfig",
    "DeviceTwoViewAugment",
    "EvalTransform",
    "ImageDataset",
    "TwoViewTransform",
    "ViewLoader",
    "build_eval_loader",
    "build_view_loader",
    "load_dataset",
]
