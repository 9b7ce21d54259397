"""scikit-learn's 8x8 digits, scaled 0..16 -> 0..255, in a fixed 80/20 split."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from dimcollapse.data.formats.record import DatasetFormat, Request
from dimcollapse.data.image_dataset import ImageDataset

# The digits split: a fixed permutation, independent of any user seed, so that train and test
# never overlap whatever seed a run uses.
_DIGITS_SPLIT_SEED = 20220125
_DIGITS_TRAIN_FRACTION = 0.8


def digits_dataset(fmt: DatasetFormat, request: Request) -> ImageDataset:
    """scikit-learn's digits as uint8 (N, 1, 8, 8), a fixed 80/20 split of the 1,797 images."""
    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    x = images.astype(np.float64) / 255.0
    mean, std = (float(x.mean()),), (float(x.std()),)
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(images))
    n_train = int(round(_DIGITS_TRAIN_FRACTION * len(images)))
    idx = order[:n_train] if request.split == "train" else order[n_train:]
    idx = np.sort(idx)
    return ImageDataset(
        fmt.name,
        images=torch.from_numpy(np.ascontiguousarray(images[idx])),
        labels=torch.from_numpy(labels[idx]),
        num_classes=10,
        channels=1,
        image_size=8,
        mean=mean,
        std=std,
        classes=[str(i) for i in range(10)],
    )
