"""Encoded image files to one padded uint8 batch on the device (the image-folder device path).

:func:`decode_images` decodes JPEGs in one batched call on the device (nvJPEG on a GPU) and
anything else on the CPU; :func:`pad_batch` shrinks images whose longer side exceeds
:data:`MAX_DECODED_SIDE` and pads the rest into one tensor that the batched augmentation crops,
each image inside its own size.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Decoded images whose longer side exceeds this are shrunk before cropping on the device path
#: (like FFCV's ``max_resolution``): it bounds the padded batch's memory; typical ImageNet
#: images (about 500 x 375) are untouched.
MAX_DECODED_SIDE = 512


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


def _shrink_to(img: Tensor, max_side: int) -> Tensor:
    """A uint8 (3, h, w) image shrunk (antialiased bilinear) so its longer side is ``max_side``."""
    import torch.nn.functional as F

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
