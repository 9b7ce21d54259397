"""The two-view augmentation's configuration (:class:`AugmentConfig`) and the image-size
threshold the training defaults test (:data:`SMALL_IMAGE_MAX`); the recipe itself and its
documented choices are in :mod:`dimcollapse.data.augment`. Torch-free, so that ``train --help``
shows these defaults without importing torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from dimcollapse.errors import UsageError

#: The paper's image side (px), against which :meth:`AugmentConfig.paper_small` scales the blur.
PAPER_IMAGE_SIZE = 224
#: The recipes a training run can start from (:meth:`AugmentConfig.recipe`).
AUG_RECIPES = ("auto", "paper")
#: The smallest crop area :meth:`AugmentConfig.scaled` reaches (strengths above 1).
MIN_CROP_AREA = 0.02
#: The largest augmentation strength accepted.
MAX_STRENGTH = 2.0

#: The side (px) up to which an image is small: no blur or solarize, bilinear crops, CIFAR stem.
SMALL_IMAGE_MAX = 64


def use_small_stem(setting: bool | None, image_size: int) -> bool:
    """The backbone's stem: the setting, or by default the CIFAR stem (3x3, stride 1, no
    max-pool) for images of at most :data:`SMALL_IMAGE_MAX` px."""
    return bool(setting) if setting is not None else image_size <= SMALL_IMAGE_MAX


def check_stats(mean: Sequence[float], std: Sequence[float], channels: int) -> None:
    """Refuse normalisation statistics that do not fit ``channels`` or divide by zero."""
    if len(mean) != channels or len(std) != channels:
        raise UsageError(
            f"normalisation stats must have {channels} values each, got {len(mean)} and {len(std)}"
        )
    if any(s <= 0 for s in std):
        raise UsageError("normalisation std must be positive")


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

    def scaled(self, strength: float) -> AugmentConfig:
        """This recipe at ``strength`` (1: unchanged, 0: no augmentation at all).

        One knob for the augmentation's variance (Theorem 1: collapse where it exceeds the
        data's): the crop's smallest area moves from 1 (``strength`` 0) through the recipe's
        (1) towards :data:`MIN_CROP_AREA` (beyond 1); brightness, contrast and saturation jitter
        and the blur's largest sigma scale linearly (jitter capped at 1, hue at 0.5); the
        probabilities of flip, jitter, grayscale, blur and solarize scale with
        ``min(strength, 1)``.
        """
        s = float(strength)
        if not 0.0 <= s <= MAX_STRENGTH:
            raise UsageError(f"augmentation strength must be in [0, {MAX_STRENGTH:g}], got {s:g}")
        p = min(s, 1.0)
        lo, hi = self.crop_scale
        b, c, sat, h = self.jitter
        sig_lo, sig_hi = self.blur_sigma
        return replace(
            self,
            crop_scale=(min(hi, max(MIN_CROP_AREA, lo + (1.0 - s) * (1.0 - lo))), hi),
            jitter=(min(1.0, b * s), min(1.0, c * s), min(1.0, sat * s), min(0.5, h * s)),
            flip_prob=self.flip_prob * p,
            jitter_prob=self.jitter_prob * p,
            grayscale_prob=self.grayscale_prob * p,
            blur_prob=(self.blur_prob[0] * p, self.blur_prob[1] * p),
            blur_sigma=(sig_lo, max(sig_lo, sig_lo + (sig_hi - sig_lo) * s)),
            solarize_prob=(self.solarize_prob[0] * p, self.solarize_prob[1] * p),
        )

    @classmethod
    def paper_small(cls, image_size: int, channels: int) -> AugmentConfig:
        """The paper's (BYOL-style) recipe kept whole at a small size: crop 0.08-1, flip, jitter,
        blur with the two views' probabilities (1.0 / 0.1) and its sigma range scaled to the
        image (0.1-2 px at 224 px, so 0.1-0.25 px at 28), solarize (0 / 0.2)."""
        cfg = cls(image_size=int(image_size))
        top = max(cfg.blur_sigma[0], cfg.blur_sigma[1] * image_size / PAPER_IMAGE_SIZE)
        return replace(cfg, blur_sigma=(cfg.blur_sigma[0], top)).for_channels(channels)

    @classmethod
    def recipe(cls, name: str, image_size: int, channels: int) -> AugmentConfig:
        """``auto``: :meth:`for_dataset`; ``paper``: :meth:`paper_small` at small sizes (above
        :data:`SMALL_IMAGE_MAX` px the two are the same recipe)."""
        if name not in AUG_RECIPES:
            raise UsageError(f"unknown augmentation recipe {name!r}; choose from auto, paper")
        if name == "paper" and image_size <= SMALL_IMAGE_MAX:
            return cls.paper_small(image_size, channels)
        return cls.for_dataset(image_size, channels)

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
