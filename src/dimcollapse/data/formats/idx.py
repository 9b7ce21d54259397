"""Fashion-MNIST and MNIST from the original idx files (``.gz`` or not), read directly.

Without a root, a dataset's record's ``default_dir`` (Fashion-MNIST: the Debian package
``dataset-fashion-mnist``'s directory); torchvision's layout ``<root>/FashionMNIST/raw`` and
``<root>/MNIST/raw`` is accepted too.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dimcollapse.data.formats.record import DatasetFormat, Request
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.errors import UsageError

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(dirs: Sequence[Path], stem: str) -> Path | None:
    for d in dirs:
        for candidate in (d / stem, d / (stem + ".gz")):
            if candidate.is_file():
                return candidate
    return None


def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if len(data) < 4 + 4 * expected_ndim:
        raise UsageError(f"{path} is not an idx file (too short)")
    zero, dtype_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype_code != 0x08 or ndim != expected_ndim:
        raise UsageError(
            f"{path} is not an idx file of uint8 with {expected_ndim} dimension(s) "
            f"(header {data[:4].hex()})"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    count = int(np.prod(shape))
    if len(data) - offset != count:
        raise UsageError(
            f"{path}: header says {shape} but the file holds {len(data) - offset} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find_idx_files(fmt: DatasetFormat, request: Request) -> tuple[Path, Path]:
    """The images and labels files of the split: in the root, torchvision's layout under it, or
    (fashion-mnist without a root) the record's default directory, the Debian package's."""
    name, split, root, fetch = fmt.name, request.split, request.root, request.fetch
    if root:
        base = Path(root).expanduser()
        tv_folder = str(fmt.torchvision)
        dirs = [base, base / tv_folder / "raw", base / tv_folder]
    else:
        dirs = [Path(str(fmt.default_dir))]
    image_stem, label_stem = _IDX_FILES[split]
    image_path, label_path = _find_file(dirs, image_stem), _find_file(dirs, label_stem)
    if image_path is None or label_path is None:
        missing = [s for s, p in ((image_stem, image_path), (label_stem, label_path)) if p is None]
        hint = (
            f"install them with `apt-get install dataset-fashion-mnist` or {fetch}"
            if name == "fashion-mnist"
            else fetch
        )
        raise UsageError(
            f"{name} {split} files not found: {', '.join(m + '[.gz]' for m in missing)}; "
            f"looked in: {', '.join(str(d) for d in dirs)}; {hint}"
        )
    return image_path, label_path


def idx_dataset(fmt: DatasetFormat, request: Request) -> ImageDataset:
    """Fashion-MNIST or MNIST from idx files: uint8 (N, 1, 28, 28), 10 classes."""
    image_path, label_path = _find_idx_files(fmt, request)
    images = _read_idx(image_path, 3)
    labels = _read_idx(label_path, 1)
    if len(images) != len(labels):
        raise UsageError(
            f"{image_path} has {len(images)} images but {label_path} {len(labels)} labels"
        )
    mean, std = fmt.normalization
    return ImageDataset(
        fmt.name,
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=10,
        channels=1,
        image_size=images.shape[1],
        mean=mean,
        std=std,
    )
