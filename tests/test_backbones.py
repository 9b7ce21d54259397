"""ResNet encoders: rep_dim, stems, width, initialisation, errors."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from dimcollapse.backbones import BACKBONES, build_backbone, rep_dim
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
