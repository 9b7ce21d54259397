"""Sections 4-5 on real images: the paper's linear encoders trained with InfoNCE on pixels.

The theory lab (:mod:`dimcollapse.toy`) checks the paper's lemmas on Gaussian inputs. Here the
same models meet real data: a stack of ``layers`` bias-free linear maps ``784 -> width -> ... ->
width`` (optionally with a ReLU between them) encodes flattened Fashion-MNIST pixels, trained
with plain SGD on InfoNCE (Eq. 2, temperature 0.1, on row-normalised z as in section 6.2) over
two views of each image, made either

* by the **real augmentations** (:class:`~dimcollapse.data.device_augment.DeviceTwoViewAugment`:
  random resized crop, flip, brightness and contrast jitter) at a ``strength``
  (:meth:`~dimcollapse.data.augment_config.AugmentConfig.scaled`), or
* by **additive Gaussian noise** of standard deviation ``strength`` on the normalised pixels,
  the paper's own augmentation in its toy models (section 4).

The embedding spectrum (Eq. 1, row-normalised z as the paper's ``spectrum.py``) of held-out
images is measured at initialisation and at the end; collapse is counted by the cliff rule
(:func:`dimcollapse.spectrum.metrics.cliff_collapse`) with the threshold table beside it. Two
mechanisms are then visible on real images: Theorem 1 (one linear layer collapses where the
augmentation's variance exceeds the data's: more collapse as ``strength`` grows) and
Theorem 3 / Fig. 6a (more layers, more collapse, none at one layer with small augmentation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dimcollapse.data.augment_config import AugmentConfig
from dimcollapse.data.datasets import at_most, load_dataset
from dimcollapse.data.device_augment import DeviceTwoViewAugment
from dimcollapse.errors import UsageError
from dimcollapse.losses import info_nce
from dimcollapse.spectrum import summarize

#: How the two views are made.
VIEWS = ("augment", "noise")


@dataclass(frozen=True)
class ImageToyConfig:
    """One linear encoder on real images (see the module docstring).

    ``width``: every layer's output size; ``strength``: the augmentation's scale (``views``
    "augment", 1 = the dataset's recipe) or the noise's standard deviation in normalised-pixel
    units (``views`` "noise"); ``lr``: plain SGD's step (the loss sees unit vectors, so the
    gradient's scale does not grow with the weights); ``train_images`` / ``eval_images``: how
    many training images feed the views and how many test images the spectrum is read on.
    """

    layers: int = 1
    width: int = 128
    relu: bool = False
    views: str = "augment"
    strength: float = 1.0
    steps: int = 1000
    batch_size: int = 256
    lr: float = 1.0
    temperature: float = 0.1
    train_images: int = 20000
    eval_images: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.layers <= 8:
            raise UsageError(f"layers must be between 1 and 8, got {self.layers}")
        if self.views not in VIEWS:
            raise UsageError(f"views must be one of {', '.join(VIEWS)}, got {self.views!r}")
        if self.width < 2 or self.steps < 1 or self.batch_size < 2:
            raise UsageError("width and batch size must be at least 2, steps at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.strength < 0:
            raise UsageError("lr must be positive and finite, strength non-negative")

    @property
    def label(self) -> str:
        """``L=2 ReLU, augment x1`` or ``L=1, noise 0.5``."""
        kind = (
            f"augment x{self.strength:g}" if self.views == "augment" else f"noise {self.strength:g}"
        )
        return f"L={self.layers}{' ReLU' if self.relu else ''}, {kind}"


def build_encoder(cfg: ImageToyConfig, in_dim: int) -> nn.Sequential:
    """``layers`` bias-free ``nn.Linear`` maps (PyTorch's default initialisation) with an
    optional ReLU between them (never after the last): ``(B, in_dim) -> (B, width)``."""
    mods: list[nn.Module] = []
    for i in range(cfg.layers):
        mods.append(nn.Linear(in_dim if i == 0 else cfg.width, cfg.width, bias=False))
        if cfg.relu and i < cfg.layers - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


#: Augmented pairs drawn per training image (``views`` "augment"): made once per strength and
#: seed and shared by every encoder of that seed (the augmentation is the costly part: about
#: 70% of a step on a CPU); each pair is then seen ``steps * batch_size / (pairs * images)``
#: times.
PAIRS_PER_IMAGE = 4


class Views:
    """Two views of a uint8 (B, C, H, W) batch, flattened to (B, C*H*W) normalised pixels."""

    def __init__(self, cfg: ImageToyConfig, mean: Sequence[float], std: Sequence[float], shape):
        channels, size = int(shape[0]), int(shape[-1])
        self.cfg = cfg
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        recipe = AugmentConfig.for_dataset(size, channels)
        self.augment = DeviceTwoViewAugment(recipe.scaled(cfg.strength), mean, std, channels)

    def clean(self, images: Tensor) -> Tensor:
        """(B, D) normalised pixels, no augmentation."""
        return ((images.float() / 255.0 - self.mean) / self.std).flatten(1)

    def __call__(self, images: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.cfg.views == "noise":
            x = self.clean(images)
            noise = torch.randn((2, *x.shape), generator=gen) * self.cfg.strength
            return x + noise[0], x + noise[1]
        v1, v2 = self.augment(images, gen)
        return v1.flatten(1), v2.flatten(1)

    def pool(self, images: Tensor, gen: torch.Generator, pairs_per_image: int) -> Tensor:
        """(P, 2, D) augmented pairs: ``pairs_per_image`` of every image, in batches."""
        chunks = []
        for _ in range(pairs_per_image):
            for start in range(0, images.shape[0], 1024):
                v1, v2 = self(images[start : start + 1024], gen)
                chunks.append(torch.stack((v1, v2), dim=1))
        return torch.cat(chunks)


def _spectrum(encoder: nn.Module, x: Tensor) -> dict[str, Any]:
    """The row-normalised embedding's summary (the paper's measure) and the raw one's count."""
    with torch.no_grad():
        z = encoder(x)  # float32: the floor is float32's rounding
    normed = summarize(z, normalize=True).to_dict()
    raw = summarize(z).to_dict()
    return {
        "summary": normed,
        "raw_collapsed_dims": raw["collapsed_dims"],
        "raw_dead_dims": len(raw["dead_dims"]),
    }


def train_image_toy(
    cfg: ImageToyConfig,
    train_images: Tensor,
    eval_images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    pairs: Tensor | None = None,
) -> dict[str, Any]:
    """Train one encoder; returns ``{"config", "label", "init", "final", "loss"}``.

    ``train_images`` / ``eval_images``: uint8 (N, C, H, W) tensors; ``init`` and ``final`` are
    :func:`_spectrum`'s records of the embedding of ``eval_images`` before and after training;
    ``loss``: the first step's and the mean of the last 50. ``pairs``: (P, 2, D) augmented views
    to draw batches from (:meth:`Views.pool`); None makes them (``views`` "augment") or draws
    fresh noise every step ("noise").
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    views = Views(cfg, mean, std, train_images.shape[1:])
    encoder = build_encoder(cfg, int(np.prod(train_images.shape[1:])))
    held_out = views.clean(eval_images)
    init = _spectrum(encoder, held_out)
    if pairs is None and cfg.views == "augment":
        pairs = views.pool(train_images, gen, PAIRS_PER_IMAGE)
    opt = torch.optim.SGD(encoder.parameters(), lr=cfg.lr)
    losses = []
    n = train_images.shape[0] if pairs is None else pairs.shape[0]
    for _ in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
        if pairs is None:
            x1, x2 = views(train_images[idx], gen)
        else:
            x1, x2 = pairs[idx, 0], pairs[idx, 1]
        loss = info_nce(encoder(x1), encoder(x2), cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    if not all(math.isfinite(v) for v in losses):
        raise UsageError(f"the image toy {cfg.label} diverged (non-finite loss); lower lr")
    return {
        "config": asdict(cfg),
        "label": cfg.label,
        "init": init,
        "final": _spectrum(encoder, held_out),
        "loss": [losses[0], float(np.mean(losses[-50:]))],
    }


@dataclass(frozen=True)
class ImageSweep:
    """A named set of encoders: the default config and the values one field takes."""

    name: str
    title: str
    field: str
    values: tuple[Any, ...]
    base: ImageToyConfig


#: The sweeps the reproduction runs (each at every seed): depth under the real augmentations
#: and under additive noise, ReLU at depth 2, and Theorem 1's strength sweep at one layer.
IMAGE_SWEEPS: tuple[ImageSweep, ...] = (
    ImageSweep("depth", "Depth, real augmentations (Fig. 6a on images)", "layers", (1, 2, 3),
               ImageToyConfig()),
    ImageSweep("depth-noise", "Depth, additive noise 0.5 (the toy's views)", "layers", (1, 2, 3),
               ImageToyConfig(views="noise", strength=0.5)),
    ImageSweep("relu", "Two layers with a ReLU (Fig. 6b on images)", "relu", (True,),
               ImageToyConfig(layers=2)),
    ImageSweep("strength", "Augmentation strength, one layer (Theorem 1 on images)", "strength",
               (0.25, 0.5, 1.0, 1.5), ImageToyConfig()),
)  # fmt: skip


def sweep_configs(sweep: ImageSweep, **overrides: Any) -> list[ImageToyConfig]:
    """The sweep's configs with ``overrides`` (steps, seed, ...) applied to each."""
    return [replace(sweep.base, **{sweep.field: v}, **overrides) for v in sweep.values]


def run_image_lab(
    train_images: Tensor,
    eval_images: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    seed: int,
    steps: int,
    sweeps: Sequence[ImageSweep] = IMAGE_SWEEPS,
    log: Any = None,
) -> list[dict[str, Any]]:
    """Every sweep's encoders at one seed: ``[{"sweep", "value", **train_image_toy(...)}]``.

    The augmented pairs of each strength are made once (same seed) and shared by the encoders
    that use them; a config met twice (the strength sweep's 1.0 is the depth sweep's L = 1) is
    trained once.
    """
    configs: list[tuple[str, Any, ImageToyConfig]] = []
    for sweep in sweeps:
        for value, cfg in zip(sweep.values, sweep_configs(sweep, seed=seed, steps=steps)):
            configs.append((sweep.name, value, cfg))
    done: dict[ImageToyConfig, dict[str, Any]] = {}
    pools: dict[float, Tensor] = {}
    records = []
    for name, value, cfg in configs:
        if cfg not in done:
            pairs = None
            if cfg.views == "augment":
                if cfg.strength not in pools:
                    pools.clear()  # one strength's pairs in memory at a time
                    gen = torch.Generator().manual_seed(seed)
                    views = Views(cfg, mean, std, train_images.shape[1:])
                    pools[cfg.strength] = views.pool(train_images, gen, PAIRS_PER_IMAGE)
                pairs = pools[cfg.strength]
            done[cfg] = train_image_toy(cfg, train_images, eval_images, mean, std, pairs)
            if log is not None:
                log(f"image lab, seed {seed}: {cfg.label} done")
        records.append({"sweep": name, "value": value, **done[cfg]})
    return records


#: Training images that feed the views and test images the spectra are read on (a seeded draw).
TRAIN_IMAGES = 20000
EVAL_IMAGES = 2000


def run_image_lab_on(
    dataset: str,
    *,
    root: str | None = None,
    seed: int,
    steps: int,
    can_download: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """:func:`run_image_lab` on a dataset by name (``TRAIN_IMAGES`` training images feed the
    views, ``EVAL_IMAGES`` test images give the spectra; seeded draws): ``{"seed", "records"}``
    (``records`` empty, with a ``note``, for a dataset not held in memory)."""
    common = {"root": root, "seed": seed, "can_download": can_download}
    train = at_most(load_dataset(dataset, "train", **common), TRAIN_IMAGES, seed)
    test = at_most(load_dataset(dataset, "test", **common), EVAL_IMAGES, seed)
    train_x, test_x = train.tensors(), test.tensors()
    if train_x is None or test_x is None:
        return {"seed": seed, "records": [], "note": "dataset not held in memory"}
    records = run_image_lab(
        train_x[0], test_x[0], train.mean, train.std, seed=seed, steps=steps, log=log
    )
    return {"seed": seed, "records": records}


def aggregate_images(results: Sequence[Mapping[str, Any]], steps: int | None) -> dict[str, Any]:
    """Per-seed results as ``reproduce.json`` and ``toy images`` keep them: ``{"steps",
    "seeds", "records": [per seed, each its records], "seconds"}`` ({} when none ran)."""
    if not results or not any(r.get("records") for r in results):
        return {}
    return {
        "steps": steps,
        "seeds": [r["seed"] for r in results],
        "records": [list(r.get("records") or []) for r in results],
        "seconds": sum(float(r.get("seconds") or 0.0) for r in results),
    }
