"""Models trained elsewhere (dimcollapse.foreign): torchvision/timm backbones, weights files of
every common kind, prefixes, layers, and the spectrum/embed/probe commands on them."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import torchvision
from conftest import assert_usage_error
from torch import nn

from dimcollapse.data.datasets import load_dataset
from dimcollapse.foreign import find_prefix, load_foreign_model, read_weights
from dimcollapse.probe import extract_features

COMMON = ["--dataset", "digits", "--image-size", "32"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A torchvision ResNet-18 saved by plain torchvision code, the same backbone in a
    Lightning-style checkpoint (backbone. prefix, a projector beside it) and as safetensors."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    torch.save(model.state_dict(), d / "r18.pth")
    backbone = {f"backbone.{k}": v for k, v in model.state_dict().items() if "fc." not in k}
    backbone["projector.0.weight"] = torch.randn(8, 512)
    ckpt = {"state_dict": backbone, "epoch": 3, "hyper_parameters": {"lr": 0.1}}
    torch.save(ckpt, d / "r18.ckpt")
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "r18.safetensors")
    )
    return d, model


def _reference_features(model: nn.Module, images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Independent reference: grey -> RGB, resize, ImageNet normalisation, fc removed."""
    net = torchvision.models.resnet18()
    net.load_state_dict(model.state_dict())
    net.fc = nn.Identity()
    net.eval()
    x = images.float() / 255
    x = x.expand(-1, 3, -1, -1)
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return net((x - mean) / std)


@pytest.mark.parametrize("name", ["r18.pth", "r18.ckpt", "r18.safetensors"])
def test_every_file_kind_gives_the_reference_representation(weights, name):
    d, model = weights
    data = load_dataset("digits", "test", subset=40, seed=0)
    fm = load_foreign_model(
        "torchvision:resnet18", d / name, data_mean=data.mean, data_std=data.std, image_size=32
    )
    got, _ = extract_features(fm, data)
    ref = _reference_features(model, data.tensors()[0])
    assert got.shape == (40, 512)
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_prefix_is_found_by_vote():
    model_keys = ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight"]
    file_keys = ["backbone.conv1.weight", "backbone.bn1.weight", "projector.0.weight"]
    assert find_prefix(file_keys, model_keys) == "backbone."
    assert find_prefix(["module.encoder.conv1.weight"], model_keys) == "module.encoder."
    assert find_prefix(model_keys, model_keys) == ""


def test_spectrum_of_a_torchvision_checkpoint_and_a_lightning_one(weights, cli, tmp_path):
    d, _ = weights
    code, out, err = cli(
        "spectrum",
        "--model",
        "torchvision:resnet18",
        "--weights",
        d / "r18.pth",
        "--model",
        "torchvision:resnet18",
        "--weights",
        d / "r18.ckpt",
        "--subset",
        "64",
        "--json",
        "--plot",
        tmp_path / "both.png",
        *COMMON,
    )
    assert code == 0, err
    recs = [json.loads(ln) for ln in out.splitlines()]
    assert len(recs) == 2 and all(r["dim"] == 512 and r["n"] == 64 for r in recs)
    assert recs[0]["singular_values"] == pytest.approx(recs[1]["singular_values"], rel=1e-5)
    assert "r18.ckpt" in recs[1]["file"] and (tmp_path / "both.png").is_file()


