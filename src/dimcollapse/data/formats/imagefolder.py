"""Image folders, ``root/<split>/<class>/<image>`` (ImageNet layout), decoded on access."""

from __future__ import annotations

import os
from pathlib import Path

from dimcollapse.data.datasets import NORMALIZATION, ImageDataset
from dimcollapse.errors import UsageError


def imagefolder_dataset(split: str, root: str, image_size: int) -> ImageDataset:
    """``root/<split>/<class>/<image>`` (``val`` accepted for ``test``), decoded on access."""
    from torchvision.datasets import ImageFolder

    folder = Path(root).expanduser() / ("val" if split == "test" else "train")
    candidates = [Path(root).expanduser() / split] + ([folder] if split == "test" else [])
    found = next((c for c in candidates if c.is_dir()), None)
    if found is None:
        raise UsageError(
            f"imagefolder {split} split not found: looked for "
            f"{' or '.join(str(c) for c in candidates)} (layout root/<split>/<class>/<image>)"
        )
    try:
        tv = ImageFolder(str(found))
    except (FileNotFoundError, RuntimeError) as exc:
        raise UsageError(f"cannot read image folder {found}: {exc}") from exc
    if not tv.samples:
        raise UsageError(f"image folder {found} holds no images")
    if image_size < 1:
        raise UsageError(f"image size must be positive, got {image_size}")
    mean, std = NORMALIZATION["imagefolder"]
    return ImageDataset(
        "imagefolder",
        samples=[(os.fspath(p), int(c)) for p, c in tv.samples],
        num_classes=len(tv.classes),
        channels=3,
        image_size=image_size,
        mean=mean,
        std=std,
        classes=tv.classes,
    )
