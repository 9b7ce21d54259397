"""Downloads, only when asked: torchvision fetches its own formats' files into a root."""

from __future__ import annotations

from dimcollapse.errors import UsageError


def download_with_torchvision(name: str, split: str, root: str) -> None:
    """Fetch one split of a :data:`~dimcollapse.data.datasets.DOWNLOADABLE` dataset into ``root`` with torchvision."""
    import torchvision.datasets as tvd

    cls = {
        "fashion-mnist": tvd.FashionMNIST,
        "mnist": tvd.MNIST,
        "cifar10": tvd.CIFAR10,
        "cifar100": tvd.CIFAR100,
        "stl10": tvd.STL10,
    }[name]
    which = {"split": split} if name == "stl10" else {"train": split == "train"}
    try:
        cls(root, download=True, **which)
    except Exception as exc:  # network or disk failure: report it as the user's problem
        raise UsageError(f"downloading {name} into {root} failed: {exc}") from exc
