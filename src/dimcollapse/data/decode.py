"""Image files to uint8 RGB tensors: one file by path (:func:`decode_rgb`, the image folders'
items), and encoded files to one padded uint8 batch on the device (the image-folder device path).

:func:`decode_images` decodes JPEGs in one batched call on a CUDA device (nvJPEG) and
anything else on the CPU with PIL (:func:`decode_on_cpu`); :func:`pad_batch` shrinks images
whose longer side exceeds :data:`MAX_DECODED_SIDE` and pads the rest into one tensor that the
batched augmentation crops, each image inside its own size.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from dimcollapse.errors import UsageError

#: Decoded images whose longer side exceeds this are shrunk before cropping on the device path
#: (like FFCV's ``max_resolution``): it bounds the padded batch's memory; typical ImageNet
#: images (about 500 x 375) are untouched.
MAX_DECODED_SIDE = 512


def decode_rgb(path: str) -> Tensor:
    """Decode an image file to a uint8 (3, H, W) RGB tensor with Pillow.

    Pillow rather than ``torchvision.io``: torchvision deprecates its decoders from 0.29 on,
    and Pillow converts every mode (grey, palette, CMYK, alpha) to RGB the same way.
    """
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot decode image {path}: {exc}") from exc
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def decode_images(data: list[Tensor], device: torch.device) -> list[Tensor]:
    """Decode encoded images (1-D uint8 tensors of file bytes) to uint8 RGB (3, h, w) on
    ``device``.

    On CUDA, JPEGs are decoded in one batched nvJPEG call on the device; anything else (PNG, a
    JPEG nvJPEG refuses, every image on other devices) is decoded on the CPU by PIL and moved.
    """
    out: list[Tensor | None] = [None] * len(data)
    jpeg = [i for i, d in enumerate(data) if d.numel() > 2 and d[0] == 0xFF and d[1] == 0xD8]
    if jpeg and torch.device(device).type == "cuda":
        try:
            decoded = _nvjpeg([data[i] for i in jpeg], device)
            for i, img in zip(jpeg, decoded):
                out[i] = img
        except RuntimeError:
            pass  # e.g. a CMYK or progressive JPEG nvJPEG rejects: decode those on the CPU
    for i, img in enumerate(out):
        if img is None:
            out[i] = decode_on_cpu(data[i]).to(device)
    return out  # type: ignore[return-value]


def decode_on_cpu(data: Tensor) -> Tensor:
    """One encoded image (1-D uint8 tensor of file bytes) -> uint8 RGB (3, h, w), by PIL.

    Grey, palette, CMYK and alpha images become RGB as ``PIL.Image.convert("RGB")`` makes them
    (alpha dropped); EXIF orientation is not applied. The same pixels, bit for bit, as
    torchvision's deprecated ``decode_image(..., ImageReadMode.RGB)`` (tests/test_decode.py).
    """
    with Image.open(io.BytesIO(data.numpy())) as img:
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        # a channels-first view of the (h, w, 3) pixels, as torchvision's decoders return
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)


def _nvjpeg(data: list[Tensor], device: torch.device) -> list[Tensor]:
    """JPEGs decoded on a CUDA device in one batched call (torchvision's nvJPEG binding)."""
    with warnings.catch_warnings():
        # torchvision 0.29 deprecates its decoders in favour of TorchCodec, which is not a
        # dependency; on the CPU PIL replaces them, but batched decoding on the GPU has no
        # replacement among our dependencies, and older torchvision (the GPU machines') has it.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        # torchvision-free toy images: torchvision 1240 ms
        from torchvision.io import ImageReadMode, decode_jpeg

        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def _shrink_to(img: Tensor, max_side: int) -> Tensor:
    """A uint8 (3, h, w) image shrunk (antialiased bilinear) so its longer side is ``max_side``."""
    h, w = img.shape[-2:]
    scale = max_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return (
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


def pad_batch(images: list[Tensor], max_side: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pad (3, h_i, w_i) uint8 images into one (B, 3, H, W) tensor, top-left aligned.

    Images whose longer side exceeds ``max_side`` are first shrunk (antialiased bilinear) to it.
    Returns the batch and the (B,) int64 heights and widths of the images inside it.
    """
    fitted = [
        _shrink_to(img, max_side) if max(img.shape[-2:]) > max_side else img for img in images
    ]
    heights = torch.tensor([im.shape[-2] for im in fitted], dtype=torch.int64)
    widths = torch.tensor([im.shape[-1] for im in fitted], dtype=torch.int64)
    batch = fitted[0].new_zeros((len(fitted), 3, int(heights.max()), int(widths.max())))
    for i, img in enumerate(fitted):
        batch[i, :, : img.shape[-2], : img.shape[-1]] = img
    return batch, heights, widths
