"""Image datasets as uint8 tensors: the dataset type, the names, and one entry point.

Every dataset comes back from :func:`load_dataset` as an :class:`ImageDataset` whose items are
``(uint8 (C, H, W), int)``. All formats but ``imagefolder`` are held in memory as one uint8
``(N, C, H, W)`` tensor, which lets the training loop move the whole set to the accelerator once
and augment it there. The readers of the on-disk formats, and where each looks for its files, are
in :mod:`dimcollapse.data.formats`; nothing is downloaded unless asked.

Normalisation statistics (``mean``/``std``, per channel, on the 0..1 scale): published per-pixel
values of the training sets for fashion-mnist (0.2860/0.3530, checked on the Debian files), mnist
(0.1307/0.3081), CIFAR-10/100 and STL-10 (pixel standard deviation over the whole train set, not
the mean of per-image deviations), ImageNet's for ``imagefolder``; computed from the data for
``npz`` (over the train file) and ``digits`` (over all 1,797 images), the same for both splits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dimcollapse.errors import UsageError

DATASETS = (
    "fashion-mnist",
    "mnist",
    "cifar10",
    "cifar100",
    "stl10",
    "imagefolder",
    "npz",
    "digits",
)
SPLITS = ("train", "test")

#: The datasets torchvision can download; the others need their files given with a root.
DOWNLOADABLE = ("fashion-mnist", "mnist", "cifar10", "cifar100", "stl10")

#: Where the Debian package ``dataset-fashion-mnist`` puts the idx files (used without a root).
FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"

#: Published ``(mean, std)`` per channel, 0..1 scale; npz and digits compute theirs from the data.
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


class ImageDataset(torch.utils.data.Dataset):
    """A labelled image dataset whose items are ``(uint8 (C, H, W) tensor, int label)``.

    Either held in memory (``images`` uint8 (N, C, H, W) and ``labels`` int64 (N,)) or, for image
    folders, a list of ``(path, label)`` decoded on access to uint8 RGB.

    Attributes: ``name``, ``num_classes``, ``channels``, ``image_size`` (the side of the square
    images, or the target size for image folders), ``mean`` and ``std`` (per channel, 0..1 scale),
    ``classes`` (class names when known, else ``None``).
    """

    def __init__(
        self,
        name: str,
        *,
        num_classes: int,
        channels: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        images: Tensor | None = None,
        labels: Tensor | None = None,
        samples: Sequence[tuple[str, int]] | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        if (images is None) == (samples is None):
            raise ValueError("give either images and labels, or samples")
        if images is not None:
            if labels is None or images.dtype != torch.uint8 or images.ndim != 4:
                raise ValueError("images must be uint8 (N, C, H, W) with labels")
            if len(images) != len(labels):
                raise ValueError("images and labels differ in length")
        self.name = name
        self.num_classes = int(num_classes)
        self.channels = int(channels)
        self.image_size = int(image_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.classes = list(classes) if classes is not None else None
        self._images = images
        self._labels = labels.to(torch.int64) if labels is not None else None
        self._samples = list(samples) if samples is not None else None

    def __len__(self) -> int:
        if self._images is not None:
            return int(self._images.shape[0])
        assert self._samples is not None
        return len(self._samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self._images is not None:
            assert self._labels is not None
            return self._images[index], int(self._labels[index])
        assert self._samples is not None
        path, label = self._samples[index]
        return decode_rgb(path), int(label)

    def samples(self) -> list[tuple[str, int]] | None:
        """``(file path, label)`` pairs of a dataset read from files (imagefolder), else None."""
        return list(self._samples) if self._samples is not None else None

    def tensors(self) -> tuple[Tensor, Tensor] | None:
        """The whole set as uint8 (N, C, H, W) and int64 (N,) when held in memory, else ``None``."""
        if self._images is None:
            return None
        assert self._labels is not None
        return self._images, self._labels

    def select(self, indices: Tensor) -> ImageDataset:
        """A new dataset of the items at ``indices`` (a 1-D integer tensor), same metadata."""
        common = dict(
            num_classes=self.num_classes,
            channels=self.channels,
            image_size=self.image_size,
            mean=self.mean,
            std=self.std,
            classes=self.classes,
        )
        if self._images is not None:
            assert self._labels is not None
            return ImageDataset(
                self.name,
                images=self._images[indices].contiguous(),
                labels=self._labels[indices].contiguous(),
                **common,
            )
        assert self._samples is not None
        return ImageDataset(self.name, samples=[self._samples[int(i)] for i in indices], **common)

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.name!r}, n={len(self)}, classes={self.num_classes}, "
            f"channels={self.channels}, size={self.image_size})"
        )


def decode_rgb(path: str) -> Tensor:
    """Decode an image file to a uint8 (3, H, W) RGB tensor with Pillow.

    Pillow rather than ``torchvision.io``: torchvision deprecates its decoders from 0.29 on,
    and Pillow converts every mode (grey, palette, CMYK, alpha) to RGB the same way.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot decode image {path}: {exc}") from exc
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


