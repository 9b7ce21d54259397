"""ResNet encoders: rep_dim, stems, width, initialisation, errors."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from dimcollapse.backbones import BACKBONES, STEMS, build_backbone, feature_map_sizes, rep_dim
from dimcollapse.errors import UsageError

REP_DIMS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("width", [1.0, 0.25])
def test_rep_dim_and_forward_shape(name, width):
    model, rep_dim = build_backbone(name, width=width, small_images=True)
    assert rep_dim == round(REP_DIMS[name] * width)
    with torch.no_grad():
        r = model(torch.randn(2, 3, 16, 16))
    assert r.shape == (2, rep_dim)


def test_width_scales_every_stage():
    model, rep_dim = build_backbone("resnet50", width=0.25)
    assert model.conv1.out_channels == 16 and model.bn1.num_features == 16
    widths = [
        stage[0].conv1.out_channels
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4)
    ]
    assert widths == [16, 32, 64, 128]
    assert rep_dim == 128 * 4
    _, tiny = build_backbone("resnet18", width=0.001)  # channels never round to 0
    assert tiny == 1


def test_resnet18_matches_torchvision_without_fc():
    model, _ = build_backbone("resnet18")
    reference = torchvision.models.resnet18()
    assert count(model) == count(reference) - count(reference.fc)
    assert isinstance(model.fc, nn.Identity)
    assert model.conv1.kernel_size == (7, 7) and isinstance(model.maxpool, nn.MaxPool2d)


def test_small_stem_keeps_resolution_for_grey_images():
    model, rep_dim = build_backbone("resnet18", in_channels=1, small_images=True)
    assert model.conv1.in_channels == 1
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    seen = {}

    def record(module, inputs, output):
        seen["layer1"] = output.shape  # returns None: the output is left as is

    model.layer1.register_forward_hook(record)
    with torch.no_grad():
        r = model(torch.randn(2, 1, 28, 28))
    assert r.shape == (2, rep_dim)
    assert seen["layer1"][-2:] == (28, 28)  # the ImageNet stem would give 7x7 here

    standard, _ = build_backbone("resnet18", in_channels=1)
    assert standard.conv1.in_channels == 1 and standard.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_zero_init_residual(width):
    for name, block, last_bn in (("resnet18", BasicBlock, "bn2"), ("resnet50", Bottleneck, "bn3")):
        model, _ = build_backbone(name, width=width, small_images=True)
        blocks = [m for m in model.modules() if isinstance(m, block)]
        assert blocks and all(torch.all(getattr(b, last_bn).weight == 0) for b in blocks)
        plain, _ = build_backbone(name, width=width, zero_init_residual=False)
        assert all(
            torch.all(getattr(b, last_bn).weight == 1)
            for b in plain.modules()
            if isinstance(b, block)
        )


def test_rebuilt_convolutions_are_initialised():
    model, _ = build_backbone("resnet18", width=0.5, small_images=True)
    # Kaiming fan-out: std = sqrt(2 / (out_channels * k * k))
    conv = model.layer3[0].conv1
    expected = (2 / (conv.out_channels * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.1)


def test_bad_input_raises_usage_error():
    with pytest.raises(UsageError, match="resnet18, resnet34, resnet50"):
        build_backbone("vit_b_16")
    for width in (0, -1.0, float("nan"), "wide"):
        with pytest.raises(UsageError, match="width"):
            build_backbone("resnet18", width=width)
    with pytest.raises(UsageError, match="in_channels"):
        build_backbone("resnet18", in_channels=0)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("width", [1.0, 0.5, 0.3, 0.001])
def test_rep_dim_without_building_matches_the_network(name, width):
    _, built = build_backbone(name, width=width)
    assert rep_dim(name, width) == built
    assert rep_dim(name, width) == build_backbone(name, width=width, small_images=True)[1]


def test_rep_dim_refuses_what_build_backbone_refuses():
    with pytest.raises(UsageError, match="resnet18, resnet34, resnet50"):
        rep_dim("vit_b_16", 1.0)
    for width in (0, -1.0, float("nan"), float("inf"), "wide"):
        with pytest.raises(UsageError, match="width must be a finite number > 0"):
            rep_dim("resnet18", width)


def _stage_sides(model: nn.Module, image_size: int, channels: int = 1) -> dict[str, int]:
    """The side of each stage's output map, read by forward hooks (the reference)."""
    sides: dict[str, int] = {"input": image_size}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: sides.__setitem__(name, int(out.shape[-1]))
        )
        for name in ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4")
    ]
    with torch.no_grad():
        model(torch.randn(2, channels, image_size, image_size))
    for h in hooks:
        h.remove()
    return sides


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("image_size", [28, 32, 37, 64, 224])
def test_feature_map_sizes_match_the_network(stem, image_size):
    model, _ = build_backbone("resnet18", in_channels=1, stem=stem, width=0.0625)
    assert feature_map_sizes(stem, image_size) == _stage_sides(model, image_size)


def test_layer4_map_at_28px_per_stem():
    # the geometry the CPU reproduction chose: r averages a 2x2 (half) or 4x4 (cifar) map
    assert {s: feature_map_sizes(s, 28)["layer4"] for s in STEMS} == {
        "imagenet": 1,
        "half": 2,
        "cifar": 4,
    }


def test_stem_overrides_small_images_and_is_checked():
    model, _ = build_backbone("resnet18", in_channels=1, small_images=True, stem="half")
    assert model.conv1.stride == (2, 2) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, nn.Identity) and model.stem == "half"
    assert build_backbone("resnet18", small_images=True)[0].stem == "cifar"
    with pytest.raises(UsageError, match="unknown stem 'tiny'"):
        build_backbone("resnet18", stem="tiny")


@pytest.mark.parametrize("stem", STEMS)
def test_random_network_sees_the_whole_image_only_without_zero_init(stem):
    """With zero-initialised residual branches an untrained network is a chain of stride-2 1x1
    shortcuts, so r depends on a sparse grid of pixels; with every branch live it depends on
    all of them (the random baseline's network)."""

    def pixels_seen(zero_init: bool) -> float:
        torch.manual_seed(0)
        model, _ = build_backbone(
            "resnet18", in_channels=1, stem=stem, width=0.125, zero_init_residual=zero_init
        )
        x = torch.randn(4, 1, 28, 28, requires_grad=True)
        model.eval()  # as features are extracted (batch statistics would couple all pixels)
        model(x).sum().backward()
        seen = x.grad.abs().sum(dim=(0, 1)) > 0  # (28, 28)
        return float(seen.float().mean())

    assert pixels_seen(False) == 1.0
    if stem == "imagenet":  # the top-left 6x6 pixels of 28x28, as the issue measured
        assert pixels_seen(True) == pytest.approx(36 / 784)
