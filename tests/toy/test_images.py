"""Sections 4-5 on real images (dimcollapse.toy.images): the encoders, the views, the lab's
records, and the augmentation-strength knob they use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_usage_error

from dimcollapse.data.augment_config import MIN_CROP_AREA, AugmentConfig
from dimcollapse.data.datasets import load_dataset
from dimcollapse.errors import UsageError
from dimcollapse.spectrum import summarize
from dimcollapse.toy.images import (
    IMAGE_SWEEPS,
    ImageSweep,
    ImageToyConfig,
    build_encoder,
    run_image_lab,
    train_image_toy,
)


@pytest.fixture(scope="module")
def digits():
    train = load_dataset("digits", "train", subset=300, seed=0)
    test = load_dataset("digits", "test", subset=100, seed=0)
    return train.tensors()[0], test.tensors()[0], train.mean, train.std


def test_encoder_is_bias_free_linear_with_relu_only_between_layers():
    enc = build_encoder(ImageToyConfig(layers=3, width=8, relu=True), 20)
    kinds = [type(m).__name__ for m in enc]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert all(m.bias is None for m in enc if isinstance(m, torch.nn.Linear))
    x = torch.randn(5, 20)
    # a linear stack is the product of its matrices
    lin = build_encoder(ImageToyConfig(layers=2, width=8), 20)
    w = lin[1].weight @ lin[0].weight
    assert torch.allclose(lin(x), x @ w.T, atol=1e-6)


def test_one_encoder_trains_and_its_spectra_match_a_direct_summary(digits):
    train, test, mean, std = digits
    cfg = ImageToyConfig(layers=2, width=16, steps=30, batch_size=32, lr=0.5, seed=3)
    rec = train_image_toy(cfg, train, test, mean, std)
    assert rec["label"] == "L=2, augment x1" and len(rec["loss"]) == 2
    for when in ("init", "final"):
        s = rec[when]["summary"]
        assert s["dim"] == 16 and s["normalize"] and s["collapse_rule"] == "cliff"
    # the init record is the untrained encoder's row-normalised spectrum, recomputed here
    torch.manual_seed(cfg.seed)
    enc = build_encoder(cfg, 64)
    x = ((test.float() / 255.0 - mean[0]) / std[0]).flatten(1)
    with torch.no_grad():
        ref = summarize(enc(x), normalize=True)
    assert np.allclose(rec["init"]["summary"]["singular_values"], ref.singular_values, rtol=1e-9)
    # the same seed gives the same run
    again = train_image_toy(cfg, train, test, mean, std)
    assert (
        again["final"]["summary"]["singular_values"] == rec["final"]["summary"]["singular_values"]
    )


def test_the_lab_runs_each_config_once_and_keeps_every_sweep_value(digits):
    train, test, mean, std = digits
    base = ImageToyConfig(width=8, batch_size=16, steps=5)
    sweeps = (
        ImageSweep("depth", "", "layers", (1, 2), base),
        ImageSweep("strength", "", "strength", (0.5, 1.0), base),
    )
    seen = []
    recs = run_image_lab(train, test, mean, std, seed=0, steps=5, sweeps=sweeps, log=seen.append)
    assert [(r["sweep"], r["value"]) for r in recs] == [
        ("depth", 1), ("depth", 2), ("strength", 0.5), ("strength", 1.0)
    ]  # fmt: skip
    assert len(seen) == 3  # strength 1.0 at one layer is depth's L = 1, trained once
    assert recs[0]["final"] == recs[3]["final"]
    assert {s.name for s in IMAGE_SWEEPS} >= {"depth", "depth-noise", "relu", "strength"}


def test_noise_views_and_bad_configs(digits):
    train, test, mean, std = digits
    rec = train_image_toy(
        ImageToyConfig(views="noise", strength=0.5, width=8, steps=5, batch_size=16),
        train, test, mean, std,
    )  # fmt: skip
    assert rec["label"] == "L=1, noise 0.5"
    for bad in ({"layers": 0}, {"views": "blur"}, {"lr": float("inf")}, {"strength": -1.0}):
        with pytest.raises(UsageError):
            ImageToyConfig(**bad)


def test_augmentation_strength_scales_the_recipe():
    recipe = AugmentConfig.for_dataset(28, 1)
    assert recipe.scaled(1.0) == recipe
    none = recipe.scaled(0.0)
    assert none.crop_scale == (1.0, 1.0) and none.jitter == (0.0, 0.0, 0.0, 0.0)
    assert none.flip_prob == 0.0 and none.jitter_prob == 0.0
    half = recipe.scaled(0.5)
    assert half.crop_scale[0] == pytest.approx(1 - 0.5 * 0.92) and half.jitter[0] == 0.2
    strong = recipe.scaled(2.0)
    assert strong.crop_scale[0] == MIN_CROP_AREA and strong.jitter[0] == 0.8
    with pytest.raises(UsageError):
        recipe.scaled(2.5)
    paper = AugmentConfig.paper_small(28, 1)
    assert paper.blur_prob == (1.0, 0.1) and paper.solarize_prob == (0.0, 0.2)
    assert paper.blur_sigma == (0.1, pytest.approx(0.25))


def test_toy_images_command_writes_its_files_and_refuses_bad_options(tmp_path, cli):
    import json

    out = tmp_path / "lab"
    result = cli("toy", "images", "--dataset", "digits", "--steps", "3", "--seeds", "1",
                 "--out", out, "--json")  # fmt: skip
    code, stdout, stderr = result
    assert code == 0, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    assert {r["sweep"] for r in records} == {s.name for s in IMAGE_SWEEPS}
    data = json.loads((out / "images.json").read_text())
    assert data["seeds"] == [0] and data["steps"] == 3 and (out / "images.png").is_file()
    for bad in (["--seeds", "0"], ["--steps", "0"], ["--dataset", "nope"]):
        assert_usage_error(cli("toy", "images", *bad, "--out", tmp_path / "bad"))
        assert not (tmp_path / "bad").exists()