def test_a_named_layer_is_pooled(weights, cli):
    d, _ = weights
    code, out, err = cli(
        "spectrum", "--model", "torchvision:resnet18", "--weights", d / "r18.pth",
        "--layer", "layer3", "--subset", "32", "--json", *COMMON,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["dim"] == 256  # layer3 of ResNet-18 has 256 channels


def test_embed_and_probe_a_foreign_model(weights, cli, tmp_path):
    d, model = weights
    out = tmp_path / "e.npy"
    code, _, err = cli(
        "embed", "--model", "torchvision:resnet18", "--weights", d / "r18.safetensors",
        "--split", "test", "--subset", "30", "--out", out, *COMMON,
    )  # fmt: skip
    assert code == 0, err
    data = load_dataset("digits", "test", subset=30, seed=0)
    ref = _reference_features(model, data.tensors()[0])
    assert np.allclose(np.load(out), ref.numpy(), atol=1e-4)
    code, text, err = cli(
        "probe", "--model", "torchvision:resnet18", "--weights", d / "r18.ckpt",
        "--train-subset", "200", "--test-subset", "100", "--epochs", "3", "--json", *COMMON,
    )  # fmt: skip
    assert code == 0, err
    rec = json.loads(text)
    assert rec["dim"] == 512 and 0 <= rec["top1"] <= 1 and rec["test_images"] == 100


def test_a_cifar_stem_resnet_is_recognised(tmp_path, capsys):
    net = torchvision.models.resnet18()
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "c.pth")
    data = load_dataset("digits", "test", subset=8, seed=0)
    fm = load_foreign_model(
        "torchvision:resnet18", tmp_path / "c.pth", data_mean=data.mean, data_std=data.std,
        image_size=32,
    )  # fmt: skip
    assert fm.net.conv1.kernel_size == (3, 3) and isinstance(fm.net.maxpool, nn.Identity)
    assert "CIFAR stem" in capsys.readouterr().err


class _Unsafe:
    """An object whose unpickling would need to import this module: refused."""


def test_bad_models_and_files_are_one_line_errors(weights, cli, tmp_path):
    d, _ = weights
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "r50.pth")
    torch.save({"model": _Unsafe()}, tmp_path / "pickle.pth")
    torch.save({"foo.weight": torch.zeros(3), "bar": torch.ones(2)}, tmp_path / "nomatch.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")

    def spectrum(model, weights_file, *extra):
        return cli("spectrum", "--model", model, "--weights", weights_file, *COMMON, *extra)

    assert_usage_error(
        spectrum("torchvision:resnet18", tmp_path / "r50.pth"), "another architecture"
    )
    assert_usage_error(spectrum("torchvision:resnet18", tmp_path / "pickle.pth"), "unpickling")
    assert_usage_error(spectrum("torchvision:resnet18", tmp_path / "nomatch.pth"), "only 0 of")
    assert_usage_error(spectrum("torchvision:resnet18", tmp_path / "junk.safetensors"))
    assert_usage_error(spectrum("torchvision:resnet18", tmp_path / "missing.pth"), "no such")
    assert_usage_error(spectrum("torchvision:resnet81", d / "r18.pth"), "resnet18")
    assert_usage_error(spectrum("keras:resnet18", d / "r18.pth"), "FAMILY:NAME")
    assert_usage_error(
        spectrum("torchvision:resnet18", d / "r18.pth", "--layer", "layer9"), "layer9", "layer"
    )
    assert_usage_error(cli("spectrum", "--model", "torchvision:resnet18", *COMMON), "--weights")
    assert_usage_error(cli("spectrum"), "--model")
    try:
        import timm  # noqa: F401
    except ImportError:
        assert_usage_error(spectrum("timm:resnet18", d / "r18.pth"), "dimcollapse[timm]")


def test_weights_reader_refuses_without_running_code(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"x": _Unsafe()}, fh)
    from dimcollapse.errors import UsageError

    with pytest.raises(UsageError):
        read_weights(path)


def test_timm_models_when_timm_is_installed(tmp_path):
    timm = pytest.importorskip("timm")
    net = timm.create_model("resnet18", pretrained=False)
    torch.save(net.state_dict(), tmp_path / "t.pth")
    data = load_dataset("digits", "test", subset=8, seed=0)
    fm = load_foreign_model(
        "timm:resnet18", tmp_path / "t.pth", data_mean=data.mean, data_std=data.std,
        image_size=32,
    )  # fmt: skip
    x, _ = extract_features(fm, data)
    assert x.shape == (8, 512)
    from dimcollapse.errors import UsageError

    with pytest.raises(UsageError, match="resnet18"):
        load_foreign_model(
            "timm:resnet81", tmp_path / "t.pth", data_mean=data.mean, data_std=data.std
        )
