"""The two-view augmentation recipe (CPU, per image) and its configuration.

The recipe is the asymmetric BYOL-style one of the paper's code: random resized crop, horizontal
flip, colour jitter (0.4, 0.4, 0.2, 0.1) with probability 0.8, grayscale 0.2, Gaussian blur with
probability 1.0 / 0.1 and solarize with probability 0 / 0.2 for the two views.

Documented choices:

* Small images are those of at most :data:`SMALL_IMAGE_MAX` (64) px, e.g. MNIST's 28 and
  CIFAR's 32; the training defaults that depend on the image size (this recipe, the backbone's
  small-image stem) all test this one threshold.
* ``AugmentConfig.for_dataset`` turns blur and solarize off for small images (the CIFAR-style
  SimCLR recipe) and keeps them for larger images (ImageNet scale).
* Interpolation of the resized crop: bicubic for larger images (as the paper's code at 224 px),
  bilinear for small images; antialiased when downscaling on the CPU path.
* Blur kernel size: 10 % of the output size, rounded down, made odd (at least 3): 23 at 224 px,
  9 at 96 px, as SimCLR/BYOL; border handling is reflection, as torchvision's GaussianBlur.
* One-channel images: saturation, hue and grayscale mean nothing; only brightness and contrast
  jitter are applied (``for_dataset`` also sets saturation, hue and grayscale probability to 0).
* Solarize inverts pixels ``>= 128`` on the uint8 scale (threshold 127.5/255 on the 0..1 scale
  for the device path, which is the same test for values that round to uint8).

The CPU path keeps images uint8 through the geometric and colour operations (as the paper's PIL
pipeline does) and converts to float32 and normalises at the end. It draws its randomness from
torch's global RNG; the loaders seed it per sample so that a (seed, epoch) repeats exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from dimcollapse.errors import UsageError

#: The side (px) up to which an image is small: no blur or solarize, bilinear crops, CIFAR stem.
SMALL_IMAGE_MAX = 64


def use_small_stem(setting: bool | None, image_size: int) -> bool:
    """The backbone's stem: the setting, or by default the CIFAR stem (3x3, stride 1, no
    max-pool) for images of at most :data:`SMALL_IMAGE_MAX` px."""
    return bool(setting) if setting is not None else image_size <= SMALL_IMAGE_MAX


def blur_kernel_size(image_size: int) -> int:
    """Gaussian blur kernel size for an output of ``image_size`` pixels: 10 %, odd, at least 3."""
    k = int(0.1 * image_size)
    if k % 2 == 0:
        k += 1
    return max(k, 3)


@dataclass
class AugmentConfig:
    """Parameters of the two-view augmentation; ``*_prob`` pairs are (view 1, view 2)."""

    image_size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: tuple[float, float] = (1.0, 0.1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: tuple[float, float] = (0.0, 0.2)
    interpolation: str = field(default="auto")

    def __post_init__(self) -> None:
        self.crop_scale = tuple(float(x) for x in self.crop_scale)  # type: ignore[assignment]
        self.crop_ratio = tuple(float(x) for x in self.crop_ratio)  # type: ignore[assignment]
        self.jitter = tuple(float(x) for x in self.jitter)  # type: ignore[assignment]
        self.blur_prob = tuple(float(x) for x in self.blur_prob)  # type: ignore[assignment]
        self.blur_sigma = tuple(float(x) for x in self.blur_sigma)  # type: ignore[assignment]
        self.solarize_prob = tuple(float(x) for x in self.solarize_prob)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> None:
        """Raise :class:`UsageError` for impossible settings."""
        if int(self.image_size) < 1:
            raise UsageError(f"augmentation image size must be positive, got {self.image_size}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise UsageError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        rlo, rhi = self.crop_ratio
        if not 0 < rlo <= rhi:
            raise UsageError(f"crop ratio must satisfy 0 < min <= max, got {self.crop_ratio}")
        b, c, s, h = self.jitter
        if min(b, c, s) < 0 or not 0 <= h <= 0.5:
            raise UsageError(f"jitter must be non-negative with hue <= 0.5, got {self.jitter}")
        if b > 1 or c > 1 or s > 1:
            # factors are drawn from U(1 - x, 1 + x); above 1 they would go negative
            raise UsageError(
                f"brightness/contrast/saturation jitter must be <= 1, got {self.jitter}"
            )
        probs = [self.flip_prob, self.jitter_prob, self.grayscale_prob, *self.blur_prob]
        probs += list(self.solarize_prob)
        if any(not 0 <= p <= 1 for p in probs):
            raise UsageError("augmentation probabilities must lie in [0, 1]")
        slo, shi = self.blur_sigma
        if not 0 < slo <= shi:
            raise UsageError(f"blur sigma must satisfy 0 < min <= max, got {self.blur_sigma}")
        if self.interpolation not in ("auto", "bilinear", "bicubic"):
            raise UsageError(
                f"interpolation must be auto, bilinear or bicubic, got {self.interpolation!r}"
            )

    @property
    def resolved_interpolation(self) -> str:
        """``bicubic`` above :data:`SMALL_IMAGE_MAX` px (the paper's code at 224 px), ``bilinear``
        for small images."""
        if self.interpolation != "auto":
            return self.interpolation
        return "bicubic" if self.image_size > SMALL_IMAGE_MAX else "bilinear"

    @property
    def blur_kernel_size(self) -> int:
        """The Gaussian blur kernel size: 10 % of ``image_size``, odd."""
        return blur_kernel_size(self.image_size)

    def for_channels(self, channels: int) -> AugmentConfig:
        """This config with the colour operations that ``channels``-channel images allow."""
        if channels not in (1, 3):
            raise UsageError(f"augmentation supports 1- or 3-channel images, got {channels}")
        if channels == 3:
            return self
        b, c, _, _ = self.jitter
        return replace(self, jitter=(b, c, 0.0, 0.0), grayscale_prob=0.0)

    @classmethod
    def for_dataset(cls, image_size: int, channels: int) -> AugmentConfig:
        """The paper's recipe for this image size and channel count.

        Blur and solarize are off for small images (:data:`SMALL_IMAGE_MAX` px or less, the
        CIFAR-style SimCLR recipe) and asymmetric (1.0/0.1 and 0/0.2) for larger ones;
        one-channel images get only brightness and contrast jitter and no grayscale.
        """
        cfg = cls(image_size=int(image_size))
        if image_size <= SMALL_IMAGE_MAX:
            cfg = replace(cfg, blur_prob=(0.0, 0.0), solarize_prob=(0.0, 0.0))
        return cfg.for_channels(channels)


def _interp_mode(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode.BICUBIC if name == "bicubic" else InterpolationMode.BILINEAR


def _check_stats(mean: Sequence[float], std: Sequence[float], channels: int) -> None:
    if len(mean) != channels or len(std) != channels:
        raise UsageError(
            f"normalisation stats must have {channels} values each, got {len(mean)} and {len(std)}"
        )
    if any(s <= 0 for s in std):
        raise UsageError("normalisation std must be positive")


class TwoViewTransform:
    """Two augmented views of one uint8 (C, H, W) image, each float32 normalised (C, S, S).

    Built from ``torchvision.transforms.v2``; view 1 and view 2 differ only in their blur and
    solarize probabilities. Randomness comes from torch's global RNG.
    """

    def __init__(
        self, cfg: AugmentConfig, mean: Sequence[float], std: Sequence[float], channels: int
    ) -> None:
        from torchvision.transforms import v2

        _check_stats(mean, std, channels)
        self.cfg = cfg.for_channels(channels)
        self.channels = channels
        cfg = self.cfg
        b, c, s, h = cfg.jitter
        common = [
            v2.RandomResizedCrop(
                cfg.image_size,
                scale=cfg.crop_scale,
                ratio=cfg.crop_ratio,
                interpolation=_interp_mode(cfg.resolved_interpolation),
                antialias=True,
            ),
            v2.RandomHorizontalFlip(p=cfg.flip_prob),
        ]
        if cfg.jitter_prob > 0 and max(cfg.jitter) > 0:
            jitter = v2.ColorJitter(
                brightness=b or None,
                contrast=c or None,
                saturation=(s or None) if channels == 3 else None,
                hue=(h or None) if channels == 3 else None,
            )
            common.append(v2.RandomApply([jitter], p=cfg.jitter_prob))
        if channels == 3 and cfg.grayscale_prob > 0:
            common.append(v2.RandomGrayscale(p=cfg.grayscale_prob))
        tail = [
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
        self.views = []
        for view in (0, 1):
            ops = list(common)
            if cfg.blur_prob[view] > 0:
                blur = v2.GaussianBlur(cfg.blur_kernel_size, sigma=cfg.blur_sigma)
                ops.append(v2.RandomApply([blur], p=cfg.blur_prob[view]))
            if cfg.solarize_prob[view] > 0:
                ops.append(v2.RandomSolarize(threshold=128, p=cfg.solarize_prob[view]))
            self.views.append(v2.Compose(ops + tail))

    def __call__(self, image: Tensor) -> tuple[Tensor, Tensor]:
        if image.dtype != torch.uint8 or image.ndim != 3:
            raise ValueError(
                f"expected a uint8 (C, H, W) image, got {image.dtype} {tuple(image.shape)}"
            )
        return self.views[0](image), self.views[1](image)


def resized_side(image_size: int) -> float:
    """The side an image is resized to before the centre crop of ``image_size``: ImageNet's
    256 -> 224 ratio, ``image_size * 256 / 224`` (the caller rounds it)."""
    return image_size * 256 / 224


class EvalTransform:
    """Deterministic evaluation transform: uint8 (C, H, W) -> float32 normalised.

    With ``resize_then_crop`` (image folders): resize the shorter side to
    ``int(resized_side(image_size))`` (bilinear, antialiased, torchvision's default as in the paper's
    linear probe) then centre-crop ``image_size``; otherwise only convert and normalise.
    """

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        resize_then_crop: bool,
    ) -> None:
        from torchvision.transforms import v2

        ops = []
        if resize_then_crop:
            ops += [
                v2.Resize(int(resized_side(image_size)), antialias=True),
                v2.CenterCrop(image_size),
            ]
        ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
        self.transform = v2.Compose(ops)

    def __call__(self, image: Tensor) -> Tensor:
        return self.transform(image)
