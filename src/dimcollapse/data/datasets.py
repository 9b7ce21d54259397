"""Image datasets as uint8 tensors: the names, and one entry point.

Every dataset comes back from :func:`load_dataset` as an
:class:`~dimcollapse.data.image_dataset.ImageDataset` whose items are ``(uint8 (C, H, W), int)``.
All formats but ``imagefolder`` are held in memory as one uint8 ``(N, C, H, W)`` tensor, which
lets the training loop move the whole set to the accelerator once and augment it there. Each
dataset's facts (its reader, normalisation, download, root) are its record in
:data:`dimcollapse.data.formats.FORMATS`; nothing is downloaded unless asked.
"""

from __future__ import annotations

import torch

from dimcollapse.data.formats import FORMATS, DatasetFormat, Request, download_with_torchvision
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.errors import UsageError

#: Every dataset name, in the order of :data:`~dimcollapse.data.formats.FORMATS`.
DATASETS: tuple[str, ...] = tuple(FORMATS)
SPLITS = ("train", "test")


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
    the files with torchvision into ``root`` (the datasets whose record names a torchvision class);
    ``subset`` keeps a random subset of that size, drawn with a generator seeded by ``seed``;
    ``test_file`` is the ``npz`` test file; ``image_size`` is the target size for ``imagefolder``
    (default: its reader's ``DEFAULT_IMAGE_SIZE``) and must match the native size, if given, for the other formats.
    ``can_download``: whether the caller's command has a ``--download`` option (the advice
    for missing files names it, or else the command that has it).
    Raises :class:`UsageError` for unknown names or splits and for missing or malformed files.
    """
    fmt = _check_request(name, split, root, download)
    if download:
        download_with_torchvision(fmt, split, str(root))
    where = f" --data-root {root}" if root else ""
    fetch = (
        "fetch them with --download"
        if can_download
        else f"let `dimcollapse train --dataset {name}{where}` fetch them (its download "
        "option; this command has none)"
    )
    ds = fmt.reader(fmt, Request(split, root, fetch, test_file=test_file, image_size=image_size))

    if image_size is not None and name != "imagefolder" and image_size != ds.image_size:
        raise UsageError(
            f"dataset {name!r} has {ds.image_size}x{ds.image_size} images; image size "
            f"{image_size} applies only to imagefolder"
        )
    if subset is not None:
        ds = _subset(ds, subset, seed)
    return ds


def _check_request(name: str, split: str, root: str | None, download: bool) -> DatasetFormat:
    """The dataset's record; refuses unknown names and splits, a missing root and a download the
    dataset cannot have."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise UsageError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if download and not fmt.downloadable:
        raise UsageError(f"dataset {name!r} cannot be downloaded; give its files with a root")
    if fmt.needs_root and not root:
        raise UsageError(f"dataset {name!r} needs {fmt.needs_root} (--data-root)")
    if download and not root:
        raise UsageError(f"downloading {name!r} needs a data directory to put it in (--data-root)")
    return fmt


def seeded_indices(total: int, size: int, seed: int) -> torch.Tensor:
    """``size`` distinct indices of ``range(total)``: a random draw seeded by ``seed``, in the
    order drawn (the first ``size`` of a seeded permutation)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(total, generator=gen)[:size]


def at_most(ds: ImageDataset, n: int, seed: int) -> ImageDataset:
    """A seeded draw of ``n`` of the dataset's images (in the order drawn), or all of them (in
    their order) when it has no more than ``n``."""
    return ds if len(ds) <= n else ds.select(seeded_indices(len(ds), n, seed))


def _subset(ds: ImageDataset, size: int, seed: int) -> ImageDataset:
    n = len(ds)
    if not 1 <= size <= n:
        raise UsageError(f"subset must be between 1 and {n} (the size of {ds.name}), got {size}")
    return ds.select(seeded_indices(n, size, seed).sort().values)
