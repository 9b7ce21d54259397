"""The eval loader: normalised, unaugmented images in a fixed order, for probes and spectra.

:func:`build_eval_loader` keeps the last partial batch; rank r of ``world_size`` gets indices
r, r + world_size, ... (no padding).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from dimcollapse.choices import FEATURE_BATCH as FEATURE_BATCH
from dimcollapse.data.augment import EvalTransform
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.data.sharding import check_loader_args


class _EvalDataset(torch.utils.data.Dataset):
    def __init__(self, dataset: ImageDataset, indices: list[int], transform: EvalTransform) -> None:
        self.dataset, self.indices, self.transform = dataset, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image, label = self.dataset[self.indices[i]]
        return self.transform(image), label


class EvalLoader:
    """Unaugmented, normalised ``(images, labels)`` batches on ``device`` in a fixed order."""

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        batch_size: int,
        device: torch.device,
        workers: int,
        rank: int,
        world_size: int,
    ) -> None:
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.indices = list(range(rank, len(dataset), world_size))
        self._mean = torch.tensor(dataset.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(dataset.std, dtype=torch.float32).view(1, -1, 1, 1)
        self._loader = None
        if dataset.tensors() is None:
            transform = EvalTransform(dataset.image_size, dataset.mean, dataset.std, True)
            self._loader = torch.utils.data.DataLoader(
                _EvalDataset(dataset, self.indices, transform),
                batch_size=self.batch_size,
                shuffle=False,
                num_workers=workers,
                pin_memory=self.device.type == "cuda",
                drop_last=False,
                generator=torch.Generator().manual_seed(0),
            )

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self._loader is not None:
            for images, labels in self._loader:
                yield (
                    images.to(self.device, non_blocking=True),
                    labels.to(self.device, non_blocking=True),
                )
            return
        yield from self._held_batches()

    def _held_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of an in-memory dataset, converted and normalised on the device."""
        held = self.dataset.tensors()
        assert held is not None
        images, labels = held
        mean, std = self._mean.to(self.device), self._std.to(self.device)
        order = torch.tensor(self.indices, dtype=torch.int64)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = images.index_select(0, idx).to(self.device, non_blocking=True)
            x = (batch.float() / 255.0 - mean) / std
            yield x, labels.index_select(0, idx).to(self.device, non_blocking=True)


def build_eval_loader(
    dataset: ImageDataset,
    *,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> EvalLoader:
    """Fixed-order, unaugmented batches ``(float normalised (B, C, S, S), int64 labels)``.

    In-memory datasets are only converted and normalised (batched, on ``device``); image folders
    are resized to ``int(resized_side(S))`` and centre-cropped to ``S = dataset.image_size`` in
    ``workers`` DataLoader processes. Keeps the last partial batch; rank r of ``world_size`` takes
    indices r, r + world_size, ... without padding.
    """
    check_loader_args(batch_size, workers, rank, world_size)
    return EvalLoader(
        dataset,
        batch_size=batch_size,
        device=torch.device(device),
        workers=workers,
        rank=rank,
        world_size=world_size,
    )
