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

import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode, v2

from dimcollapse.data.augment_config import SMALL_IMAGE_MAX as SMALL_IMAGE_MAX
from dimcollapse.data.augment_config import AugmentConfig, check_stats
from dimcollapse.data.augment_config import blur_kernel_size as blur_kernel_size
from dimcollapse.data.augment_config import use_small_stem as use_small_stem


def _interp_mode(name: str):
    return InterpolationMode.BICUBIC if name == "bicubic" else InterpolationMode.BILINEAR


class TwoViewTransform:
    """Two augmented views of one uint8 (C, H, W) image, each float32 normalised (C, S, S).

    Built from ``torchvision.transforms.v2``; view 1 and view 2 differ only in their blur and
    solarize probabilities. Randomness comes from torch's global RNG.
    """

    def __init__(
        self, cfg: AugmentConfig, mean: Sequence[float], std: Sequence[float], channels: int
    ) -> None:
        check_stats(mean, std, channels)
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
