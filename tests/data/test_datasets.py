"""Tests of the dataset loaders: the real Fashion-MNIST files when installed, and every other
format on tiny files written here in the exact on-disk layout the loaders read."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fashion_mnist_or_skip

from dimcollapse.data.datasets import (
    DATASETS,
    ImageDataset,
    load_dataset,
)
from dimcollapse.errors import UsageError


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST from the Debian package


def test_fashion_mnist_debian_files():
    fashion_mnist_or_skip()
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    x, y = train.tensors()
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (60000,) and y.dtype == torch.int64
    assert len(test) == 10000 and test.tensors()[0].shape == (10000, 1, 28, 28)
    assert train.num_classes == 10 and train.channels == 1 and train.image_size == 28
    assert set(y.unique().tolist()) == set(range(10))
    assert torch.bincount(y).tolist() == [6000] * 10
    # the published statistics are those of these files
    xf = x.float() / 255
    assert abs(xf.mean().item() - train.mean[0]) < 1e-3
    assert abs(xf.std().item() - train.std[0]) < 1e-3
    img, label = train[0]
    assert img.shape == (1, 28, 28) and img.dtype == torch.uint8 and isinstance(label, int)


# ----------------------------------------------------------------------------------------------
# idx files written here


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def _write_idx(folder: Path, split: str, n: int, compress: bool, seed: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    images = _rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = _rng(seed + 1).integers(0, 10, n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    for stem, arr in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = _idx_bytes(arr)
        if compress:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize(
    "name,sub", [("fashion-mnist", "FashionMNIST/raw"), ("mnist", "MNIST/raw")]
)
def test_idx_torchvision_layout(tmp_path, name, sub):
    images, labels = _write_idx(tmp_path / sub, "train", 12, compress=True)
    ds = load_dataset(name, "train", root=str(tmp_path))
    x, y = ds.tensors()
    assert x.shape == (12, 1, 28, 28)
    assert np.array_equal(x[:, 0].numpy(), images) and np.array_equal(y.numpy(), labels)
    assert ds.name == name and ds.num_classes == 10


def test_idx_plain_files_in_root(tmp_path):
    images, labels = _write_idx(tmp_path, "test", 5, compress=False)
    ds = load_dataset("mnist", "test", root=str(tmp_path))
    assert np.array_equal(ds.tensors()[0][:, 0].numpy(), images)
    assert ds.mean == (0.1307,)


def test_idx_missing_files_names_paths(tmp_path):
    with pytest.raises(UsageError) as err:
        load_dataset("fashion-mnist", "train", root=str(tmp_path))
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg
    assert str(tmp_path) in msg and str(tmp_path / "FashionMNIST" / "raw") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--download" in msg
    with pytest.raises(UsageError, match="--download"):
        load_dataset("mnist", "test", root=str(tmp_path))


def test_idx_corrupt_header(tmp_path):
    _write_idx(tmp_path, "train", 3, compress=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 12)
    with pytest.raises(UsageError, match="idx"):
        load_dataset("mnist", "train", root=str(tmp_path))


def test_idx_truncated(tmp_path):
    _write_idx(tmp_path, "train", 3, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UsageError, match="header says"):
        load_dataset("mnist", "train", root=str(tmp_path))


# ----------------------------------------------------------------------------------------------
# CIFAR


def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def test_cifar10_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    all_data, all_labels = [], []
    for i in range(1, 6):
        data = _rng(i).integers(0, 256, (3, 3072), dtype=np.uint8)
        labels = [int(v) for v in _rng(10 + i).integers(0, 10, 3)]
        _pickle(
            folder / f"data_batch_{i}", {"batch_label": f"b{i}", "labels": labels, "data": data}
        )
        all_data.append(data)
        all_labels += labels
    test_data = _rng(99).integers(0, 256, (2, 3072), dtype=np.uint8)
    _pickle(folder / "test_batch", {"labels": [1, 2], "data": test_data})
    _pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    train = load_dataset("cifar10", "train", root=str(tmp_path))
    x, y = train.tensors()
    assert x.shape == (15, 3, 32, 32) and x.dtype == torch.uint8
    # rows are channel-major 1024 R, 1024 G, 1024 B values of a 32x32 image
    assert np.array_equal(x.numpy(), np.concatenate(all_data).reshape(15, 3, 32, 32))
    assert y.tolist() == all_labels
    assert train.num_classes == 10 and train.channels == 3 and train.image_size == 32
    assert train.classes == [f"c{i}" for i in range(10)]
    test = load_dataset("cifar10", "test", root=str(tmp_path))
    assert test.tensors()[1].tolist() == [1, 2]


def test_cifar100_bytes_keys(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = _rng(3).integers(0, 256, (4, 3072), dtype=np.uint8)
    # bytes keys, as a pickle written by Python 2 can carry
    _pickle(
        folder / "train", {b"data": data, b"fine_labels": [0, 99, 5, 7], b"coarse_labels": [0] * 4}
    )
    _pickle(folder / "test", {"data": data[:1], "fine_labels": [3]})
    ds = load_dataset("cifar100", "train", root=str(tmp_path))
    assert ds.num_classes == 100 and ds.tensors()[1].tolist() == [0, 99, 5, 7]
    assert np.array_equal(ds.tensors()[0].numpy(), data.reshape(4, 3, 32, 32))
    assert len(load_dataset("cifar100", "test", root=str(tmp_path))) == 1


def test_cifar_missing_and_malformed(tmp_path):
    with pytest.raises(UsageError, match="data_batch_1"):
        load_dataset("cifar10", "train", root=str(tmp_path))
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _pickle(folder / "test", {"data": np.zeros((2, 100), np.uint8), "fine_labels": [0, 1]})
    with pytest.raises(UsageError, match="3072"):
        load_dataset("cifar100", "test", root=str(tmp_path))
    (folder / "train").write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="cannot read"):
        load_dataset("cifar100", "train", root=str(tmp_path))


# ----------------------------------------------------------------------------------------------
# STL-10


def test_stl10_binary(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    images = _rng(5).integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
    # the binary file stores each channel column-major
    (folder / "train_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
    (folder / "train_y.bin").write_bytes(bytes([1, 10, 4]))
    (folder / "class_names.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n")
    ds = load_dataset("stl10", "train", root=str(tmp_path))
    x, y = ds.tensors()
    assert np.array_equal(x.numpy(), images)
    assert y.tolist() == [0, 9, 3]
    assert ds.image_size == 96 and ds.channels == 3 and ds.classes[9] == "k9"
    with pytest.raises(UsageError, match="test_X.bin"):
        load_dataset("stl10", "test", root=str(tmp_path))
    (folder / "test_X.bin").write_bytes(b"\x00" * 1000)
    (folder / "test_y.bin").write_bytes(b"\x01")
    with pytest.raises(UsageError, match="multiple"):
        load_dataset("stl10", "test", root=str(tmp_path))


# ----------------------------------------------------------------------------------------------
# image folders


def _write_image_folder(root: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    written = {}
    for split in ("train", "val"):
        for ci, cls in enumerate(("ant", "bee")):
            d = root / split / cls
            d.mkdir(parents=True)
            for k in range(2):
                arr = _rng(ci * 10 + k).integers(0, 256, (20 + k, 30, 3), dtype=np.uint8)
                path = d / f"img{k}.png"
                Image.fromarray(arr).save(path)
                written[str(path)] = arr
        grey = _rng(77).integers(0, 256, (16, 16), dtype=np.uint8)
        path = root / split / "bee" / "grey.png"
        Image.fromarray(grey, mode="L").save(path)
        written[str(path)] = np.repeat(grey[:, :, None], 3, axis=2)
    return written


def test_imagefolder(tmp_path):
    written = _write_image_folder(tmp_path)
    ds = load_dataset("imagefolder", "train", root=str(tmp_path))
    assert ds.tensors() is None
    assert len(ds) == 5 and ds.num_classes == 2 and ds.classes == ["ant", "bee"]
    assert ds.channels == 3 and ds.image_size == 224
    labels = []
    for i in range(len(ds)):
        img, label = ds[i]
        assert img.dtype == torch.uint8 and img.shape[0] == 3
        path = ds._samples[i][0]
        assert np.array_equal(img.permute(1, 2, 0).numpy(), written[path])
        labels.append(label)
    assert sorted(labels) == [0, 0, 1, 1, 1]
    # test split falls back to val/, image size is the target size
    test = load_dataset("imagefolder", "test", root=str(tmp_path), image_size=64)
    assert len(test) == 5 and test.image_size == 64
    sub = load_dataset("imagefolder", "train", root=str(tmp_path), subset=3, seed=1)
    assert len(sub) == 3 and sub.tensors() is None


def test_imagefolder_missing(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_dataset("imagefolder", "train", root=str(tmp_path))
    (tmp_path / "train" / "empty").mkdir(parents=True)
    with pytest.raises(UsageError):
        load_dataset("imagefolder", "train", root=str(tmp_path))


# ----------------------------------------------------------------------------------------------
# npz


def test_npz_grey_and_colour(tmp_path):
    grey = _rng(0).integers(0, 256, (10, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", images=grey, labels=np.arange(10) % 3)
    ds = load_dataset("npz", "train", root=str(tmp_path / "g.npz"))
    assert ds.tensors()[0].shape == (10, 1, 12, 12) and ds.num_classes == 3
    assert abs(ds.mean[0] - grey.mean() / 255) < 1e-6
    colour = _rng(1).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", images=colour, labels=np.array([0, 1, 2, 3, 4, 5]))
    np.savez(tmp_path / "ct.npz", images=colour[:2], labels=np.array([6, 1]))
    tr = load_dataset(
        "npz", "train", root=str(tmp_path / "c.npz"), test_file=str(tmp_path / "ct.npz")
    )
    te = load_dataset(
        "npz", "test", root=str(tmp_path / "c.npz"), test_file=str(tmp_path / "ct.npz")
    )
    assert np.array_equal(tr.tensors()[0].numpy(), colour.transpose(0, 3, 1, 2))
    assert tr.num_classes == te.num_classes == 7 and tr.mean == te.mean
    assert len(te) == 2 and te.channels == 3 and te.image_size == 8


@pytest.mark.parametrize(
    "images,labels,match",
    [
        (np.zeros((4, 8, 8), np.float32), np.zeros(4, np.int64), "uint8"),
        (np.zeros((4, 8), np.uint8), np.zeros(4, np.int64), "shape"),
        (np.zeros((4, 8, 8, 2), np.uint8), np.zeros(4, np.int64), "C = 1 or 3"),
        (np.zeros((4, 8, 9), np.uint8), np.zeros(4, np.int64), "square"),
        (np.zeros((4, 8, 8), np.uint8), np.zeros(3, np.int64), "4 images but 3 labels"),
        (np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.float32), "integer"),
        (np.zeros((4, 8, 8), np.uint8), -np.ones(4, np.int64), "non-negative"),
        (np.zeros((0, 8, 8), np.uint8), np.zeros(0, np.int64), "empty"),
    ],
)
def test_npz_validation(tmp_path, images, labels, match):
    np.savez(tmp_path / "bad.npz", images=images, labels=labels)
    with pytest.raises(UsageError, match=match):
        load_dataset("npz", "train", root=str(tmp_path / "bad.npz"))


def test_npz_missing_keys_files_and_test(tmp_path):
    np.savez(tmp_path / "k.npz", x=np.zeros((2, 4, 4), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(UsageError, match="'images' and 'labels'"):
        load_dataset("npz", "train", root=str(tmp_path / "k.npz"))
    with pytest.raises(UsageError, match="not found"):
        load_dataset("npz", "train", root=str(tmp_path / "nope.npz"))
    np.savez(
        tmp_path / "ok.npz", images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(2, np.int64)
    )
    with pytest.raises(UsageError, match="--test-file"):
        load_dataset("npz", "test", root=str(tmp_path / "ok.npz"))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(UsageError, match="not an .npz archive"):
        load_dataset("npz", "train", root=str(tmp_path / "junk.npz"))
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04 torn")  # a zip header, then nothing
    with pytest.raises(UsageError, match="cannot read"):
        load_dataset("npz", "train", root=str(tmp_path / "torn.npz"))


# ----------------------------------------------------------------------------------------------
# digits, subsets, names


def test_digits_split_is_a_fixed_partition():
    from sklearn.datasets import load_digits

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) == 1438 and len(test) == 359
    assert train.image_size == 8 and train.channels == 1 and train.num_classes == 10
    x, _ = train.tensors()
    assert x.dtype == torch.uint8 and int(x.max()) == 255
    assert train.mean == test.mean
    # the two splits together are exactly the whole set (as a multiset of image, label)
    d = load_digits()
    full = np.rint(d.images * 255 / 16).astype(np.uint8)
    rows = sorted(bytes(a.tobytes()) + bytes([t]) for a, t in zip(full, d.target))
    got = [
        bytes(img[0].numpy().tobytes()) + bytes([lab])
        for ds in (train, test)
        for img, lab in zip(*ds.tensors())
    ]
    assert sorted(got) == rows
    # and the split does not depend on the seed
    again = load_dataset("digits", "train", seed=99)
    assert torch.equal(again.tensors()[0], x)


def test_subset_is_deterministic():
    a = load_dataset("digits", "train", subset=100, seed=3)
    b = load_dataset("digits", "train", subset=100, seed=3)
    c = load_dataset("digits", "train", subset=100, seed=4)
    assert len(a) == 100
    assert torch.equal(a.tensors()[0], b.tensors()[0]) and torch.equal(
        a.tensors()[1], b.tensors()[1]
    )
    assert not torch.equal(a.tensors()[0], c.tensors()[0])
    assert a.mean == load_dataset("digits", "train").mean
    for bad in (0, -1, 1439):
        with pytest.raises(UsageError, match="subset"):
            load_dataset("digits", "train", subset=bad)


def test_names_splits_and_roots():
    with pytest.raises(UsageError) as err:
        load_dataset("imagenet", "train")
    for name in DATASETS:
        assert name in str(err.value)
    with pytest.raises(UsageError, match="split"):
        load_dataset("digits", "val")
    for name in ("mnist", "cifar10", "cifar100", "stl10", "imagefolder", "npz"):
        with pytest.raises(UsageError, match="--data-root"):
            load_dataset(name, "train")
    with pytest.raises(UsageError, match="cannot be downloaded"):
        load_dataset("digits", "train", download=True)
    with pytest.raises(UsageError, match="imagefolder"):
        load_dataset("digits", "train", image_size=32)


def test_image_dataset_item_and_select():
    images = torch.arange(2 * 1 * 3 * 3, dtype=torch.uint8).view(2, 1, 3, 3)
    ds = ImageDataset(
        "toy",
        images=images,
        labels=torch.tensor([4, 2]),
        num_classes=5,
        channels=1,
        image_size=3,
        mean=(0.5,),
        std=(0.2,),
    )
    img, label = ds[1]
    assert torch.equal(img, images[1]) and label == 2 and len(ds) == 2
    sub = ds.select(torch.tensor([1]))
    assert len(sub) == 1 and sub.num_classes == 5 and sub[0][1] == 2


def test_missing_fashion_mnist_advice_fits_a_command_without_download(monkeypatch, tmp_path):
    """Without --data-root the advice names no root (never '--data-root None'), and a command
    without --download is not told to use it."""
    from dataclasses import replace

    from dimcollapse.data.formats import FORMATS

    moved = replace(FORMATS["fashion-mnist"], default_dir=str(tmp_path))
    monkeypatch.setitem(FORMATS, "fashion-mnist", moved)
    with pytest.raises(UsageError) as err:
        load_dataset("fashion-mnist", "test", can_download=False)
    text = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in text
    assert "`dimcollapse train --dataset fashion-mnist`" in text
    assert "None" not in text and "with --download" not in text
