"""CIFAR-10 and CIFAR-100 from torchvision's python pickles (``cifar-10-batches-py``,
``cifar-100-python``), read directly: torchvision's own classes check md5 sums of the full
release files before loading."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dimcollapse.data.formats.record import DatasetFormat, Request
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.errors import UsageError


def _get(entry: dict, key: str):
    """``entry[key]`` whether the pickle's keys are str or (Python 2 pickles) bytes."""
    if key in entry:
        return entry[key]
    return entry.get(key.encode("latin1"))


def _read_cifar_batches(
    folder: Path, files: Sequence[str], label_key: str
) -> tuple[np.ndarray, list[int]]:
    """The images (N, 3, 32, 32) uint8 and labels of the pickled batch ``files`` in ``folder``."""
    chunks, labels = [], []
    for f in files:
        path = folder / f
        try:
            with open(path, "rb") as fh:
                entry = pickle.load(fh, encoding="latin1")
        except Exception as exc:
            raise UsageError(f"cannot read {path} as a CIFAR pickle: {exc}") from exc
        data, lab = _get(entry, "data"), _get(entry, label_key)
        if data is None or lab is None:
            raise UsageError(f"{path} lacks the 'data' or '{label_key}' entry")
        data = np.asarray(data, dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(lab):
            raise UsageError(f"{path}: expected data (N, 3072) and N labels, got {data.shape}")
        chunks.append(data.reshape(-1, 3, 32, 32))
        labels.extend(int(x) for x in lab)
    return np.concatenate(chunks), labels


def _read_cifar_classes(meta_path: Path, meta_key: str) -> list[str] | None:
    """The class names from the meta pickle; ``None`` if it is absent or unreadable (optional)."""
    if not meta_path.is_file():
        return None
    try:
        with open(meta_path, "rb") as fh:
            meta = pickle.load(fh, encoding="latin1")
        names = _get(meta, meta_key)
        return [str(c) for c in names] if names is not None else None
    except Exception:
        return None


def cifar_dataset(fmt: DatasetFormat, request: Request) -> ImageDataset:
    """CIFAR-10 or CIFAR-100 from the python pickles: uint8 (N, 3, 32, 32)."""
    name, split, root = fmt.name, request.split, str(request.root)
    if name == "cifar10":
        folder = Path(root).expanduser() / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        label_key, meta_file, meta_key, num_classes = "labels", "batches.meta", "label_names", 10
    else:
        folder = Path(root).expanduser() / "cifar-100-python"
        files = ["train"] if split == "train" else ["test"]
        label_key, meta_file, meta_key, num_classes = "fine_labels", "meta", "fine_label_names", 100
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise UsageError(
            f"{name} {split} files not found in {folder}: {', '.join(missing)}; "
            f"unpack the python version of the dataset there or {request.fetch}"
        )
    images, labels = _read_cifar_batches(folder, files, label_key)
    mean, std = fmt.normalization
    return ImageDataset(
        name,
        images=torch.from_numpy(images),
        labels=torch.tensor(labels, dtype=torch.int64),
        num_classes=num_classes,
        channels=3,
        image_size=32,
        mean=mean,
        std=std,
        classes=_read_cifar_classes(folder / meta_file, meta_key),
    )
