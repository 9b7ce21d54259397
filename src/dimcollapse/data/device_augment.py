"""Batched two-view augmentation on the images' own device, with per-sample random parameters.

:class:`DeviceTwoViewAugment` reproduces the CPU recipe of :mod:`dimcollapse.data.augment` on a
whole uint8 batch at once, without a Python loop over samples, so that the accelerator that trains
the network can also make its views. Every parameter is drawn per sample from the same
distribution as torchvision's transforms, from one explicit ``torch.Generator`` (one uniform
draw per view, split among the parameter families in a fixed order):

* Random resized crop: as ``RandomResizedCrop.get_params``, drawn and resampled in
  :mod:`~dimcollapse.data.device_crop` (bilinear for images of ``SMALL_IMAGE_MAX`` px or less,
  bicubic above, ``border`` padding); the horizontal flip is folded into the crop's affine matrix.
  Unlike the CPU path there is no antialiasing when a crop is *shrunk* (only happens for large
  images whose crop exceeds the output size; small-image crops are always enlarged).
* Colour jitter with probability ``jitter_prob``, factors brightness ~ U(1-b, 1+b), contrast,
  saturation ~ U(1-s, 1+s), hue ~ U(-h, h), applied in a random order per sample (a uniform
  permutation of the four operations, as ``ColorJitter``): brightness, contrast and saturation
  are blends with black, the image's mean grey and its grey image; hue is a rotation in HSV space.
  One-channel images get brightness and contrast only.
* Grayscale (three channels only), Gaussian blur with per-sample sigma (a separable grouped
  convolution with reflection padding and the kernel size of the CPU recipe), solarize
  (pixels >= 127.5/255 are inverted), each with its view's probability.

The image operations themselves are in :mod:`~dimcollapse.data.image_ops`. Values stay in
[0, 1] until the final normalisation; the output is float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dimcollapse.data.augment_config import AugmentConfig, check_stats
from dimcollapse.data.device_crop import CROP_ATTEMPTS, resized_crop, sample_crop
from dimcollapse.data.image_ops import adjust_hue, gaussian_blur, luminance

_SOLARIZE_THRESHOLD = 127.5 / 255.0

# Order of the colour operations in ``jitter_order``.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3

#: Uniforms drawn per sample and view after the crop's ``4 * CROP_ATTEMPTS``: flip, jitter
#: applied, four jitter factors, four order keys, grayscale, blur, blur sigma, solarize.
_OTHER_UNIFORMS = 14


class DeviceTwoViewAugment:
    """Two augmented views of a uint8 (B, C, H, W) batch, made on the batch's device.

    ``aug(images, generator)`` returns two float32 normalised (B, C, S, S) tensors. All randomness
    comes from ``generator`` (a ``torch.Generator`` on the images' device; ``None`` uses torch's
    default generator of that device), so a seeded generator repeats the views exactly.
    :meth:`sample_params` and :meth:`apply` split a view into drawing and applying parameters.
    """

    def __init__(
        self, cfg: AugmentConfig, mean: Sequence[float], std: Sequence[float], channels: int
    ) -> None:
        check_stats(mean, std, channels)
        self.cfg = cfg.for_channels(channels)
        self.channels = int(channels)
        self._mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)

    def sample_params(
        self,
        batch: int,
        height: int | Tensor,
        width: int | Tensor,
        generator: torch.Generator | None = None,
        *,
        view: int = 0,
        device: torch.device | str | None = None,
    ) -> dict[str, Tensor]:
        """Draw the per-sample parameters of one view (``view`` 0 or 1) for a batch.

        Returns a dict of (B,)-shaped tensors unless noted: ``top``, ``left``, ``height``,
        ``width`` (int64 crop box in input pixels), ``area_frac``, ``aspect_ratio`` (crop
        width / height), ``flip`` (bool), ``jitter`` (bool: jitter applied), ``brightness``,
        ``contrast``, ``saturation``, ``hue`` (factors; identity values 1, 1, 1, 0 where a
        component is disabled), ``jitter_order`` (int64 (B, 4), a permutation of
        BRIGHTNESS, CONTRAST, SATURATION, HUE), ``grayscale``, ``blur`` (bool), ``blur_sigma``,
        ``solarize`` (bool). Exactly ``B * (4 * CROP_ATTEMPTS + 14)`` uniforms are drawn.

        ``height`` and ``width`` are the input size, or (B,) tensors of each sample's own size
        (images of different sizes padded into one batch, top-left aligned): every crop box then
        lies inside its own image, drawn exactly as for a single image of that size, and the
        result also carries ``image_height`` and ``image_width`` (B,) so that :meth:`apply`
        samples each crop as if its image were alone (see
        :func:`~dimcollapse.data.device_crop.resized_crop`).
        """
        cfg = self.cfg
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        crop = 4 * CROP_ATTEMPTS
        u = torch.rand(batch, crop + _OTHER_UNIFORMS, generator=generator, device=device)
        rest = u[:, crop:]
        return {
            **sample_crop(u[:, :crop], height, width, cfg),
            **_flip_params(rest[:, 0:1], cfg),
            **_jitter_params(rest[:, 1:10], cfg),
            **_grayscale_params(rest[:, 10:11], cfg, self.channels),
            **_blur_params(rest[:, 11:13], cfg, view),
            **_solarize_params(rest[:, 13:14], cfg, view),
        }

    def identity_params(
        self, batch: int, height: int, width: int, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        """Parameters that change nothing: whole-image crop, no flip, jitter, blur or solarize."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        zeros_b = torch.zeros(batch, dtype=torch.bool, device=dev)
        ones = torch.ones(batch, dtype=torch.float32, device=dev)
        full = torch.full((batch,), 1, dtype=torch.int64, device=dev)
        return {
            "top": full * 0,
            "left": full * 0,
            "height": full * height,
            "width": full * width,
            "area_frac": ones.clone(),
            "aspect_ratio": ones * (width / height),
            "flip": zeros_b,
            "jitter": zeros_b.clone(),
            "brightness": ones.clone(),
            "contrast": ones.clone(),
            "saturation": ones.clone(),
            "hue": ones * 0,
            "jitter_order": torch.arange(4, device=dev).repeat(batch, 1),
            "grayscale": zeros_b.clone(),
            "blur": zeros_b.clone(),
            "blur_sigma": ones.clone(),
            "solarize": zeros_b.clone(),
        }

    def apply(self, images: Tensor, params: dict[str, Tensor], *, normalize: bool = True) -> Tensor:
        """One view of ``images`` (uint8 or float in [0, 1], (B, C, H, W)) with ``params``.

        Returns float32 (B, C, S, S), normalised unless ``normalize=False`` (then in [0, 1]).
        """
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise ValueError(
                f"expected (B, {self.channels}, H, W) images, got {tuple(images.shape)}"
            )
        cfg = self.cfg
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = resized_crop(x, params, cfg.image_size, cfg.resolved_interpolation)

        b, c, s, h = cfg.jitter
        if cfg.jitter_prob > 0 and max(b, c, s, h) > 0:
            y = self._jitter(x, params, do_hue=self.channels == 3 and h > 0)
            x = torch.where(params["jitter"].view(-1, 1, 1, 1), y, x)

        if self.channels == 3 and cfg.grayscale_prob > 0:
            g = luminance(x).expand_as(x)
            x = torch.where(params["grayscale"].view(-1, 1, 1, 1), g, x)

        if bool(cfg.blur_prob[0] > 0 or cfg.blur_prob[1] > 0):
            blurred = gaussian_blur(x, params["blur_sigma"], cfg.blur_kernel_size)
            x = torch.where(params["blur"].view(-1, 1, 1, 1), blurred, x)

        if bool(cfg.solarize_prob[0] > 0 or cfg.solarize_prob[1] > 0):
            sol = params["solarize"].view(-1, 1, 1, 1) & (x >= _SOLARIZE_THRESHOLD)
            x = torch.where(sol, 1.0 - x, x)

        if not normalize:
            return x
        mean = self._mean.to(x.device)
        std = self._std.to(x.device)
        return (x - mean) / std

    def _blend_step(self, y: Tensor, op: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Apply brightness, contrast or saturation per sample as ``op`` says (-1: nothing)."""
        op = op.view(-1, 1, 1, 1)
        gray = luminance(y)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        ref = torch.where(
            op == BRIGHTNESS,
            torch.zeros_like(gray),
            torch.where(op == CONTRAST, mean.expand_as(gray), gray),
        )
        one = torch.ones_like(params["brightness"]).view(-1, 1, 1, 1)
        factor = torch.where(
            op == BRIGHTNESS,
            params["brightness"].view(-1, 1, 1, 1),
            torch.where(
                op == CONTRAST,
                params["contrast"].view(-1, 1, 1, 1),
                torch.where(op == SATURATION, params["saturation"].view(-1, 1, 1, 1), one),
            ),
        )
        if self.channels == 1:  # saturation is a no-op on one channel
            factor = torch.where(op == SATURATION, one, factor)
        # factor 1 gives y exactly: 1 * y + 0 * ref
        return (factor * y + (1.0 - factor) * ref).clamp_(0.0, 1.0)

    def _jitter(self, x: Tensor, params: dict[str, Tensor], *, do_hue: bool) -> Tensor:
        """Colour jitter in each sample's own order of the four operations.

        The hue rotation (the costly one) runs once for the whole batch: the operations each
        sample puts before hue are right-aligned into three blend slots, those after it
        left-aligned into three more, so every sample reaches its hue step at the same time.
        """
        order = params["jitter_order"]
        none = torch.full_like(order[:, 0], -1)
        if not do_hue:
            # hue is a no-op (one channel, or no hue jitter): the four positions in order
            y = x
            for pos in range(4):
                op = order[:, pos]
                y = self._blend_step(y, torch.where(op == HUE, none, op), params)
            return y
        hue_pos = torch.argmax((order == HUE).to(torch.int64), dim=1)  # exactly one match
        y = x
        for k in range(3):  # before hue
            pos = hue_pos - 3 + k
            op = order.gather(1, pos.clamp(min=0).view(-1, 1)).squeeze(1)
            y = self._blend_step(y, torch.where(pos >= 0, op, none), params)
        y = adjust_hue(y, params["hue"])
        for k in range(3):  # after hue
            pos = hue_pos + 1 + k
            op = order.gather(1, pos.clamp(max=3).view(-1, 1)).squeeze(1)
            y = self._blend_step(y, torch.where(pos <= 3, op, none), params)
        return y

    def __call__(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        bsz, _, height, width = images.shape
        p1 = self.sample_params(bsz, height, width, generator, view=0, device=images.device)
        p2 = self.sample_params(bsz, height, width, generator, view=1, device=images.device)
        return self.apply(images, p1), self.apply(images, p2)


# The parameter families of sample_params, one function each: each reads its own columns
# (B, k) of the view's one uniform draw, so the draw order never depends on the recipe.


def _flip_params(u: Tensor, cfg: AugmentConfig) -> dict[str, Tensor]:
    return {"flip": u[:, 0] < cfg.flip_prob}


def _jitter_params(u: Tensor, cfg: AugmentConfig) -> dict[str, Tensor]:
    """Columns: applied, brightness, contrast, saturation, hue, then four keys whose sort
    order is the sample's permutation of the four operations."""
    b, c, s, h = cfg.jitter
    f32 = torch.float32
    return {
        "jitter": u[:, 0] < cfg.jitter_prob,
        "brightness": (1.0 - b + 2.0 * b * u[:, 1]).to(f32),
        "contrast": (1.0 - c + 2.0 * c * u[:, 2]).to(f32),
        "saturation": (1.0 - s + 2.0 * s * u[:, 3]).to(f32),
        "hue": (-h + 2.0 * h * u[:, 4]).to(f32),
        "jitter_order": torch.argsort(u[:, 5:9], dim=1, stable=True),
    }


def _grayscale_params(u: Tensor, cfg: AugmentConfig, channels: int) -> dict[str, Tensor]:
    return {"grayscale": u[:, 0] < (cfg.grayscale_prob if channels == 3 else 0.0)}


def _blur_params(u: Tensor, cfg: AugmentConfig, view: int) -> dict[str, Tensor]:
    sig_lo, sig_hi = cfg.blur_sigma
    return {
        "blur": u[:, 0] < cfg.blur_prob[view],
        "blur_sigma": (sig_lo + (sig_hi - sig_lo) * u[:, 1]).to(torch.float32),
    }


def _solarize_params(u: Tensor, cfg: AugmentConfig, view: int) -> dict[str, Tensor]:
    return {"solarize": u[:, 0] < cfg.solarize_prob[view]}
