"""Loaders that hand the trainer ready views on its device: the one plug-in point for data.

:func:`build_view_loader` returns a :class:`ViewLoader` that yields ``(view1, view2, labels)`` on
the target device, by one of two paths:

* ``device``: the whole uint8 dataset is moved to the device once; each step gathers a batch and
  :class:`~dimcollapse.data.device_augment.DeviceTwoViewAugment` makes both views there.
  For image folders (ImageNet layout) DataLoader workers only read the files' bytes; the JPEGs
  are decoded on the device (``torchvision.io.decode_jpeg(..., device=...)``, nvJPEG on a GPU),
  images whose longer side exceeds :data:`MAX_DECODED_SIDE` are shrunk (antialiased), the batch
  is padded into one tensor and the same batched augmentation crops each image inside its own
  size.
* ``workers``: a torch ``DataLoader`` runs :class:`~dimcollapse.data.augment.TwoViewTransform`
  per image in worker processes (or in this process with ``workers=0``), with pinned memory and
  non-blocking copies on CUDA.

Both paths draw the same indices (:mod:`~dimcollapse.data.sharding`: a permutation per
(seed, epoch), dealt out to the ranks like ``DistributedSampler``, disjoint shards). Views are a
pure function of (seed, epoch, rank, step) on the device path (one generator per step and rank)
and of (seed, epoch, image index) on the workers path (each image's transform runs under its own
seed, in a forked RNG so the caller's RNG is untouched), whatever the number of workers and
whatever ran before: ``set_epoch(e, start_step=k)`` yields exactly the batches k, k + 1, ... of
epoch e that an uninterrupted epoch would have, so a resume at any step repeats the run.

Here too for the callers that import them from this module: :func:`build_eval_loader`
(:mod:`~dimcollapse.data.eval_loader`), :func:`decode_images` and :func:`pad_batch`
(:mod:`~dimcollapse.data.decode`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from dimcollapse.data.augment import AugmentConfig, TwoViewTransform
from dimcollapse.data.decode import MAX_DECODED_SIDE, decode_images, pad_batch
from dimcollapse.data.device_augment import DeviceTwoViewAugment
from dimcollapse.data.eval_loader import build_eval_loader
from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.data.sharding import check_loader_args, mix_seed, shard_indices
from dimcollapse.errors import UsageError

__all__ = [
    "MAX_DECODED_SIDE",
    "PATHS",
    "ViewLoader",
    "build_eval_loader",
    "build_view_loader",
    "decode_images",
    "pad_batch",
]

PATHS = ("auto", "device", "workers")


class ViewLoader:
    """Yields ``(view1, view2, labels)`` batches on ``device`` for one epoch at a time.

    ``set_epoch(e, start_step=k)`` chooses the epoch whose order and views the next iteration
    produces, starting at its step k (a mid-epoch resume); ``len()`` is the number of steps of a
    whole epoch; ``path`` is ``"device"`` or ``"workers"``.
    """

    path: str = ""

    def __init__(
        self,
        dataset: ImageDataset,
        cfg: AugmentConfig,
        *,
        batch_size: int,
        device: torch.device,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
    ) -> None:
        self.dataset = dataset
        self.cfg = cfg
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.start_step = 0
        self.per_rank = len(dataset) // self.world_size

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Make the next iteration produce epoch ``epoch``'s order and views from its step
        ``start_step`` on (the batches before it are skipped without being made)."""
        if not 0 <= start_step <= len(self):
            raise UsageError(f"start step {start_step} is not in 0..{len(self)}")
        self.epoch = int(epoch)
        self.start_step = int(start_step)

    def _step_generator(self, step: int) -> torch.Generator:
        """The augmentation generator of one step on the device path: views depend only on
        (seed, epoch, rank, step), so a resume can start at any step."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(mix_seed(self.seed, self.epoch, self.rank, 1, step))
        return gen

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return math.ceil(self.per_rank / self.batch_size)

    def _indices(self) -> Tensor:
        return shard_indices(len(self.dataset), self.seed, self.epoch, self.rank, self.world_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:  # pragma: no cover - abstract
        raise NotImplementedError


class _DeviceViewLoader(ViewLoader):
    path = "device"

    def __init__(self, dataset: ImageDataset, cfg: AugmentConfig, **kw) -> None:
        super().__init__(dataset, cfg, **kw)
        held = dataset.tensors()
        assert held is not None
        images, labels = held
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.augment = DeviceTwoViewAugment(cfg, dataset.mean, dataset.std, dataset.channels)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        indices = self._indices()
        for step in range(self.start_step, len(self)):
            batch = indices[step * self.batch_size : (step + 1) * self.batch_size]
            batch = batch.to(self.device, non_blocking=True)
            images = self.images.index_select(0, batch)
            view1, view2 = self.augment(images, self._step_generator(step))
            yield view1, view2, self.labels.index_select(0, batch)


class _FileBytes(torch.utils.data.Dataset):
    """Raw file bytes and label of each ``(path, label)`` sample (decoding happens later)."""

    def __init__(self, samples: list[tuple[str, int]]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, label = self.samples[index]
        with open(path, "rb") as fh:
            data = fh.read()
        return torch.frombuffer(bytearray(data), dtype=torch.uint8), label


def _collate_bytes(items: list[tuple[Tensor, int]]) -> tuple[list[Tensor], Tensor]:
    return [b for b, _ in items], torch.tensor([lab for _, lab in items], dtype=torch.int64)


class _ShardSampler(torch.utils.data.Sampler):
    """This rank's shard of the current epoch (the same order on every path), from position
    ``skip`` on."""

    def __init__(self, n: int, seed: int, rank: int, world_size: int) -> None:
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0
        self.skip = 0  # positions of the shard already trained on (a mid-epoch resume)

    def __len__(self) -> int:
        return self.n // self.world_size - self.skip

    def _remaining(self) -> Tensor:
        shard = shard_indices(self.n, self.seed, self.epoch, self.rank, self.world_size)
        return shard[self.skip :]


class _IndexSampler(_ShardSampler):
    """Yields the indices of this rank's shard of the current epoch."""

    def __iter__(self) -> Iterator[int]:
        yield from self._remaining().tolist()


