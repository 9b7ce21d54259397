"""Tests of the view and eval loaders: shapes, devices, determinism per (seed, epoch), shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dimcollapse.data.augment import AugmentConfig
from dimcollapse.data.datasets import ImageDataset, load_dataset
from dimcollapse.data.loaders import ViewLoader, build_eval_loader, build_view_loader
from dimcollapse.errors import UsageError

CPU = torch.device("cpu")


def _toy(n: int = 40, channels: int = 3, size: int = 12) -> ImageDataset:
    """Labels are the indices, so a batch's labels say which images it holds."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return ImageDataset(
        "toy",
        images=images,
        labels=torch.arange(n),
        num_classes=n,
        channels=channels,
        image_size=size,
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
    )


def _epoch(loader: ViewLoader, epoch: int) -> list[tuple[torch.Tensor, ...]]:
    loader.set_epoch(epoch)
    return [tuple(t.clone() for t in batch) for batch in loader]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x, y) for ba, bb in zip(a, b) for x, y in zip(ba, bb)
    )


@pytest.mark.parametrize("path", ["device", "workers"])
@pytest.mark.parametrize("channels", [1, 3])
def test_batches_shapes_dtypes_devices(path, channels):
    ds = _toy(channels=channels)
    cfg = AugmentConfig.for_dataset(16, channels)
    loader = build_view_loader(ds, cfg, batch_size=8, device=CPU, path=path)
    assert loader.path == path and len(loader) == 5
    batches = _epoch(loader, 0)
    assert len(batches) == 5
    seen = []
    for v1, v2, y in batches:
        assert v1.shape == v2.shape == (8, channels, 16, 16)
        assert v1.dtype == v2.dtype == torch.float32 and y.dtype == torch.int64
        assert v1.device == CPU and y.shape == (8,)
        assert torch.isfinite(v1).all() and not torch.equal(v1, v2)
        seen += y.tolist()
    assert sorted(seen) == list(range(40))  # every image once per epoch


def test_auto_path_and_errors():
    ds = _toy()
    cfg = AugmentConfig.for_dataset(12, 3)
    assert build_view_loader(ds, cfg, batch_size=4, device=CPU).path == "workers"
    with pytest.raises(UsageError, match="path"):
        build_view_loader(ds, cfg, batch_size=4, device=CPU, path="gpu")
    with pytest.raises(UsageError, match="global batch"):
        build_view_loader(ds, cfg, batch_size=41, device=CPU)
    with pytest.raises(UsageError, match="global batch"):
        build_view_loader(ds, cfg, batch_size=16, device=CPU, world_size=3, rank=0)
    with pytest.raises(UsageError, match="rank"):
        build_view_loader(ds, cfg, batch_size=4, device=CPU, world_size=2, rank=2)
    with pytest.raises(UsageError, match="batch size"):
        build_view_loader(ds, cfg, batch_size=0, device=CPU)


@pytest.mark.parametrize("path", ["device", "workers"])
def test_same_seed_and_epoch_repeat_bit_identically(path):
    ds = _toy()
    cfg = AugmentConfig.for_dataset(12, 3)

    def make(seed=0):
        return build_view_loader(ds, cfg, batch_size=8, device=CPU, path=path, seed=seed)

    a = make()
    first_e1 = _epoch(a, 1)
    # epoch 1 does not depend on what ran before: a fresh loader, after other epochs
    b = make()
    _epoch(b, 0)
    _epoch(b, 2)
    assert _same(_epoch(b, 1), first_e1)
    assert _same(_epoch(a, 1), first_e1)
    # another epoch or seed differs, in order and in views
    e2 = _epoch(a, 2)
    assert not torch.equal(e2[0][2], first_e1[0][2])
    other = _epoch(make(seed=1), 1)
    assert not torch.equal(other[0][0], first_e1[0][0])


def test_workers_path_leaves_global_rng_alone():
    ds = _toy()
    loader = build_view_loader(ds, AugmentConfig.for_dataset(12, 3), batch_size=8, device=CPU)
    torch.manual_seed(42)
    state = torch.get_rng_state()
    _epoch(loader, 0)
    assert torch.equal(torch.get_rng_state(), state)


