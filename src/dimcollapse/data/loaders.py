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

Both paths draw the same indices: each epoch's order is a permutation from a generator seeded by
(seed, epoch), truncated to a multiple of ``world_size`` and dealt out like ``DistributedSampler``
(rank r takes positions r, r + world_size, ...), so the ranks' shards are disjoint. Views are a
pure function of (seed, epoch, rank, step) on the device path (one generator per step and rank)
and of (seed, epoch, image index) on the workers path (each image's transform runs under its own
seed, in a forked RNG so the caller's RNG is untouched), whatever the number of workers and
whatever ran before: ``set_epoch(e, start_step=k)`` yields exactly the batches k, k + 1, ... of
epoch e that an uninterrupted epoch would have, so a resume at any step repeats the run.

:func:`build_eval_loader` yields normalised, unaugmented images in a fixed order, keeping the last
partial batch; rank r of ``world_size`` gets indices r, r + world_size, ... (no padding).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from dimcollapse.data.augment import AugmentConfig, EvalTransform, TwoViewTransform
from dimcollapse.data.datasets import ImageDataset
from dimcollapse.data.device_augment import DeviceTwoViewAugment
from dimcollapse.errors import UsageError

PATHS = ("auto", "device", "workers")

#: Decoded images whose longer side exceeds this are shrunk before cropping on the device path
#: (like FFCV's ``max_resolution``): it bounds the padded batch's memory; typical ImageNet
#: images (about 500 x 375) are untouched.
MAX_DECODED_SIDE = 512


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from a tuple of integers (e.g. seed, epoch, rank)."""
    state = np.random.SeedSequence([int(v) % (1 << 64) for v in values]).generate_state(
        2, dtype=np.uint32
    )
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def shard_indices(n: int, seed: int, epoch: int, rank: int, world_size: int) -> Tensor:
    """This rank's indices for an epoch: a seeded permutation, truncated and strided by rank."""
    gen = torch.Generator().manual_seed(mix_seed(seed, epoch, 0))
    perm = torch.randperm(n, generator=gen)
    total = (n // world_size) * world_size
    return perm[rank:total:world_size]


def _check_common(batch_size: int, workers: int, rank: int, world_size: int) -> None:
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if workers < 0:
        raise UsageError(f"workers must be 0 or more, got {workers}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise UsageError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")


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


def decode_images(data: list[Tensor], device: torch.device) -> list[Tensor]:
    """Decode encoded images to uint8 RGB (3, h, w) on ``device``.

    JPEGs are decoded in one batched call on ``device`` (nvJPEG on CUDA); anything else (PNG,
    a JPEG the device decoder refuses) is decoded on the CPU and moved.
    """
    import warnings

    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders in favour of TorchCodec; they still work and
        # are the ones older torchvision (the GPU machines') has.
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    out: list[Tensor | None] = [None] * len(data)
    jpeg = [i for i, d in enumerate(data) if d.numel() > 2 and d[0] == 0xFF and d[1] == 0xD8]
    if jpeg:
        try:
            decoded = decode_jpeg([data[i] for i in jpeg], mode=ImageReadMode.RGB, device=device)
            for i, img in zip(jpeg, decoded):
                out[i] = img
        except RuntimeError:
            pass  # e.g. a CMYK or progressive JPEG nvJPEG rejects: decode those on the CPU
    for i, img in enumerate(out):
        if img is None:
            out[i] = decode_image(data[i], mode=ImageReadMode.RGB).to(device)
    return out  # type: ignore[return-value]


def pad_batch(images: list[Tensor], max_side: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pad (3, h_i, w_i) uint8 images into one (B, 3, H, W) tensor, top-left aligned.

    Images whose longer side exceeds ``max_side`` are first shrunk (antialiased bilinear) to it.
    Returns the batch and the (B,) int64 heights and widths of the images inside it.
    """
    import torch.nn.functional as F

    fitted = []
    for img in images:
        h, w = img.shape[-2:]
        if max(h, w) > max_side:
            scale = max_side / max(h, w)
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            img = (
                F.interpolate(
                    img[None].float(),
                    size=size,
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )[0]
                .round_()
                .clamp_(0, 255)
                .to(torch.uint8)
            )
        fitted.append(img)
    heights = torch.tensor([im.shape[-2] for im in fitted], dtype=torch.int64)
    widths = torch.tensor([im.shape[-1] for im in fitted], dtype=torch.int64)
    batch = fitted[0].new_zeros((len(fitted), 3, int(heights.max()), int(widths.max())))
    for i, img in enumerate(fitted):
        batch[i, :, : img.shape[-2], : img.shape[-1]] = img
    return batch, heights, widths


class _IndexSampler(torch.utils.data.Sampler):
    """This rank's shard of the current epoch (the same order as the other paths)."""

    def __init__(self, n: int, seed: int, rank: int, world_size: int) -> None:
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0
        self.skip = 0  # positions of the shard already trained on (a mid-epoch resume)

    def __len__(self) -> int:
        return self.n // self.world_size - self.skip

    def __iter__(self) -> Iterator[int]:
        shard = shard_indices(self.n, self.seed, self.epoch, self.rank, self.world_size)
        yield from shard[self.skip :].tolist()


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


class _SeededSampler(torch.utils.data.Sampler):
    """Yields ``(index, per-image seed)`` for this rank's shard of the current epoch."""

    def __init__(self, n: int, seed: int, rank: int, world_size: int) -> None:
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0
        self.skip = 0  # positions of the shard already trained on (a mid-epoch resume)

    def __len__(self) -> int:
        return self.n // self.world_size - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = shard_indices(self.n, self.seed, self.epoch, self.rank, self.world_size)
        gen = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 2))
        seeds = torch.randint(0, 1 << 62, (self.n,), generator=gen)
        for i in indices[self.skip :].tolist():
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
    _check_common(batch_size, workers, rank, world_size)
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
    are resized to ``int(S * 256 / 224)`` and centre-cropped to ``S = dataset.image_size`` in
    ``workers`` DataLoader processes. Keeps the last partial batch; rank r of ``world_size`` takes
    indices r, r + world_size, ... without padding.
    """
    _check_common(batch_size, workers, rank, world_size)
    return EvalLoader(
        dataset,
        batch_size=batch_size,
        device=torch.device(device),
        workers=workers,
        rank=rank,
        world_size=world_size,
    )
