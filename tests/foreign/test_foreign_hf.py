"""Hugging Face models from a save_pretrained folder (``--model hf:DIR``): tiny ViT, DINOv2 and
ResNet configs built here, saved to tmp_path, loaded offline; features compared with the saved
model itself, run by hand on images prepared by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_usage_error
from torch import nn

from dimcollapse.data.datasets import load_dataset
from dimcollapse.foreign import load_foreign_model
from dimcollapse.probe import extract_features

transformers = pytest.importorskip("transformers")

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "test", subset=20, seed=0)


def _pixels(data, size: int, stats=IMAGENET) -> torch.Tensor:
    """Grey digits -> RGB, resized, normalised: the pixel_values a user would feed."""
    x = data.tensors()[0].float() / 255
    x = nn.functional.interpolate(
        x.expand(-1, 3, -1, -1), size=(size, size), mode="bilinear", antialias=True
    )
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in stats)
    return (x - mean) / std


def _load(folder, data, capsys, **kw):
    capsys.readouterr()  # save_pretrained's own progress bars
    fm = load_foreign_model(f"hf:{folder}", data_mean=data.mean, data_std=data.std, **kw)
    got, _ = extract_features(fm, data)
    return got, capsys.readouterr().err


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool((a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-6)


def test_vit_classifier_folder_gives_the_cls_token(tmp_path, digits, capsys):
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=8, num_labels=10, **TINY)
    model = transformers.ViTForImageClassification(config).eval()
    model.save_pretrained(tmp_path)
    stats = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    processor = transformers.ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=stats[0], image_std=stats[1]
    )
    processor.save_pretrained(tmp_path)
    got, err = _load(tmp_path, digits, capsys)
    with torch.no_grad():
        ref = model.vit(_pixels(digits, 32, stats)).last_hidden_state[:, 0]
    assert _close(got, ref)
    assert "ViTModel" in err and "pooler's weights are not in the folder" in err
    assert "CLS token" in err and "left at initialisation" not in err


def test_vit_model_folder_gives_its_pooled_output(tmp_path, digits, capsys):
    torch.manual_seed(1)
    model = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **TINY))
    model.eval().save_pretrained(tmp_path)
    got, err = _load(tmp_path, digits, capsys)
    with torch.no_grad():
        ref = model(_pixels(digits, 32)).pooler_output
    assert _close(got, ref) and "pooled output" in err


def test_dinov2_folder_at_another_image_size(tmp_path, digits, capsys):
    torch.manual_seed(2)
    config = transformers.Dinov2Config(image_size=32, patch_size=8, **TINY)
    model = transformers.Dinov2Model(config).eval()
    model.save_pretrained(tmp_path)
    got, err = _load(tmp_path, digits, capsys, image_size=48)  # position embeddings interpolated
    with torch.no_grad():
        ref = model(_pixels(digits, 48)).pooler_output
    assert got.shape == (20, 32) and _close(got, ref) and "Dinov2Model" in err


def test_resnet_folder_and_the_cli(tmp_path, digits, capsys, cli):
    torch.manual_seed(3)
    config = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3
    )
    model = transformers.ResNetForImageClassification(config).eval()
    model.save_pretrained(tmp_path / "resnet")
    got, err = _load(tmp_path / "resnet", digits, capsys, image_size=32)
    with torch.no_grad():
        ref = model.resnet(_pixels(digits, 32)).pooler_output.flatten(1)
    assert _close(got, ref) and "ResNetModel" in err and "pooled output" in err
    out = tmp_path / "e.npy"
    code, _, err = cli(
        "embed", "--model", f"hf:{tmp_path / 'resnet'}", "--split", "test", "--subset", "20",
        "--out", out, "--dataset", "digits", "--image-size", "32",
    )  # fmt: skip
    assert code == 0, err
    assert np.allclose(np.load(out), ref.numpy(), atol=1e-5)
    assert "Loading weights" not in err and "LOAD REPORT" not in err  # transformers kept quiet


@pytest.fixture(scope="module")
def vit_folders(tmp_path_factory):
    """A ViTModel (trained pooler saved), a ViT classifier (no pooler weights) and a DINOv2 with
    register tokens, saved by save_pretrained."""
    d = tmp_path_factory.mktemp("pool")
    torch.manual_seed(5)
    vit = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **TINY))
    vit.eval().save_pretrained(d / "vit")
    classifier = transformers.ViTForImageClassification(
        transformers.ViTConfig(image_size=32, patch_size=8, num_labels=4, **TINY)
    ).eval()
    classifier.save_pretrained(d / "classifier")
    config = transformers.Dinov2WithRegistersConfig(
        image_size=32, patch_size=8, num_register_tokens=2, **TINY
    )
    registers = transformers.Dinov2WithRegistersModel(config).eval()
    registers.save_pretrained(d / "registers")
    return d, {"vit": vit, "classifier": classifier.vit, "registers": registers}


def _outputs(out) -> dict[str, torch.Tensor]:
    """A ViT's three candidate representations, read from transformers' own output."""
    hidden = out.last_hidden_state
    return {"pooler": out.pooler_output, "cls": hidden[:, 0], "mean": hidden[:, 1:].mean(dim=1)}


@pytest.mark.parametrize("pool", ["pooler", "cls", "mean"])
def test_each_pool_is_the_models_own_output(vit_folders, digits, capsys, pool):
    """--pool against transformers' own forward: pooler_output, last_hidden_state[:, 0], and
    the mean of the patch tokens (the CLS token left out)."""
    d, models = vit_folders
    got, err = _load(d / "vit", digits, capsys, pool=pool)
    with torch.no_grad():
        refs = _outputs(models["vit"](_pixels(digits, 32)))
    assert _close(got, refs[pool]) and f"--pool {pool}" in err
    assert not any(_close(got, ref) for name, ref in refs.items() if name != pool)


def test_pool_mean_leaves_out_register_tokens(vit_folders, digits, capsys):
    d, models = vit_folders
    got, err = _load(d / "registers", digits, capsys, pool="mean")
    with torch.no_grad():
        hidden = models["registers"](_pixels(digits, 32)).last_hidden_state
    assert hidden.shape[1] == 1 + 2 + 16  # CLS, 2 registers, 4x4 patches
    assert _close(got, hidden[:, 3:].mean(dim=1)) and "patch tokens" in err
    got, _ = _load(d / "registers", digits, capsys)  # default: DINOv2's pooled (normed) CLS
    with torch.no_grad():
        assert _close(got, models["registers"](_pixels(digits, 32)).pooler_output)


def test_pool_choices_the_model_cannot_give_are_refused(vit_folders, tmp_path, cli, capsys):
    d, _ = vit_folders
    common = ["--dataset", "digits", "--image-size", "32"]
    assert_usage_error(
        cli("spectrum", "--model", f"hf:{d / 'classifier'}", "--pool", "pooler", *common),
        "--pool pooler",
        "no weights for",
    )
    config = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1])
    transformers.ResNetModel(config).save_pretrained(tmp_path / "resnet")
    capsys.readouterr()  # save_pretrained's progress bars
    assert_usage_error(
        cli("spectrum", "--model", f"hf:{tmp_path / 'resnet'}", "--pool", "cls", *common),
        "--pool cls",
        "no CLS token",
    )
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    assert_usage_error(
        cli(
            "spectrum", "--model", "torchvision:resnet18", "--weights", tmp_path / "r18.pth",
            "--pool", "cls", *common,
        ),
        "--pool cls",
        "only to hf: models",
    )  # fmt: skip
    code, out, err = cli(
        "spectrum", "--model", f"hf:{d / 'classifier'}", "--pool", "mean", "--subset", "20",
        "--json", *common,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["dim"] == 32 and "--pool mean" in err


def test_hf_and_torchvision_models_side_by_side(tmp_path, cli):
    import torchvision

    torch.manual_seed(4)
    model = transformers.ViTModel(transformers.ViTConfig(image_size=32, patch_size=8, **TINY))
    model.save_pretrained(tmp_path / "vit")
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    code, out, err = cli(
        "spectrum", "--model", f"hf:{tmp_path / 'vit'}", "--model", "torchvision:resnet18",
        "--weights", tmp_path / "r18.pth", "--subset", "40", "--json", "--dataset", "digits",
        "--image-size", "32",
    )  # fmt: skip
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["dim"] for r in recs] == [32, 512]


def test_hf_refusals_are_one_line(tmp_path, cli):
    common = ["--dataset", "digits", "--image-size", "32"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "no-such-model"}')
    assert_usage_error(
        cli("spectrum", "--model", f"hf:{tmp_path / 'missing'}", *common), "no such folder"
    )
    assert_usage_error(cli("spectrum", "--model", f"hf:{tmp_path / 'empty'}", *common), "config")
    assert_usage_error(cli("spectrum", "--model", f"hf:{tmp_path / 'bad'}", *common), "hf:")
    assert_usage_error(
        cli(
            "spectrum", "--model", f"hf:{tmp_path / 'empty'}", "--weights", tmp_path / "x.pth",
            *common,
        ),
        "--weights",
    )  # fmt: skip


def test_without_pooler_or_cls_token_the_tokens_are_averaged():
    """The last fallback, on a stand-in model: tokens (B, T, C) and maps (B, C, H, W)."""
    from types import SimpleNamespace

    from dimcollapse.foreign.hf import HFBackbone, _choose_pooling

    class Tokens(nn.Module):
        def __init__(self, spatial: bool):
            super().__init__()
            self.proj = nn.Conv2d(3, 4, 2, 2)
            self.spatial = spatial

        def forward(self, pixel_values):
            h = self.proj(pixel_values)
            h = h if self.spatial else h.flatten(2).transpose(1, 2)
            return SimpleNamespace(last_hidden_state=h, pooler_output=None)

    facts = {"image_size": 8, "in_channels": 3}
    x = torch.randn(5, 3, 8, 8)
    for spatial in (False, True):
        backbone = HFBackbone(Tokens(spatial), "cls", interpolate=False)
        pooling, why = _choose_pooling(backbone, facts, pooler_absent=False)
        assert pooling == "mean" and "mean" in why
        backbone.pooling = pooling
        ref = backbone.model.proj(x).mean(dim=(2, 3))
        assert _close(backbone(x), ref)
