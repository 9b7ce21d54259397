"""Downloads, only when asked: torchvision fetches its own formats' files into a root."""

from __future__ import annotations

import inspect

from dimcollapse.data.formats.record import DatasetFormat
from dimcollapse.errors import UsageError


def download_with_torchvision(fmt: DatasetFormat, split: str, root: str) -> None:
    """Fetch one split of a downloadable dataset into ``root`` with its torchvision class."""
    import torchvision.datasets as tvd  # torch-free --help: torchvision 2650 ms with torch

    cls = getattr(tvd, str(fmt.torchvision))
    # STL10 names its splits; the others take train=True/False
    takes_split = "split" in inspect.signature(cls).parameters
    which = {"split": split} if takes_split else {"train": split == "train"}
    try:
        cls(root, download=True, **which)
    except Exception as exc:  # network or disk failure: report it as the user's problem
        raise UsageError(f"downloading {fmt.name} into {root} failed: {exc}") from exc
