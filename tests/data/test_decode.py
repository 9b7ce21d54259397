"""data/decode.py: PIL replaces torchvision's deprecated CPU decoders with the same pixels."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from dimcollapse.data.decode import decode_images, decode_on_cpu

CPU = torch.device("cpu")


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like RGB image (upsampled noise: JPEG's chroma subsampling has work to do)."""
    small = np.random.default_rng(seed).integers(0, 256, (h // 8 + 1, w // 8 + 1, 3))
    return np.array(Image.fromarray(small.astype(np.uint8)).resize((w, h), Image.BICUBIC))


def _encoded() -> list[torch.Tensor]:
    """JPEGs (baseline, 4:4:4, 4:2:0, progressive, grey, CMYK) and PNGs (RGB, RGBA, palette)."""
    cases = [
        ((375, 500), "RGB", "JPEG", {"quality": 90}),
        ((375, 500), "RGB", "JPEG", {"quality": 75, "subsampling": 0}),
        ((33, 47), "RGB", "JPEG", {"quality": 95, "subsampling": 2}),
        ((120, 80), "RGB", "JPEG", {"progressive": True}),
        ((40, 30), "L", "JPEG", {}),
        ((40, 30), "CMYK", "JPEG", {}),
        ((60, 70), "RGB", "PNG", {}),
        ((40, 30), "RGBA", "PNG", {}),
        ((40, 30), "P", "PNG", {}),
    ]
    out = []
    for seed, ((h, w), mode, fmt, options) in enumerate(cases):
        buf = io.BytesIO()
        Image.fromarray(_smooth(h, w, seed)).convert(mode).save(buf, format=fmt, **options)
        out.append(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8))
    return out


def test_cpu_decoding_is_bit_identical_to_torchvision_and_warns_nothing():
    data = _encoded()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = decode_images(data, CPU)
    assert not caught, [str(w.message) for w in caught]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tvio = pytest.importorskip("torchvision.io")
        if not hasattr(tvio, "decode_image"):
            pytest.skip("torchvision no longer decodes images")
        ref = [tvio.decode_image(d, mode=tvio.ImageReadMode.RGB) for d in data]
    for img, expected in zip(got, ref):
        assert img.dtype == torch.uint8 and img.stride() == expected.stride()  # same layout
        assert torch.equal(img, expected)


def test_decode_on_cpu_is_rgb_channels_first():
    arr = _smooth(21, 34, 7)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    img = decode_on_cpu(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8))
    assert img.shape == (3, 21, 34) and torch.equal(img, torch.from_numpy(arr).permute(2, 0, 1))