# ----------------------------------------------------------------------------------------------
# public entry point


def load_dataset(
    name: str,
    split: str,
    *,
    root: str | None = None,
    subset: int | None = None,
    download: bool = False,
    seed: int = 0,
    test_file: str | None = None,
    image_size: int | None = None,
    can_download: bool = True,
) -> ImageDataset:
    """Load one split of a dataset as an :class:`ImageDataset`.

    ``root`` is the data directory (for ``npz``: the train ``.npz`` file); ``download`` fetches
    the files with torchvision into ``root`` (fashion-mnist, mnist, cifar10, cifar100, stl10 only);
    ``subset`` keeps a random subset of that size, drawn with a generator seeded by ``seed``;
    ``test_file`` is the ``npz`` test file; ``image_size`` is the target size for ``imagefolder``
    (default 224) and must match the native size, if given, for the other formats.
    ``can_download``: whether the caller's command has a ``--download`` option (the advice
    for missing files names it, or else the command that has it).
    Raises :class:`UsageError` for unknown names or splits and for missing or malformed files.
    """
    # formats builds ImageDatasets, so it imports this module: import it only once this one is done
    from dimcollapse.data import formats

    _check_request(name, split, root, download)
    if download:
        formats.download_with_torchvision(name, split, str(root))
    where = f" --data-root {root}" if root else ""
    fetch = (
        "fetch them with --download"
        if can_download
        else f"let `dimcollapse train --dataset {name}{where}` fetch them (its download "
        "option; this command has none)"
    )
    if name in ("fashion-mnist", "mnist"):
        ds = formats.idx_dataset(name, split, root, fetch)
    elif name in ("cifar10", "cifar100"):
        ds = formats.cifar_dataset(name, split, str(root), fetch)
    elif name == "stl10":
        ds = formats.stl10_dataset(split, str(root), fetch)
    elif name == "imagefolder":
        ds = formats.imagefolder_dataset(split, str(root), image_size or 224)
    elif name == "npz":
        ds = formats.npz_dataset(split, str(root), test_file)
    else:
        ds = formats.digits_dataset(split)

    if image_size is not None and name != "imagefolder" and image_size != ds.image_size:
        raise UsageError(
            f"dataset {name!r} has {ds.image_size}x{ds.image_size} images; image size "
            f"{image_size} applies only to imagefolder"
        )
    if subset is not None:
        ds = _subset(ds, subset, seed)
    return ds


def _check_request(name: str, split: str, root: str | None, download: bool) -> None:
    """Refuse unknown names and splits, a missing root and a download the dataset cannot have."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if download and name not in DOWNLOADABLE:
        raise UsageError(f"dataset {name!r} cannot be downloaded; give its files with a root")
    if name in ("mnist", "cifar10", "cifar100", "stl10", "imagefolder", "npz") and not root:
        what = "a .npz file" if name == "npz" else "a data directory"
        raise UsageError(f"dataset {name!r} needs {what} (--data-root)")
    if download and not root:
        raise UsageError(f"downloading {name!r} needs a data directory to put it in (--data-root)")


def _subset(ds: ImageDataset, size: int, seed: int) -> ImageDataset:
    n = len(ds)
    if not 1 <= size <= n:
        raise UsageError(f"subset must be between 1 and {n} (the size of {ds.name}), got {size}")
    gen = torch.Generator().manual_seed(int(seed))
    indices = torch.randperm(n, generator=gen)[:size].sort().values
    return ds.select(indices)
