"""Per-sample image operations on whole (B, C, H, W) batches in [0, 1], on any device.

The building blocks of :class:`~dimcollapse.data.device_augment.DeviceTwoViewAugment`: luminance,
RGB <-> HSV and a per-sample hue rotation, a per-sample Gaussian blur, and the edge replication
that lets a padded batch of differently sized images be cropped as if each were alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def luminance(x: Tensor) -> Tensor:
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