def test_workers_processes_match_in_process():
    """Per-image seeds make the views independent of the number of worker processes."""
    ds = _toy(n=24)
    cfg = AugmentConfig.for_dataset(12, 3)
    inproc = build_view_loader(ds, cfg, batch_size=6, device=CPU, path="workers", seed=3)
    multi = build_view_loader(ds, cfg, batch_size=6, device=CPU, path="workers", seed=3, workers=2)
    ref = _epoch(inproc, 4)
    assert _same(_epoch(multi, 4), ref)
    # persistent workers: a later epoch is still a pure function of (seed, epoch)
    assert _same(_epoch(multi, 5), _epoch(inproc, 5))


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_shards_are_disjoint_and_paths_agree(world_size):
    ds = _toy(n=40)
    cfg = AugmentConfig.for_dataset(12, 3)
    per_path = {}
    for path in ("device", "workers"):
        shards = []
        for rank in range(world_size):
            loader = build_view_loader(
                ds,
                cfg,
                batch_size=4,
                device=CPU,
                path=path,
                seed=7,
                rank=rank,
                world_size=world_size,
            )
            assert len(loader) == (40 // world_size) // 4
            labels = torch.cat([b[2] for b in _epoch(loader, 3)])
            assert len(labels) == len(loader) * 4
            shards.append(labels.tolist())
        flat = [i for s in shards for i in s]
        assert len(flat) == len(set(flat))  # disjoint
        per_path[path] = shards
    # both paths deal out the same indices
    assert per_path["device"] == per_path["workers"]


def test_drop_last_false_keeps_partial_batch():
    ds = _toy(n=10)
    loader = build_view_loader(
        ds,
        AugmentConfig.for_dataset(12, 3),
        batch_size=4,
        device=CPU,
        path="device",
        drop_last=False,
    )
    sizes = [len(b[2]) for b in _epoch(loader, 0)]
    assert sizes == [4, 4, 2] and len(loader) == 3


def test_eval_loader_in_memory():
    ds = _toy(n=10)
    loader = build_eval_loader(ds, batch_size=4, device=CPU)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(loader) == 3
    x = torch.cat([b[0] for b in batches])
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(10))
    want = (ds.tensors()[0].float() / 255 - 0.5) / 0.25
    assert x.dtype == torch.float32 and (x - want).abs().max() < 1e-6
    assert torch.equal(torch.cat([b[0] for b in loader]), x)  # fixed order, repeatable
    r1 = build_eval_loader(ds, batch_size=4, device=CPU, rank=1, world_size=3)
    assert torch.cat([b[1] for b in r1]).tolist() == [1, 4, 7]


