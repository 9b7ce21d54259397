"""Image datasets as uint8 tensors: one loader per on-disk format, no hidden downloads.

Every dataset comes back as an :class:`ImageDataset` whose items are ``(uint8 (C, H, W), int)``.
All formats but ``imagefolder`` are held in memory as one uint8 ``(N, C, H, W)`` tensor, which
lets the training loop move the whole set to the accelerator once and augment it there.

Formats and where they are looked for:

* ``fashion-mnist`` / ``mnist``: the original idx files (``.gz`` or not), read directly. Fashion-MNIST
  defaults to ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``);
  torchvision's layout ``<root>/FashionMNIST/raw`` and ``<root>/MNIST/raw`` is accepted too.
* ``cifar10`` / ``cifar100`` / ``stl10``: torchvision's on-disk formats under ``root``
  (``cifar-10-batches-py``, ``cifar-100-python``, ``stl10_binary``). torchvision's own classes
  verify md5 checksums of the full release files before loading, so the files are read here
  directly (same layout, no checksum); torchvision is used only to download when asked.
  STL-10 ``train`` is the labelled 5,000-image train split (``unlabeled`` is not used).
* ``imagefolder``: ``root/<split>/<class>/<image>`` (ImageNet layout); images are decoded on
  access (Pillow) to uint8 RGB at their own size; the augmentation or the eval transform sizes them.
* ``npz``: ``root`` is a ``.npz`` file with ``images`` (N, H, W) or (N, H, W, C) uint8 and
  ``labels`` (N,); ``test_file`` is the test split's file.
* ``digits``: scikit-learn's 8x8 digits, scaled 0..16 -> 0..255, fixed 80/20 split.

Normalisation statistics (``mean``/``std``, per channel, on the 0..1 scale): published per-pixel
values of the training sets for fashion-mnist (0.2860/0.3530, checked on the Debian files), mnist
(0.1307/0.3081), CIFAR-10/100 and STL-10 (pixel standard deviation over the whole train set, not
the mean of per-image deviations), ImageNet's for ``imagefolder``; computed from the data for
``npz`` (over the train file) and ``digits`` (over all 1,797 images), the same for both splits.
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

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

FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"

_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
    "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# The digits split: a fixed permutation, independent of any user seed, so that train and test
# never overlap whatever seed a run uses.
_DIGITS_SPLIT_SEED = 20220125
_DIGITS_TRAIN_FRACTION = 0.8


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
) -> ImageDataset:
    """Load one split of a dataset as an :class:`ImageDataset`.

    ``root`` is the data directory (for ``npz``: the train ``.npz`` file); ``download`` fetches
    the files with torchvision into ``root`` (fashion-mnist, mnist, cifar10, cifar100, stl10 only);
    ``subset`` keeps a random subset of that size, drawn with a generator seeded by ``seed``;
    ``test_file`` is the ``npz`` test file; ``image_size`` is the target size for ``imagefolder``
    (default 224) and must match the native size, if given, for the other formats.
    Raises :class:`UsageError` for unknown names or splits and for missing or malformed files.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if download and name in ("imagefolder", "npz", "digits"):
        raise UsageError(f"dataset {name!r} cannot be downloaded; give its files with a root")
    if name in ("mnist", "cifar10", "cifar100", "stl10", "imagefolder", "npz") and not root:
        what = "a .npz file" if name == "npz" else "a data directory"
        raise UsageError(f"dataset {name!r} needs {what} (--data-root)")
    if download and not root:
        raise UsageError(f"downloading {name!r} needs a data directory to put it in (--data-root)")

    if name in ("fashion-mnist", "mnist"):
        ds = _load_idx(name, split, root, download)
    elif name in ("cifar10", "cifar100"):
        ds = _load_cifar(name, split, str(root), download)
    elif name == "stl10":
        ds = _load_stl10(split, str(root), download)
    elif name == "imagefolder":
        ds = _load_imagefolder(split, str(root), image_size or 224)
    elif name == "npz":
        ds = _load_npz(split, str(root), test_file)
    else:
        ds = _load_digits(split)

    if image_size is not None and name != "imagefolder" and image_size != ds.image_size:
        raise UsageError(
            f"dataset {name!r} has {ds.image_size}x{ds.image_size} images; image size "
            f"{image_size} applies only to imagefolder"
        )
    if subset is not None:
        ds = _subset(ds, subset, seed)
    return ds


def _subset(ds: ImageDataset, size: int, seed: int) -> ImageDataset:
    n = len(ds)
    if not 1 <= size <= n:
        raise UsageError(f"subset must be between 1 and {n} (the size of {ds.name}), got {size}")
    gen = torch.Generator().manual_seed(int(seed))
    indices = torch.randperm(n, generator=gen)[:size].sort().values
    return ds.select(indices)


# ----------------------------------------------------------------------------------------------
# idx (Fashion-MNIST, MNIST)


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


