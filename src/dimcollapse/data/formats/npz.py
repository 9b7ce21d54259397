"""``.npz`` files with ``images`` (N, H, W) or (N, H, W, C) uint8 and ``labels`` (N,)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dimcollapse.data.formats.record import DatasetFormat, Request
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.errors import UsageError
from dimcollapse.fileio import file_kind


def _open_npz(p: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``images`` and ``labels`` arrays of the ``.npz`` file ``p``, unchecked."""
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, not an .npz file (--data-root names the file)")
    if not p.is_file():
        raise UsageError(f"npz file not found: {p}")
    kind = file_kind(p)
    if kind == "npy":
        raise UsageError(
            f"{p}: a .npy array, not an .npz archive holding 'images' and 'labels' "
            "(np.savez(path, images=..., labels=...))"
        )
    if kind != "zip":  # np.load would call it "pickled (object) data"
        raise UsageError(f"{p}: not an .npz archive (no zip header; is it text?)")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"images", "labels"} <= keys:
                raise UsageError(
                    f"{p} must hold arrays 'images' and 'labels'; it holds {sorted(keys)}"
                )
            return z["images"], z["labels"]
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"cannot read {p} as .npz: {exc}") from exc


def _npz_images_nchw(p: Path, images: np.ndarray) -> np.ndarray:
    """Checked uint8 square images of ``p`` as (N, C, H, W), from (N, H, W) or (N, H, W, C)."""
    if images.dtype != np.uint8:
        raise UsageError(f"{p}: 'images' must be uint8 (0..255), got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4:
        if images.shape[3] not in (1, 3):
            raise UsageError(
                f"{p}: 'images' of shape {images.shape} must be (N, H, W) or (N, H, W, C) "
                "with C = 1 or 3"
            )
        images = images.transpose(0, 3, 1, 2)
    else:
        raise UsageError(
            f"{p}: 'images' must be (N, H, W) or (N, H, W, C), got shape {images.shape}"
        )
    if images.shape[2] != images.shape[3]:
        raise UsageError(f"{p}: images must be square, got {images.shape[2]}x{images.shape[3]}")
    if len(images) == 0:
        raise UsageError(f"{p}: 'images' is empty")
    return images


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Checked uint8 (N, C, H, W) images and int64 (N,) labels of one ``.npz`` file."""
    p = Path(path).expanduser()
    images, labels = _open_npz(p)
    images = _npz_images_nchw(p, images)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(
            f"{p}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if len(labels) != len(images):
        raise UsageError(f"{p}: {len(images)} images but {len(labels)} labels")
    if labels.min() < 0:
        raise UsageError(f"{p}: labels must be non-negative class indices")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def npz_dataset(fmt: DatasetFormat, request: Request) -> ImageDataset:
    """One split of an ``npz`` pair; classes and normalisation come from the files (train's)."""
    split, root, test_file = request.split, str(request.root), request.test_file
    train_images, train_labels = _read_npz(root)
    test = _read_npz(test_file) if test_file else None
    if split == "test" and test is None:
        raise UsageError("the npz test split needs a test file (--test-file)")
    if test is not None and test[0].shape[1:] != train_images.shape[1:]:
        raise UsageError(
            f"train images {train_images.shape[1:]} and test images {test[0].shape[1:]} "
            "differ in (C, H, W)"
        )
    num_classes = int(train_labels.max()) + 1
    if test is not None:
        num_classes = max(num_classes, int(test[1].max()) + 1)
    x = train_images.astype(np.float64) / 255.0
    mean = tuple(x.mean(axis=(0, 2, 3)).tolist())
    std = tuple(max(s, 1e-3) for s in x.std(axis=(0, 2, 3)).tolist())
    images, labels = (train_images, train_labels) if split == "train" else test  # type: ignore[misc]
    return ImageDataset(
        fmt.name,
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        num_classes=num_classes,
        channels=images.shape[1],
        image_size=images.shape[2],
        mean=mean,
        std=std,
    )
