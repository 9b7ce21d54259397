"""The datasets, one record each (:data:`FORMATS`): reader, normalisation, download, root.

Each :class:`~dimcollapse.data.formats.record.DatasetFormat` names its reader (one module per
on-disk format, each returning an :class:`~dimcollapse.data.image_dataset.ImageDataset`), its
normalisation, the torchvision class that downloads it, what ``--data-root`` must name and where
its files are looked for without one; its ``help`` says which files it reads.
:func:`dimcollapse.data.datasets.load_dataset` looks a name up here; the names, the
command-line help and the downloads all derive from these records.

* ``fashion-mnist`` / ``mnist`` (:mod:`.idx`): the original idx files (``.gz`` or not), read
  directly. Fashion-MNIST defaults to its record's ``default_dir`` (Debian package
  ``dataset-fashion-mnist``); torchvision's layout ``<root>/FashionMNIST/raw`` and
  ``<root>/MNIST/raw`` is accepted too.
* ``cifar10`` / ``cifar100`` / ``stl10`` (:mod:`.cifar`, :mod:`.stl10`): torchvision's on-disk
  formats under ``root`` (``cifar-10-batches-py``, ``cifar-100-python``, ``stl10_binary``).
  torchvision's own classes verify md5 checksums of the full release files before loading, so the
  files are read here directly (same layout, no checksum); torchvision is used only to download
  when asked (:mod:`.download`). STL-10 ``train`` is the labelled 5,000-image train split
  (``unlabeled`` is not used).
* ``imagefolder`` (:mod:`.imagefolder`): ``root/<split>/<class>/<image>`` (ImageNet layout);
  images are decoded on access (Pillow) to uint8 RGB at their own size; the augmentation or the
  eval transform sizes them.
* ``npz`` (:mod:`.npz`): ``root`` is a ``.npz`` file with ``images`` (N, H, W) or (N, H, W, C)
  uint8 and ``labels`` (N,); ``test_file`` is the test split's file.
* ``digits`` (:mod:`.digits`): scikit-learn's 8x8 digits, scaled 0..16 -> 0..255, fixed 80/20
  split.

Normalisation statistics (``mean``/``std``, per channel, on the 0..1 scale): published per-pixel
values of the training sets for fashion-mnist (0.2860/0.3530, checked on the Debian files), mnist
(0.1307/0.3081), CIFAR-10/100 and STL-10 (pixel standard deviation over the whole train set, not
the mean of per-image deviations), ImageNet's for ``imagefolder``; computed from the data for
``npz`` (over the train file) and ``digits`` (over all 1,797 images), the same for both splits.

Every reader raises :class:`~dimcollapse.errors.UsageError` for missing or malformed files.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from dimcollapse.data.formats.download import download_with_torchvision
from dimcollapse.data.formats.record import DatasetFormat, Normalization, Request

if TYPE_CHECKING:
    from dimcollapse.data.image_dataset import ImageDataset


def _reader(module: str) -> Callable[[DatasetFormat, Request], ImageDataset]:
    """The reader ``<module>_dataset`` of :mod:`dimcollapse.data.formats.<module>`, imported when
    first called: the table is read by ``--help``, and the readers import torch."""

    def read(fmt: DatasetFormat, request: Request) -> ImageDataset:
        reader = getattr(importlib.import_module(f"{__name__}.{module}"), f"{module}_dataset")
        return reader(fmt, request)

    read.__name__ = read.__qualname__ = f"{module}_dataset"
    return read


#: ImageNet's ``(mean, std)``: image folders, and models trained elsewhere on ImageNet.
IMAGENET_NORMALIZATION: Normalization = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

#: Every dataset, by its ``--dataset`` name, in the order the help lists them.
FORMATS: dict[str, DatasetFormat] = {
    f.name: f
    for f in (
        DatasetFormat(
            "fashion-mnist",
            _reader("idx"),
            "Fashion-MNIST idx files; without a root, the Debian package's",
            ((0.2860,), (0.3530,)),
            torchvision="FashionMNIST",
            needs_root=None,
            default_dir="/usr/share/datasets/fashion-mnist",
        ),
        DatasetFormat(
            "mnist",
            _reader("idx"),
            "MNIST idx files",
            ((0.1307,), (0.3081,)),
            torchvision="MNIST",
            mirror=False,
        ),
        DatasetFormat(
            "cifar10",
            _reader("cifar"),
            "CIFAR-10's python pickles (cifar-10-batches-py)",
            ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
            torchvision="CIFAR10",
        ),
        DatasetFormat(
            "cifar100",
            _reader("cifar"),
            "CIFAR-100's python pickles (cifar-100-python)",
            ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
            torchvision="CIFAR100",
        ),
        DatasetFormat(
            "stl10",
            _reader("stl10"),
            "STL-10's binaries (stl10_binary), the labelled 5,000-image train split",
            ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
            torchvision="STL10",
        ),
        DatasetFormat(
            "imagefolder",
            _reader("imagefolder"),
            "root/<split>/<class>/<image> (ImageNet layout), decoded on access",
            IMAGENET_NORMALIZATION,
        ),
        DatasetFormat(
            "npz",
            _reader("npz"),
            ".npz files of uint8 images and labels, normalised by the train file's statistics",
            needs_root="a .npz file",
        ),
        DatasetFormat(
            "digits",
            _reader("digits"),
            "scikit-learn's 8x8 digits, a fixed 80/20 split",
            needs_root=None,
            mirror=False,
        ),
    )
}

__all__ = [
    "FORMATS",
    "IMAGENET_NORMALIZATION",
    "DatasetFormat",
    "Request",
    "download_with_torchvision",
]
