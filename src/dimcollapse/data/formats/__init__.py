"""The on-disk formats: one reader per format, each returning an :class:`ImageDataset`.

Formats and where they are looked for:

* ``fashion-mnist`` / ``mnist`` (:mod:`.idx`): the original idx files (``.gz`` or not), read
  directly. Fashion-MNIST defaults to ``/usr/share/datasets/fashion-mnist`` (Debian package
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

Every reader raises :class:`~dimcollapse.errors.UsageError` for missing or malformed files.
"""

from dimcollapse.data.formats.cifar import cifar_dataset
from dimcollapse.data.formats.digits import digits_dataset
from dimcollapse.data.formats.download import download_with_torchvision
from dimcollapse.data.formats.idx import idx_dataset
from dimcollapse.data.formats.imagefolder import imagefolder_dataset
from dimcollapse.data.formats.npz import npz_dataset
from dimcollapse.data.formats.stl10 import stl10_dataset

__all__ = [
    "cifar_dataset",
    "digits_dataset",
    "download_with_torchvision",
    "idx_dataset",
    "imagefolder_dataset",
    "npz_dataset",
    "stl10_dataset",
]
