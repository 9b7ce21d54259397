"""The random resized crop of the device path: drawing the boxes and resampling them, batched.

Boxes are drawn as ``RandomResizedCrop.get_params``: up to :data:`CROP_ATTEMPTS` candidates per
sample, area fraction ~ U(scale), log aspect ratio ~ U(log ratio), width and height rounded to
whole pixels, the first candidate that fits is taken, with an integer top-left corner uniform over
the valid positions; if none fits, the same centre-crop fallback (whole image, clipped to the
ratio range). All candidates are drawn for every sample (a fixed number of draws keeps the
generator's stream independent of the data), so the distribution is exactly torchvision's.
:func:`resized_crop` resamples the boxes with ``affine_grid`` + ``grid_sample`` (``border``
padding), the horizontal flip folded into the affine matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from dimcollapse.data.augment_config import AugmentConfig
from dimcollapse.data.image_ops import replicate_edges

CROP_ATTEMPTS = 10


def sample_crop(
    uniforms: Tensor, height: int | Tensor, width: int | Tensor, cfg: AugmentConfig
) -> dict[str, Tensor]:
    """Crop boxes from (B, 4 * CROP_ATTEMPTS) uniforms: per attempt scale, ratio, top, left.

    ``height`` and ``width`` are the input size, or (B,) tensors of each sample's own size (a
    padded batch: then the result starts with ``image_height`` and ``image_width``). Returns
    (B,) ``top``, ``left``, ``height``, ``width`` (int64 input pixels), ``area_frac`` and
    ``aspect_ratio`` (crop width / height).
    """
    t = CROP_ATTEMPTS
    batch, device = uniforms.shape[0], uniforms.device
    u_scale, u_ratio = uniforms[:, :t], uniforms[:, t : 2 * t]
    u_top, u_left = uniforms[:, 2 * t : 3 * t], uniforms[:, 3 * t : 4 * t]
    if isinstance(height, Tensor) or isinstance(width, Tensor):
        image_h = torch.as_tensor(height, device=device).to(torch.float32).expand(batch)
        image_w = torch.as_tensor(width, device=device).to(torch.float32).expand(batch)
        fb_h, fb_w = _fallback_crop_batched(image_h, image_w, cfg.crop_ratio)
        height, width = image_h.unsqueeze(1), image_w.unsqueeze(1)  # (B, 1): over attempts
    else:
        fb_h, fb_w = _fallback_crop(height, width, cfg.crop_ratio)
        image_h, image_w = height, width
    pick_h, pick_w, first, any_valid = _first_fitting(u_scale, u_ratio, height, width, cfg)
    top = torch.floor(u_top.gather(1, first).squeeze(1) * (image_h - pick_h + 1))
    left = torch.floor(u_left.gather(1, first).squeeze(1) * (image_w - pick_w + 1))
    top = torch.minimum(top, image_h - pick_h)
    left = torch.minimum(left, image_w - pick_w)
    crop_h = torch.where(any_valid, pick_h, torch.full_like(pick_h, 0) + fb_h).long()
    crop_w = torch.where(any_valid, pick_w, torch.full_like(pick_w, 0) + fb_w).long()
    fb_top = torch.div(torch.full_like(top, 0) + image_h - fb_h, 2, rounding_mode="floor")
    fb_left = torch.div(torch.full_like(left, 0) + image_w - fb_w, 2, rounding_mode="floor")
    f32 = torch.float32
    sizes = {}
    if isinstance(image_h, Tensor):  # per-image sizes of a padded batch: resized_crop needs them
        sizes = {"image_height": image_h.long(), "image_width": image_w.long()}
    return {
        **sizes,
        "top": torch.where(any_valid, top, fb_top).long(),
        "left": torch.where(any_valid, left, fb_left).long(),
        "height": crop_h,
        "width": crop_w,
        "area_frac": (crop_h * crop_w).to(f32) / (image_h * image_w),
        "aspect_ratio": crop_w.to(f32) / crop_h.to(f32),
    }


def _first_fitting(
    u_scale: Tensor,
    u_ratio: Tensor,
    height: int | Tensor,
    width: int | Tensor,
    cfg: AugmentConfig,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each sample's first candidate box that fits in ``height x width`` (ints, or (B, 1)).

    Returns its float height and width (B,), its attempt (B, 1) (the last one where none fits)
    and whether any candidate fits (B,) bool.
    """
    batch, t = u_scale.shape
    area = height * width
    s_lo, s_hi = cfg.crop_scale
    target = area * (s_lo + (s_hi - s_lo) * u_scale)
    log_lo, log_hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)
    cw = torch.round(torch.sqrt(target * ratio))
    ch = torch.round(torch.sqrt(target / ratio))
    valid = (cw > 0) & (cw <= width) & (ch > 0) & (ch <= height)
    attempt = torch.arange(t, device=u_scale.device).expand(batch, t)
    first = torch.where(valid, attempt, t).min(dim=1, keepdim=True).values.clamp_(max=t - 1)
    return ch.gather(1, first).squeeze(1), cw.gather(1, first).squeeze(1), first, valid.any(dim=1)


def resized_crop(x: Tensor, params: dict[str, Tensor], size: int, mode: str) -> Tensor:
    """The crop boxes of ``params`` resized to ``size`` with ``grid_sample`` (border padding).

    In a padded batch (``params`` with ``image_height``/``image_width``) each image's
    padding is first filled with its own edge pixels: a sample or interpolation tap beyond
    the image's edge then reads the edge value, as border padding does for the image alone
    (bilinear and bicubic alike), instead of the zeros of the padding."""
    if "image_height" in params:
        x = replicate_edges(x, params["image_height"], params["image_width"])
    bsz, ch, height, width = x.shape
    dt = x.dtype
    w = params["width"].to(dt)
    h = params["height"].to(dt)
    sx = w / width
    sy = h / height
    cx = (2.0 * params["left"].to(dt) + w) / width - 1.0
    cy = (2.0 * params["top"].to(dt) + h) / height - 1.0
    sx = torch.where(params["flip"], -sx, sx)
    zero = torch.zeros_like(sx)
    theta = torch.stack(
        (torch.stack((sx, zero, cx), dim=1), torch.stack((zero, sy, cy), dim=1)), dim=1
    )
    grid = F.affine_grid(theta, [bsz, ch, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
    if mode == "bicubic":
        out = out.clamp_(0.0, 1.0)
    return out


def _fallback_crop(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """torchvision's fallback: the whole image, clipped to the aspect-ratio range; (h, w)."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return h, w


def _fallback_crop_batched(
    height: Tensor, width: Tensor, ratio: tuple[float, float]
) -> tuple[Tensor, Tensor]:
    """:func:`_fallback_crop` for (B,) float tensors of sizes; returns float (h, w)."""
    lo, hi = min(ratio), max(ratio)
    in_ratio = width / height
    h = torch.where(in_ratio < lo, torch.round(width / lo), height)
    w = torch.where(in_ratio > hi, torch.round(height * hi), width)
    return h, w
