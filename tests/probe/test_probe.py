"""Offline probes (`dimcollapse.probe`), `dimcollapse probe` and `dimcollapse embed`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_usage_error

from dimcollapse.probe import (
    extract_features,
    knn_predict,
    knn_probe,
    linear_probe,
    load_run_data,
    probe_features,
    probe_run,
    standardization,
)
from dimcollapse.probe import offline as probe_offline

RESULT_KEYS = (
    "probe",
    "features",
    "dim",
    "top1",
    "top5",
    "knn_top1_k20",
    "knn_top1_k200",
    "epochs",
    "train_images",
    "test_images",
    "checkpoint",
)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """One tiny directclr run and one simclr-none run on digits, trained once per session."""
    from dimcollapse.config import TrainConfig
    from dimcollapse.train import train

    root = tmp_path_factory.mktemp("probe_runs")
    out = {}
    for method in ("directclr", "simclr-none"):
        cfg = TrainConfig(
            dataset="digits",
            method=method,
            epochs=1,
            batch_size=64,
            width=0.125,
            workers=0,
            subset=256,
            monitor_samples=128,
            out=str(root / method),
        )
        out[method] = train(cfg, verbose=False).out
    return out


def _blobs(n_per_class: int, num_classes: int, dim: int, seed: int, spread: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(123)) * 4
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=gen)
    return x, y


# ---- linear probe ---------------------------------------------------------------------------


def test_linear_probe_separates_gaussian_blobs_and_is_deterministic():
    xtr, ytr = _blobs(100, 6, 12, seed=0)
    xte, yte = _blobs(50, 6, 12, seed=1)
    res = linear_probe(xtr, ytr, xte, yte, num_classes=6, epochs=15, seed=3)
    assert res["top1"] > 0.9  # chance is 1/6
    assert res["top5"] is not None and res["top5"] >= res["top1"]
    assert 0.0 <= res["train_top1"] <= 1.0 and res["standardize"] is True
    again = linear_probe(xtr, ytr, xte, yte, num_classes=6, epochs=15, seed=3)
    assert again == res


def test_linear_probe_badly_scaled_features_and_few_classes():
    # Features of scale 1e4 with a large offset: standardisation makes lr 0.1 work; 3 classes.
    xtr, ytr = _blobs(80, 3, 5, seed=0)
    xte, yte = _blobs(40, 3, 5, seed=1)
    res = linear_probe(xtr * 1e4 + 5e4, ytr, xte * 1e4 + 5e4, yte, num_classes=3, epochs=10)
    assert res["top1"] > 0.9 and res["top5"] is None


def test_standardization_only_centres_constant_dimensions():
    x = torch.tensor([[1.0, 5.0, 0.0], [3.0, 5.0, 0.0], [5.0, 5.0, 0.0]])
    mean, scale = standardization(x)
    assert torch.allclose(mean, torch.tensor([3.0, 5.0, 0.0]))
    assert torch.allclose(scale, torch.tensor([float(np.std([1, 3, 5])), 1.0, 1.0]))


def test_linear_probe_rejects_bad_inputs():
    from dimcollapse.errors import UsageError

    x, y = _blobs(10, 2, 3, seed=0)
    with pytest.raises(UsageError, match="labels must lie"):
        linear_probe(x, y + 5, x, y, num_classes=2, epochs=1)
    with pytest.raises(UsageError, match="-d but test"):
        linear_probe(x, y, x[:, :2], y, num_classes=2, epochs=1)


# ---- kNN ------------------------------------------------------------------------------------


def _knn_reference(train_x, train_y, test_x, k, num_classes, temperature=0.07):
    """Brute force in float64: cosine similarity, top-k, exp(sim/T)-weighted vote."""
    a = train_x / np.maximum(np.linalg.norm(train_x, axis=1, keepdims=True), 1e-12)
    b = test_x / np.maximum(np.linalg.norm(test_x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(a))
    preds = []
    for row in b:
        sim = a @ row
        nearest = np.argsort(-sim, kind="stable")[:k]
        votes = np.zeros(num_classes)
        for j in nearest:
            votes[train_y[j]] += np.exp(sim[j] / temperature)
        preds.append(int(np.argmax(votes)))
    return np.array(preds)


def test_knn_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    train_x = rng.normal(size=(150, 7))
    train_y = rng.integers(0, 5, size=150)
    test_x = rng.normal(size=(40, 7))
    test_y = rng.integers(0, 5, size=40)
    ks = (1, 5, 20, 500)  # 500 is clipped to the 150 train rows
    preds = knn_predict(
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        ks=ks,
        num_classes=5,
        batch_size=16,
    )
    res = knn_probe(
        torch.from_numpy(train_x),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x),
        torch.from_numpy(test_y),
        ks=ks,
        num_classes=5,
        batch_size=7,
    )
    for k in ks:
        ref = _knn_reference(train_x, train_y, test_x, k, 5)
        np.testing.assert_array_equal(preds[k].numpy(), ref)
        assert res[f"knn_top1_k{k}"] == pytest.approx(float((ref == test_y).mean()))
    # float32 features give the same predictions here
    p32 = knn_predict(
        torch.from_numpy(train_x).float(),
        torch.from_numpy(train_y),
        torch.from_numpy(test_x).float(),
        ks=(20,),
        num_classes=5,
    )
    assert (p32[20].numpy() == _knn_reference(train_x, train_y, test_x, 20, 5)).mean() >= 0.95


def test_probe_features_on_raw_pixels():
    from dimcollapse.data.datasets import load_dataset

    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    (xtr, ytr), (xte, yte) = tr.tensors(), te.tensors()
    res = probe_features(
        xtr.flatten(1).float(), ytr, xte.flatten(1).float(), yte, num_classes=10, epochs=5
    )
    assert res["probe"] == "offline" and res["dim"] == 64
    assert res["train_images"] == len(tr) and res["test_images"] == len(te)
    assert res["top1"] > 0.8 and res["knn_top1_k20"] > 0.8
    no_knn = probe_features(
        xtr.flatten(1).float(),
        ytr,
        xte.flatten(1).float(),
        yte,
        num_classes=10,
        epochs=1,
        knn=False,
    )
    assert no_knn["knn_top1_k20"] is None and no_knn["knn_top1_k200"] is None


# ---- probes of a trained run ----------------------------------------------------------------


def _check_result(res, features, dim):
    for key in RESULT_KEYS:
        assert key in res, key
    assert res["probe"] == "offline" and res["features"] == features and res["dim"] == dim
    for key in ("top1", "top5", "knn_top1_k20", "knn_top1_k200"):
        assert 0.0 <= res[key] <= 1.0, key


def test_probe_run_full(runs):
    res = probe_run(runs["directclr"], epochs=3, device="cpu")
    _check_result(res, "full", res["rep_dim"])
    assert res["train_images"] == 1438 and res["test_images"] == 359  # digits' 80/20 split
    assert res["top1"] > 0.2  # a 1-epoch backbone on digits is far above chance (0.1)
    assert res["checkpoint"].endswith("final.pt") and res["method"] == "directclr"


def test_probe_run_subvector_uses_exactly_r_d0(runs, monkeypatch):
    from dimcollapse.checkpoint import load_model

    model, ckpt = load_model(runs["directclr"])
    d0 = model.head.d0
    assert d0 is not None and d0 < model.rep_dim
    seen = {}
    real = probe_offline.linear_probe

    def spy(train_x, train_y, test_x, test_y, **kw):
        seen.update(train_x=train_x, test_x=test_x)
        return real(train_x, train_y, test_x, test_y, **kw)

    monkeypatch.setattr(probe_offline, "linear_probe", spy)
    res = probe_run(
        runs["directclr"],
        features="subvector",
        epochs=2,
        device="cpu",
        train_subset=200,
        test_subset=100,
        knn=False,
    )
    _check_result({**res, "knn_top1_k20": 0.0, "knn_top1_k200": 0.0}, "subvector", d0)
    assert res["knn_top1_k20"] is None
    r_train, _ = extract_features(model, load_run_data(ckpt, "train", subset=200), device="cpu")
    r_test, _ = extract_features(model, load_run_data(ckpt, "test", subset=100), device="cpu")
    assert seen["train_x"].shape == (200, d0)
    torch.testing.assert_close(seen["train_x"], r_train[:, :d0])
    torch.testing.assert_close(seen["test_x"], r_test[:, :d0])


def test_probe_run_augmented(runs):
    res = probe_run(
        runs["directclr"], epochs=2, device="cpu", augment=True, train_subset=300, test_subset=100
    )
    _check_result(res, "full", res["rep_dim"])
    assert res["augment"] is True and res["train_images"] == 300


def test_extract_features_embedding_space(runs):
    from dimcollapse.checkpoint import load_model

    model, ckpt = load_model(runs["directclr"])
    model.train()
    ds = load_run_data(ckpt, "test", subset=50)
    r, y = extract_features(model, ds, device="cpu", batch_size=16)
    z, y2 = extract_features(model, ds, space="embedding", device="cpu", batch_size=16)
    assert model.training  # mode restored
    assert r.dtype == torch.float32 and r.shape == (50, model.rep_dim)
    torch.testing.assert_close(z, r[:, : model.head.d0])  # directclr's head is r[:, :d0]
    assert torch.equal(y, y2) and y.dtype == torch.int64


# ---- command line ---------------------------------------------------------------------------


def test_probe_cli_json_and_saved_file(cli, runs, tmp_path):
    run = runs["directclr"]
    code, out, err = cli("probe", run, "--epochs", "2", "--json", "--device", "cpu", "--no-knn")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["top1"] is not None and rec["knn_top1_k20"] is None
    assert json.loads((run / "probe-full.json").read_text())["top1"] == rec["top1"]
    # a checkpoint inside RUN/checkpoints/ saves into RUN; readable summary without --json
    code, out, err = cli(
        "probe",
        run / "checkpoints" / "last.pt",
        "--features",
        "subvector",
        "--epochs",
        "1",
        "--test-subset",
        "50",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "offline probe" in out and "r[:, :" in out and str(run / "probe-subvector.json") in out
    assert (run / "probe-subvector.json").is_file()
    # a checkpoint file elsewhere: the result goes beside it
    elsewhere = tmp_path / "ckpts" / "copy.pt"
    elsewhere.parent.mkdir()
    shutil.copyfile(run / "checkpoints" / "final.pt", elsewhere)
    code, out, err = cli(
        "probe",
        elsewhere,
        "--epochs",
        "1",
        "--json",
        "--no-knn",
        "--train-subset",
        "100",
        "--test-subset",
        "50",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert json.loads((elsewhere.parent / "probe-full.json").read_text())["train_images"] == 100


def test_embed_files_read_by_spectrum(cli, runs, tmp_path):
    from dimcollapse.checkpoint import load_model

    model, _ = load_model(runs["directclr"])
    npy = tmp_path / "r.npy"
    code, out, err = cli(
        "embed", runs["directclr"], "--split", "test", "--out", npy, "--labels", "--device", "cpu"
    )
    assert code == 0, err
    assert np.load(npy).dtype == np.float32
    assert np.load(tmp_path / "r.labels.npy").shape == (359,)
    code, out, err = cli("spectrum", npy, "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["n"] == 359 and rec["dim"] == model.rep_dim

    st = tmp_path / "z.safetensors"
    code, out, err = cli(
        "embed",
        runs["directclr"],
        "--split",
        "train",
        "--space",
        "embedding",
        "--subset",
        "100",
        "--out",
        st,
        "--labels",
        "--device",
        "cpu",
    )
    assert code == 0, err
    code, out, err = cli("spectrum", st, "--key", "embeddings", "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["n"] == 100 and rec["dim"] == model.head.d0
    from safetensors.numpy import load_file

    arrays = load_file(str(st))
    assert arrays["labels"].shape == (100,) and arrays["embeddings"].dtype == np.float32

    # --force overwrites
    code, out, err = cli(
        "embed",
        runs["directclr"],
        "--split",
        "test",
        "--subset",
        "20",
        "--out",
        npy,
        "--force",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert np.load(npy).shape == (20, model.rep_dim)


def _leftovers(path):
    return sorted(p.name for p in path.iterdir() if p.name.startswith(("probe-", ".")))


def test_bad_inputs_are_one_line_errors(cli, runs, tmp_path):
    run_dclr, run_none = runs["directclr"], runs["simclr-none"]
    before = _leftovers(run_none)

    assert_usage_error(cli("probe", tmp_path / "missing.pt"), "no such")
    assert_usage_error(cli("probe", tmp_path / "emptydir"), "no such")
    torch.save(torch.zeros(3, 4), tmp_path / "plain.pt")
    assert_usage_error(cli("probe", tmp_path / "plain.pt"), "not a dimcollapse checkpoint")
    assert_usage_error(
        cli("probe", run_none, "--features", "subvector", "--device", "cpu"),
        "--features subvector needs a run with d0 (directclr or fixed-lowrank); "
        "this run is simclr-none",
    )
    assert _leftovers(run_none) == before
    assert not list(tmp_path.glob("probe-*.json"))

    out = tmp_path / "e.npy"
    assert_usage_error(
        cli("embed", tmp_path / "missing.pt", "--split", "test", "--out", out), "no such"
    )
    assert_usage_error(
        cli("embed", tmp_path / "plain.pt", "--split", "test", "--out", out),
        "not a dimcollapse checkpoint",
    )
    assert_usage_error(
        cli("embed", run_dclr, "--split", "test", "--out", tmp_path / "e.csv"), ".npy"
    )
    out.write_bytes(b"keep")
    assert_usage_error(cli("embed", run_dclr, "--split", "test", "--out", out), "--force")
    assert out.read_bytes() == b"keep"
    # the labels sibling is protected too
    out2 = tmp_path / "f.npy"
    (tmp_path / "f.labels.npy").write_bytes(b"keep")
    assert_usage_error(
        cli("embed", run_dclr, "--split", "test", "--out", out2, "--labels"), "--force"
    )
    assert not out2.exists()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["e.npy", "f.labels.npy", "plain.pt"]
