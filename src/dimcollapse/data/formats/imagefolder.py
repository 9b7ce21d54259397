"""Image folders, ``root/<split>/<class>/<image>`` (ImageNet layout), decoded on access."""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets import ImageFolder

from dimcollapse.data.formats.record import DatasetFormat, Request
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.errors import UsageError

#: The images' side when no image size is asked for.
DEFAULT_IMAGE_SIZE = 224


def imagefolder_dataset(fmt: DatasetFormat, request: Request) -> ImageDataset:
    """``root/<split>/<class>/<image>`` (``val`` accepted for ``test``), decoded on access."""
    split, root = request.split, str(request.root)
    image_size = request.image_size or DEFAULT_IMAGE_SIZE
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
    mean, std = fmt.normalization
    return ImageDataset(
        fmt.name,
        samples=[(os.fspath(p), int(c)) for p, c in tv.samples],
        num_classes=len(tv.classes),
        channels=3,
        image_size=image_size,
        mean=mean,
        std=std,
        classes=tv.classes,
    )
