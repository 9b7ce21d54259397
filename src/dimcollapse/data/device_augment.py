"""Batched two-view augmentation on the images' own device, with per-sample random parameters.

:class:`DeviceTwoViewAugment` reproduces the CPU recipe of :mod:`dimcollapse.data.augment` on a
whole uint8 batch at once, without a Python loop over samples, so that the accelerator that trains
the network can also make its views. Every parameter is drawn per sample from the same
distribution as torchvision's transforms, from one explicit ``torch.Generator``:

* Random resized crop: as ``RandomResizedCrop.get_params``: up to 10 candidates per sample, area
  fraction ~ U(scale), log aspect ratio ~ U(log ratio), width and height rounded to whole pixels,
  the first candidate that fits is taken, with an integer top-left corner uniform over the valid
  positions; if none of the 10 fits, the same centre-crop fallback (whole image, clipped to the
  ratio range). All 10 candidates are drawn for every sample (a fixed number of draws keeps the
  generator's stream independent of the data), so the distribution is exactly torchvision's.
  The crop is done with ``affine_grid`` + ``grid_sample`` (bilinear for images of 64 px or less,
  bicubic above, ``border`` padding); the horizontal flip is folded into the affine matrix.
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

Values stay in [0, 1] until the final normalisation; the output is float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dimcollapse.data.augment import AugmentConfig, _check_stats

CROP_ATTEMPTS = 10
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
_SOLARIZE_THRESHOLD = 127.5 / 255.0

# Order of the colour operations in ``jitter_order``.
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


def _gray(x: Tensor) -> Tensor:
    """Luminance (B, 1, H, W) of an RGB or one-channel batch in [0, 1]."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (_GRAY_WEIGHTS[0] * r + _GRAY_WEIGHTS[1] * g + _GRAY_WEIGHTS[2] * b).unsqueeze(1)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """Batched RGB (..., 3, H, W) in [0, 1] to HSV with hue in [0, 1)."""
    r, g, b = x.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    sat = chroma / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    hue = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue))
    hue = torch.remainder(hue / 6.0, 1.0)
    return torch.stack((hue, sat, maxc), dim=-3)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """Batched HSV (..., 3, H, W), hue in [0, 1), to RGB in [0, 1] (branch-free form)."""
    h, s, v = x.unbind(dim=-3)
    h6 = h * 6.0
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + h6, 6.0)
        w = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
        out.append(v - v * s * w)
    return torch.stack(out, dim=-3)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of each RGB image in (B, 3, H, W) by its own ``shift`` (B,) in turns."""
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack((h, hsv[:, 1], hsv[:, 2]), dim=1)).clamp_(0.0, 1.0)


def gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Blur each image of (B, C, H, W) with its own sigma (B,): separable, reflection padding."""
    b, c, h, w = x.shape
    half = (kernel_size - 1) / 2.0
    pos = torch.linspace(-half, half, kernel_size, device=x.device, dtype=x.dtype)
    kern = torch.exp(-0.5 * (pos.view(1, -1) / sigma.view(-1, 1).to(x.dtype)) ** 2)
    kern = kern / kern.sum(dim=1, keepdim=True)  # (B, k)
    kern = kern.repeat_interleave(c, dim=0)  # (B*C, k)
    pad = kernel_size // 2
    # reflection needs pad < size; replicate only for tiny images with a big kernel
    mode = "replicate" if pad >= min(h, w) else "reflect"
    y = F.pad(x, (pad, pad, pad, pad), mode=mode).reshape(1, b * c, h + 2 * pad, w + 2 * pad)
    y = F.conv2d(y, kern.view(b * c, 1, kernel_size, 1), groups=b * c)
    y = F.conv2d(y, kern.view(b * c, 1, 1, kernel_size), groups=b * c)
    return y.reshape(b, c, h, w)


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
        _check_stats(mean, std, channels)
        self.cfg = cfg.for_channels(channels)
        self.channels = int(channels)
        self._mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)

    # ------------------------------------------------------------------------------------------
    # parameters

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
        samples each crop as if its image were alone (see :meth:`_resized_crop`).
        """
        cfg = self.cfg
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")
        device = torch.device(device)
        t = CROP_ATTEMPTS
        u = torch.rand(batch, 4 * t + 14, generator=generator, device=device)
        u_scale, u_ratio = u[:, :t], u[:, t : 2 * t]
        u_top, u_left = u[:, 2 * t : 3 * t], u[:, 3 * t : 4 * t]
        rest = u[:, 4 * t :]

        # --- random resized crop, as torchvision's get_params (10 attempts, then centre crop)
        if isinstance(height, Tensor) or isinstance(width, Tensor):
            hh = torch.as_tensor(height, device=device).to(torch.float32).expand(batch)
            ww = torch.as_tensor(width, device=device).to(torch.float32).expand(batch)
            fb_h, fb_w = _fallback_crop_batched(hh, ww, cfg.crop_ratio)
            height, width = hh.unsqueeze(1), ww.unsqueeze(1)  # (B, 1): broadcast over attempts
            h1, w1 = hh, ww
        else:
            fb_h, fb_w = _fallback_crop(height, width, cfg.crop_ratio)
            h1, w1 = height, width
        area = height * width
        s_lo, s_hi = cfg.crop_scale
        target = area * (s_lo + (s_hi - s_lo) * u_scale)
        log_lo, log_hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)
        cw = torch.round(torch.sqrt(target * ratio))
        ch = torch.round(torch.sqrt(target / ratio))
        valid = (cw > 0) & (cw <= width) & (ch > 0) & (ch <= height)
        attempt = torch.arange(t, device=device).expand(batch, t)
        first = torch.where(valid, attempt, t).min(dim=1, keepdim=True).values.clamp_(max=t - 1)
        any_valid = valid.any(dim=1)
        pick_w = cw.gather(1, first).squeeze(1)
        pick_h = ch.gather(1, first).squeeze(1)
        top = torch.floor(u_top.gather(1, first).squeeze(1) * (h1 - pick_h + 1))
        left = torch.floor(u_left.gather(1, first).squeeze(1) * (w1 - pick_w + 1))
        top = torch.minimum(top, h1 - pick_h)
        left = torch.minimum(left, w1 - pick_w)
        crop_h = torch.where(any_valid, pick_h, torch.full_like(pick_h, 0) + fb_h).long()
        crop_w = torch.where(any_valid, pick_w, torch.full_like(pick_w, 0) + fb_w).long()
        fb_top = torch.div(torch.full_like(top, 0) + h1 - fb_h, 2, rounding_mode="floor")
        fb_left = torch.div(torch.full_like(left, 0) + w1 - fb_w, 2, rounding_mode="floor")
        crop_top = torch.where(any_valid, top, fb_top).long()
        crop_left = torch.where(any_valid, left, fb_left).long()

        # --- flip, colour jitter, grayscale, blur, solarize
        flip = rest[:, 0] < cfg.flip_prob
        jitter = rest[:, 1] < cfg.jitter_prob
        b, c, s, h = cfg.jitter
        brightness = 1.0 - b + 2.0 * b * rest[:, 2]
        contrast = 1.0 - c + 2.0 * c * rest[:, 3]
        saturation = 1.0 - s + 2.0 * s * rest[:, 4]
        hue = -h + 2.0 * h * rest[:, 5]
        order = torch.argsort(rest[:, 6:10], dim=1, stable=True)
        grayscale = rest[:, 10] < (cfg.grayscale_prob if self.channels == 3 else 0.0)
        blur = rest[:, 11] < cfg.blur_prob[view]
        sig_lo, sig_hi = cfg.blur_sigma
        blur_sigma = sig_lo + (sig_hi - sig_lo) * rest[:, 12]
        solarize = rest[:, 13] < cfg.solarize_prob[view]
        f32 = torch.float32
        sizes = {}
        if isinstance(h1, Tensor):  # per-image sizes of a padded batch: _resized_crop needs them
            sizes = {"image_height": h1.long(), "image_width": w1.long()}
        return {
            **sizes,
            "top": crop_top,
            "left": crop_left,
            "height": crop_h,
            "width": crop_w,
            "area_frac": (crop_h * crop_w).to(f32) / (h1 * w1),
            "aspect_ratio": crop_w.to(f32) / crop_h.to(f32),
            "flip": flip,
            "jitter": jitter,
            "brightness": brightness.to(f32),
            "contrast": contrast.to(f32),
            "saturation": saturation.to(f32),
            "hue": hue.to(f32),
            "jitter_order": order,
            "grayscale": grayscale,
            "blur": blur,
            "blur_sigma": blur_sigma.to(f32),
            "solarize": solarize,
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

    # ------------------------------------------------------------------------------------------
    # applying

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
        x = self._resized_crop(x, params)

        b, c, s, h = cfg.jitter
        if cfg.jitter_prob > 0 and max(b, c, s, h) > 0:
            y = self._jitter(x, params, do_hue=self.channels == 3 and h > 0)
            x = torch.where(params["jitter"].view(-1, 1, 1, 1), y, x)

        if self.channels == 3 and cfg.grayscale_prob > 0:
            g = _gray(x).expand_as(x)
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
        gray = _gray(y)
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

    def _resized_crop(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The crop boxes resized to ``image_size`` with ``grid_sample`` (border padding).

        In a padded batch (``params`` with ``image_height``/``image_width``) each image's
        padding is first filled with its own edge pixels: a sample or interpolation tap beyond
        the image's edge then reads the edge value, as border padding does for the image alone
        (bilinear and bicubic alike), instead of the zeros of the padding."""
        if "image_height" in params:
            x = replicate_edges(x, params["image_height"], params["image_width"])
        bsz, ch, height, width = x.shape
        size = self.cfg.image_size
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
        mode = self.cfg.resolved_interpolation
        out = F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)
        if mode == "bicubic":
            out = out.clamp_(0.0, 1.0)
        return out

    def __call__(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        bsz, _, height, width = images.shape
        p1 = self.sample_params(bsz, height, width, generator, view=0, device=images.device)
        p2 = self.sample_params(bsz, height, width, generator, view=1, device=images.device)
        return self.apply(images, p1), self.apply(images, p2)


def replicate_edges(x: Tensor, heights: Tensor, widths: Tensor) -> Tensor:
    """Fill each padded image's padding with its own last row and column (top-left aligned
    images of sizes ``heights x widths`` in a (B, C, H, W) batch)."""
    bsz, ch, height, width = x.shape
    cols = torch.minimum(
        torch.arange(width, device=x.device).view(1, -1), (widths.to(x.device) - 1).view(-1, 1)
    )  # (B, W)
    rows = torch.minimum(
        torch.arange(height, device=x.device).view(1, -1), (heights.to(x.device) - 1).view(-1, 1)
    )  # (B, H)
    x = x.gather(3, cols.view(bsz, 1, 1, width).expand(bsz, ch, height, width))
    return x.gather(2, rows.view(bsz, 1, height, 1).expand(bsz, ch, height, width))


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