class _FileDeviceViewLoader(ViewLoader):
    """Device path for datasets read from files: bytes in workers, decode + augment on device."""

    path = "device"

    def __init__(self, dataset: ImageDataset, cfg: AugmentConfig, *, workers: int, **kw) -> None:
        super().__init__(dataset, cfg, **kw)
        samples = dataset.samples()
        assert samples is not None
        self.sampler = _IndexSampler(len(dataset), self.seed, self.rank, self.world_size)
        self.loader = torch.utils.data.DataLoader(
            _FileBytes(samples),
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=_collate_bytes,
            drop_last=self.drop_last,
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(mix_seed(self.seed, self.rank, 4)),
        )
        self.augment = DeviceTwoViewAugment(cfg, dataset.mean, dataset.std, dataset.channels)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        self.sampler.epoch = self.epoch
        self.sampler.skip = self.start_step * self.batch_size
        for step, (data, labels) in enumerate(self.loader, start=self.start_step):
            gen = self._step_generator(step)
            images = decode_images(data, self.device)
            batch, heights, widths = pad_batch(images, MAX_DECODED_SIDE)
            hh, ww = heights.to(self.device), widths.to(self.device)
            views = []
            for view in (0, 1):
                params = self.augment.sample_params(
                    len(images), hh, ww, gen, view=view, device=self.device
                )
                views.append(self.augment.apply(batch, params))
            yield views[0], views[1], labels.to(self.device, non_blocking=True)


class _SeededSampler(_ShardSampler):
    """Yields ``(index, per-image seed)`` for this rank's shard of the current epoch."""

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = self._remaining()
        gen = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 2))
        seeds = torch.randint(0, 1 << 62, (self.n,), generator=gen)
        for i in indices.tolist():
            yield i, int(seeds[i])


class _TwoViewDataset(torch.utils.data.Dataset):
    """Applies the CPU recipe to one image under its own seed, leaving the global RNG as it was."""

    def __init__(self, dataset: ImageDataset, transform: TwoViewTransform) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor, int]:
        index, sample_seed = key
        image, label = self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed)
            view1, view2 = self.transform(image)
        return view1, view2, label


class _WorkerViewLoader(ViewLoader):
    path = "workers"

    def __init__(self, dataset: ImageDataset, cfg: AugmentConfig, *, workers: int, **kw) -> None:
        super().__init__(dataset, cfg, **kw)
        transform = TwoViewTransform(cfg, dataset.mean, dataset.std, dataset.channels)
        self.sampler = _SeededSampler(len(dataset), self.seed, self.rank, self.world_size)
        self.loader = torch.utils.data.DataLoader(
            _TwoViewDataset(dataset, transform),
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            drop_last=self.drop_last,
            persistent_workers=workers > 0,
            # the DataLoader draws its workers' base seed from this, not from the global RNG
            generator=torch.Generator().manual_seed(mix_seed(self.seed, self.rank, 3)),
        )

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        self.sampler.epoch = self.epoch
        self.sampler.skip = self.start_step * self.batch_size
        for view1, view2, labels in self.loader:
            yield (
                view1.to(self.device, non_blocking=True),
                view2.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
            )


def build_view_loader(
    dataset: ImageDataset,
    cfg: AugmentConfig,
    *,
    batch_size: int,
    device: torch.device,
    path: str = "auto",
    workers: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = True,
) -> ViewLoader:
    """A :class:`ViewLoader` of two-view batches of ``batch_size`` (per process) on ``device``.

    ``path``: ``"device"`` (augment on the device; image folders are decoded there too),
    ``"workers"`` (CPU DataLoader workers) or ``"auto"`` (``device`` on CUDA, else ``workers``).
    Raises :class:`UsageError` for an unknown path or a dataset smaller than one global batch.
    """
    device = torch.device(device)
    check_loader_args(batch_size, workers, rank, world_size)
    if path not in PATHS:
        raise UsageError(f"unknown data path {path!r}; valid: {', '.join(PATHS)}")
    in_memory = dataset.tensors() is not None
    if path == "auto":
        path = "device" if device.type == "cuda" else "workers"
    global_batch = batch_size * world_size
    if len(dataset) < global_batch:
        raise UsageError(
            f"the dataset has {len(dataset)} images, fewer than one global batch "
            f"({batch_size} x {world_size} processes = {global_batch}); lower the batch size"
        )
    kw = dict(
        batch_size=batch_size,
        device=device,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
    )
    if path == "device" and not in_memory:
        return _FileDeviceViewLoader(dataset, cfg, workers=workers, **kw)
    if path == "device":
        return _DeviceViewLoader(dataset, cfg, **kw)
    return _WorkerViewLoader(dataset, cfg, workers=workers, **kw)
