"""The dataset type every reader returns: :class:`ImageDataset`, items ``(uint8 (C, H, W), int)``.

A leaf of the data package: the readers in :mod:`dimcollapse.data.formats` build it, and
:func:`dimcollapse.data.datasets.load_dataset` hands it on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dimcollapse.data.decode import decode_rgb


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

    def labels(self) -> Tensor:
        """Every item's label, int64 (N,), in the dataset's order (in memory or from files)."""
        if self._labels is not None:
            return self._labels
        assert self._samples is not None
        return torch.tensor([label for _path, label in self._samples], dtype=torch.int64)

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