def _image_folder(root: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for ci, cls in enumerate(("a", "b")):
            d = root / split / cls
            d.mkdir(parents=True)
            for k in range(3):
                arr = np.random.default_rng(ci * 7 + k).integers(0, 256, (30 + 5 * k, 40, 3))
                Image.fromarray(arr.astype(np.uint8)).save(d / f"{k}.png")


def test_imagefolder_loaders(tmp_path):
    _image_folder(tmp_path)
    train = load_dataset("imagefolder", "train", root=str(tmp_path), image_size=24)
    test = load_dataset("imagefolder", "test", root=str(tmp_path), image_size=24)
    cfg = AugmentConfig.for_dataset(24, 3)
    loader = build_view_loader(train, cfg, batch_size=2, device=CPU)
    assert loader.path == "workers" and len(loader) == 3
    for v1, v2, y in _epoch(loader, 0):
        assert v1.shape == v2.shape == (2, 3, 24, 24) and y.shape == (2,)
    ev = list(build_eval_loader(test, batch_size=4, device=CPU))
    assert [b[0].shape for b in ev] == [(4, 3, 24, 24), (2, 3, 24, 24)]
    assert torch.cat([b[1] for b in ev]).tolist() == [0, 0, 0, 1, 1, 1]


def test_real_data_device_path_one_epoch_of_digits():
    ds = load_dataset("digits", "train")
    cfg = AugmentConfig.for_dataset(ds.image_size, ds.channels)
    loader = build_view_loader(ds, cfg, batch_size=256, device=CPU, path="device")
    batches = _epoch(loader, 0)
    assert len(batches) == len(ds) // 256
    v1 = batches[0][0]
    raw = v1 * ds.std[0] + ds.mean[0]
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_paths():
    ds = _toy(n=64)
    cfg = AugmentConfig.for_dataset(16, 3)
    cuda = torch.device("cuda")
    dev = build_view_loader(ds, cfg, batch_size=16, device=cuda)
    assert dev.path == "device"
    a, b = _epoch(dev, 1), _epoch(dev, 1)
    assert _same(a, b) and a[0][0].device.type == "cuda"
    wk = build_view_loader(ds, cfg, batch_size=16, device=cuda, path="workers", workers=2)
    v1, _, y = next(iter(wk))
    assert v1.device.type == "cuda" and y.device.type == "cuda"
    ev = next(iter(build_eval_loader(ds, batch_size=16, device=cuda)))
    assert ev[0].device.type == "cuda"


def test_imagefolder_device_path_decodes_and_crops_inside_each_image(tmp_path):
    """Image folders on the device path: bytes from workers, decoded and augmented in batches."""
    from PIL import Image

    from dimcollapse.data.device_augment import DeviceTwoViewAugment
    from dimcollapse.data.loaders import decode_images, pad_batch

    sizes = [(30, 40), (64, 20), (25, 25), (700, 90)]  # the last is shrunk to MAX_DECODED_SIDE
    for k, (h, w) in enumerate(sizes):
        d = tmp_path / "train" / ("a" if k % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        arr = np.random.default_rng(k).integers(0, 256, (h, w, 3)).astype(np.uint8)
        Image.fromarray(arr).save(d / f"{k}.{'jpg' if k % 2 else 'png'}", quality=95)
    train = load_dataset("imagefolder", "train", root=str(tmp_path), image_size=24)
    cfg = AugmentConfig.for_dataset(24, 3)
    loader = build_view_loader(train, cfg, batch_size=2, device=CPU, path="device", seed=3)
    assert loader.path == "device" and len(loader) == 2
    first = _epoch(loader, 0)
    for v1, v2, y in first:
        assert v1.shape == v2.shape == (2, 3, 24, 24) and v1.dtype == torch.float32
        assert torch.isfinite(v1).all() and y.dtype == torch.int64
    again = _epoch(loader, 0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))  # (seed, epoch) repeats

    # Decoding matches PIL (PNG exactly, JPEG within codec tolerance); padding keeps sizes.
    data = [
        torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8)
        for p, _ in train.samples()
    ]
    images = decode_images(data, CPU)
    for (path, _), img in zip(train.samples(), images):
        ref = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)
        assert img.shape == ref.shape
        assert (img.float() - ref.float()).abs().mean() < (0.5 if path.endswith("png") else 8)
    batch, hh, ww = pad_batch(images, 512)
    assert batch.shape[0] == 4 and int(hh.max()) == 512 and int(ww.max()) <= 512

    # Per-sample sizes: every crop box lies inside its own image; equal sizes give the scalar
    # path's parameters exactly.
    aug = DeviceTwoViewAugment(cfg, train.mean, train.std, 3)
    heights = torch.tensor([30, 512, 25, 64] * 500)
    widths = torch.tensor([40, 66, 25, 20] * 500)
    p = aug.sample_params(2000, heights, widths, torch.Generator().manual_seed(0))
    assert (p["top"] >= 0).all() and (p["left"] >= 0).all()
    assert (p["top"] + p["height"] <= heights).all() and (p["left"] + p["width"] <= widths).all()
    assert ((p["area_frac"] > 0) & (p["area_frac"] <= 1)).all()
    same = aug.sample_params(
        64, torch.full((64,), 32), torch.full((64,), 48), torch.Generator().manual_seed(1)
    )
    scalar = aug.sample_params(64, 32, 48, torch.Generator().manual_seed(1))
    for key in ("top", "left", "height", "width", "flip", "blur_sigma"):
        assert torch.equal(same[key], scalar[key]), key


@pytest.mark.parametrize("path", ["device", "workers", "files-device"])
def test_start_step_yields_the_rest_of_the_epoch_exactly(path, tmp_path):
    """A mid-epoch resume: set_epoch(e, start_step=k) yields batches k.. of the uninterrupted
    epoch, bit for bit, on every path (augmentation included)."""
    if path == "files-device":
        _image_folder(tmp_path)
        ds = load_dataset("imagefolder", "train", root=str(tmp_path), image_size=24)
        cfg, path, batch = AugmentConfig.for_dataset(24, 3), "device", 2
    else:
        ds, cfg, batch = _toy(n=40), AugmentConfig.for_dataset(16, 3), 8
    loader = build_view_loader(ds, cfg, batch_size=batch, device=CPU, path=path, seed=5)
    whole = _epoch(loader, 2)
    for k in (1, len(loader) - 1, len(loader)):
        loader.set_epoch(2, start_step=k)
        rest = [tuple(t.clone() for t in b) for b in loader]
        assert _same(rest, whole[k:]), k
    assert _same(_epoch(loader, 2), whole)  # the next epoch starts from its first step again
    with pytest.raises(UsageError, match="start step"):
        loader.set_epoch(0, start_step=len(loader) + 1)
