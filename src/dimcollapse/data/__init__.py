"""Data: datasets as uint8 tensors, the two-view augmentation (CPU and device paths), loaders.

The trainer uses only :func:`load_dataset`, :class:`AugmentConfig`, :func:`build_view_loader` and
:func:`build_eval_loader`; the augmentation internals stay behind the loaders.

Names are imported when first used, so that the torch-free modules (``data.formats``,
``data.augment_config``) can be imported without torch (the command line's ``--help``).
"""

from __future__ import annotations

from dimcollapse.lazy import lazy_exports

#: Each public name and the module that defines it, imported when the name is first read.
_EXPORTS = {
    "DATASETS": "dimcollapse.data.datasets",
    "AugmentConfig": "dimcollapse.data.augment",
    "DeviceTwoViewAugment": "dimcollapse.data.device_augment",
    "EvalTransform": "dimcollapse.data.augment",
    "ImageDataset": "dimcollapse.data.image_dataset",
    "TwoViewTransform": "dimcollapse.data.augment",
    "ViewLoader": "dimcollapse.data.loaders",
    "build_eval_loader": "dimcollapse.data.loaders",
    "build_view_loader": "dimcollapse.data.loaders",
    "load_dataset": "dimcollapse.data.datasets",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