def _load_idx(name: str, split: str, root: str | None, download: bool) -> ImageDataset:
    tv_folder = "FashionMNIST" if name == "fashion-mnist" else "MNIST"
    if download:
        import torchvision.datasets as tvd

        cls = tvd.FashionMNIST if name == "fashion-mnist" else tvd.MNIST
        try:
            cls(str(root), train=split == "train", download=True)
        except Exception as exc:  # network or disk failure: report it as the user's problem
            raise UsageError(f"downloading {name} into {root} failed: {exc}") from exc
    if root:
        base = Path(root).expanduser()
        dirs = [base, base / tv_folder / "raw", base / tv_folder]
    else:
        dirs = [Path(FASHION_MNIST_DEFAULT_DIR)]
    image_stem, label_stem = _IDX_FILES[split]
    image_path, label_path = _find_file(dirs, image_stem), _find_file(dirs, label_stem)
    if image_path is None or label_path is None:
        missing = [s for s, p in ((image_stem, image_path), (label_stem, label_path)) if p is None]
        hint = (
            "install them with `apt-get install dataset-fashion-mnist` or fetch them with --download"
            if name == "fashion-mnist"
            else "fetch them with --download"
        )
        raise UsageError(
            f"{name} {split} files not found: {', '.join(m + '[.gz]' for m in missing)}; "
            f"looked in: {', '.join(str(d) for d in dirs)}; {hint}"
        )
    images = _read_idx(image_path, 3)
    labels = _read_idx(label_path, 1)
    if len(images) != len(labels):
        raise UsageError(
            f"{image_path} has {len(images)} images but {label_path} {len(labels)} labels"
        )
    mean, std = _STATS[name]
    return ImageDataset(
        name,
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=10,
        channels=1,
        image_size=images.shape[1],
        mean=mean,
        std=std,
    )


# ----------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickles)


def _get(entry: dict, key: str):
    if key in entry:
        return entry[key]
    return entry.get(key.encode("latin1"))


def _load_cifar(name: str, split: str, root: str, download: bool) -> ImageDataset:
    if download:
        import torchvision.datasets as tvd

        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        try:
            cls(root, train=split == "train", download=True)
        except Exception as exc:
            raise UsageError(f"downloading {name} into {root} failed: {exc}") from exc
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
            "unpack the python version of the dataset there or use --download"
        )
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
    classes = None
    meta_path = folder / meta_file
    if meta_path.is_file():
        try:
            with open(meta_path, "rb") as fh:
                meta = pickle.load(fh, encoding="latin1")
            names = _get(meta, meta_key)
            classes = [str(c) for c in names] if names is not None else None
        except Exception:
            classes = None
    mean, std = _STATS[name]
    return ImageDataset(
        name,
        images=torch.from_numpy(np.concatenate(chunks)),
        labels=torch.tensor(labels, dtype=torch.int64),
        num_classes=num_classes,
        channels=3,
        image_size=32,
        mean=mean,
        std=std,
        classes=classes,
    )


# ----------------------------------------------------------------------------------------------
# STL-10 (binary)


def _load_stl10(split: str, root: str, download: bool) -> ImageDataset:
    if download:
        import torchvision.datasets as tvd

        try:
            tvd.STL10(root, split=split, download=True)
        except Exception as exc:
            raise UsageError(f"downloading stl10 into {root} failed: {exc}") from exc
    folder = Path(root).expanduser() / "stl10_binary"
    x_path, y_path = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
    missing = [p.name for p in (x_path, y_path) if not p.is_file()]
    if missing:
        raise UsageError(
            f"stl10 {split} files not found in {folder}: {', '.join(missing)}; "
            "unpack stl10_binary there or use --download"
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
    classes = None
    names = folder / "class_names.txt"
    if names.is_file():
        classes = names.read_text().splitlines()
    mean, std = _STATS["stl10"]
    return ImageDataset(
        "stl10",
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels),
        num_classes=10,
        channels=3,
        image_size=96,
        mean=mean,
        std=std,
        classes=classes,
    )


# ----------------------------------------------------------------------------------------------
# image folders (ImageNet layout)


def _load_imagefolder(split: str, root: str, image_size: int) -> ImageDataset:
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
    mean, std = _STATS["imagefolder"]
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


# ----------------------------------------------------------------------------------------------
# npz


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(f"npz file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            if not {"images", "labels"} <= keys:
                raise UsageError(
                    f"{p} must hold arrays 'images' and 'labels'; it holds {sorted(keys)}"
                )
            images, labels = z["images"], z["labels"]
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"cannot read {p} as .npz: {exc}") from exc
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
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(
            f"{p}: 'labels' must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if len(labels) != len(images):
        raise UsageError(f"{p}: {len(images)} images but {len(labels)} labels")
    if labels.min() < 0:
        raise UsageError(f"{p}: labels must be non-negative class indices")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _load_npz(split: str, root: str, test_file: str | None) -> ImageDataset:
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
        "npz",
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        num_classes=num_classes,
        channels=images.shape[1],
        image_size=images.shape[2],
        mean=mean,
        std=std,
    )


# ----------------------------------------------------------------------------------------------
# scikit-learn digits


def _load_digits(split: str) -> ImageDataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    labels = d.target.astype(np.int64)
    x = images.astype(np.float64) / 255.0
    mean, std = (float(x.mean()),), (float(x.std()),)
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(images))
    n_train = int(round(_DIGITS_TRAIN_FRACTION * len(images)))
    idx = order[:n_train] if split == "train" else order[n_train:]
    idx = np.sort(idx)
    return ImageDataset(
        "digits",
        images=torch.from_numpy(np.ascontiguousarray(images[idx])),
        labels=torch.from_numpy(labels[idx]),
        num_classes=10,
        channels=1,
        image_size=8,
        mean=mean,
        std=std,
        classes=[str(i) for i in range(10)],
    )
