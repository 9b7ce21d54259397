"""STL-10 from torchvision's ``stl10_binary`` files, read directly (no checksum).

``train`` is the labelled 5,000-image train split (``unlabeled`` is not used).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dimcollapse.data.formats.record import DatasetFormat, Request
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.errors import UsageError


def stl10_dataset(fmt: DatasetFormat, request: Request) -> ImageDataset:
    """STL-10's labelled ``train`` or ``test`` split from ``stl10_binary``: uint8 (N, 3, 96, 96)."""
    split = request.split
    folder = Path(str(request.root)).expanduser() / "stl10_binary"
    x_path, y_path = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    missing = [p.name for p in (x_path, y_path) if not p.is_file()]
    if missing:
        raise UsageError(
            f"stl10 {split} files not found in {folder}: {', '.join(missing)}; "
            f"unpack stl10_binary there or {request.fetch}"
        )
    raw = np.fromfile(x_path, dtype=np.uint8)
    per_image = 3 * 96 * 96
    if raw.size == 0 or raw.size % per_image:
        raise UsageError(f"{x_path}: size {raw.size} is not a multiple of 3*96*96")
    # stored column-major: (N, C, W, H) -> (N, C, H, W)
    images = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != len(images):
        raise UsageError(f"{x_path} has {len(images)} images but {y_path} {len(labels)} labels")
    if labels.min() < 0 or labels.max() > 9:
        raise UsageError(f"{y_path}: labels must be 1..10")
    names = folder / "class_names.txt"
    mean, std = fmt.normalization
    return ImageDataset(
        fmt.name,
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels),
        num_classes=10,
        channels=3,
        image_size=96,
        mean=mean,
        std=std,
        classes=names.read_text().splitlines() if names.is_file() else None,
    )
