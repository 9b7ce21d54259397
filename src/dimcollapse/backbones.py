"""Torchvision ResNets as representation encoders: ``(B, C, H, W)`` -> ``r: (B, rep_dim)``.

The paper's encoder is torchvision's ``resnet50(zero_init_residual=True)`` with ``fc =
Identity``, so ``r`` is the 2048-d pooled output. On top of that this module offers:

* ``small_images=True``: the CIFAR stem (3x3 conv, stride 1, padding 1, no max-pool) that keeps
  the resolution of small images (``data.augment.SMALL_IMAGE_MAX`` px or less) instead of
  dividing it by 4 in the stem;
* ``in_channels``: 1 for grey images such as Fashion-MNIST;
* ``width``: multiplies every stage's channels (64, 128, 256, 512), for cheap experiments.

The blocks are torchvision's ``BasicBlock`` / ``Bottleneck`` assembled by its ``ResNet`` class.
"""

from __future__ import annotations

import math

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from dimcollapse.errors import UsageError

BACKBONES = ("resnet18", "resnet34", "resnet50")

_SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}
_STAGE_PLANES = (64, 128, 256, 512)


def _scaled(planes: int, width: float) -> int:
    return max(1, round(planes * width))


def rep_dim(name: str, width: float = 1.0) -> int:
    """The size of ``r`` that ``build_backbone(name, width=width)`` gives, without building it.

    ``round(512 * width) * expansion`` (floored at 1 before the expansion): 512 for resnet18/34
    and 2048 for resnet50 at ``width=1``; the stem and ``in_channels`` do not change it.
    """
    block, _layers = _spec(name)
    return _output_dim(block, _checked_width(width))


def _output_dim(block: type[BasicBlock] | type[Bottleneck], width: float) -> int:
    return _scaled(_STAGE_PLANES[-1], width) * block.expansion


class ResNetEncoder(ResNet):
    """Torchvision's ``ResNet`` with a configurable stem and width, and no classifier.

    ``forward`` returns the globally average-pooled features of the last stage, ``(B, rep_dim)``
    with ``rep_dim = round(512 * width) * block.expansion``.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        *,
        in_channels: int = 3,
        small_images: bool = False,
        width: float = 1.0,
        zero_init_residual: bool = True,
    ) -> None:
        # torchvision builds the standard network (stem for 3-channel ImageNet images, channels
        # 64..512); rebuild only the parts that differ, then initialise those as torchvision does.
        super().__init__(block, layers, zero_init_residual=zero_init_residual)
        self.fc = nn.Identity()
        rebuilt: list[nn.Module] = []
        stem = _scaled(_STAGE_PLANES[0], width)
        if width != 1.0:
            self.inplanes = stem
            self.bn1 = self._norm_layer(stem)
            stages = [
                self._make_layer(block, _scaled(planes, width), blocks, stride=stride)
                for planes, blocks, stride in zip(_STAGE_PLANES, layers, (1, 2, 2, 2))
            ]
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            rebuilt += [self.bn1, *stages]
        if small_images:
            self.conv1 = nn.Conv2d(
                in_channels, stem, kernel_size=3, stride=1, padding=1, bias=False
            )
            self.maxpool = nn.Identity()
            rebuilt.append(self.conv1)
        elif in_channels != 3 or width != 1.0:
            self.conv1 = nn.Conv2d(
                in_channels, stem, kernel_size=7, stride=2, padding=3, bias=False
            )
            rebuilt.append(self.conv1)
        for module in rebuilt:
            _init_like_torchvision(module, zero_init_residual)
        self.rep_dim = _output_dim(block, width)


def _init_like_torchvision(module: nn.Module, zero_init_residual: bool) -> None:
    """Re-run torchvision's ResNet initialisation on a rebuilt part of the network.

    Kaiming-normal (fan-out) convolutions, BN weight 1 and bias 0, and, with
    ``zero_init_residual``, the last BN of every residual branch set to 0 so that each block
    starts as the identity (Goyal et al., 2017).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in module.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)


def build_backbone(
    name: str,
    *,
    in_channels: int = 3,
    small_images: bool = False,
    width: float = 1.0,
    zero_init_residual: bool = True,
) -> tuple[nn.Module, int]:
    """Build the encoder ``name`` (one of :data:`BACKBONES`); return ``(module, rep_dim)``.

    The module maps float images ``(B, in_channels, H, W)`` to pooled features
    ``(B, rep_dim)``: 512 for resnet18/34 and 2048 for resnet50 at ``width=1``; in general
    ``round(512 * width) * expansion`` (expansion 1 for resnet18/34, 4 for resnet50). Stage
    channels are ``max(1, round(c * width))`` for ``c`` in (64, 128, 256, 512).

    ``small_images=True`` selects the CIFAR stem (3x3 conv, stride 1, no max-pool), meant for
    images of ``data.augment.SMALL_IMAGE_MAX`` px or less; ``zero_init_residual`` as in
    torchvision (the paper's code sets it).
    """
    block, layers = _spec(name)
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels <= 0:
        raise UsageError(f"in_channels must be a positive integer, got {in_channels!r}")
    encoder = ResNetEncoder(
        block,
        layers,
        in_channels=in_channels,
        small_images=small_images,
        width=_checked_width(width),
        zero_init_residual=zero_init_residual,
    )
    return encoder, encoder.rep_dim


def _spec(name: str) -> tuple[type[BasicBlock] | type[Bottleneck], list[int]]:
    """``(block, blocks per stage)`` of the backbone ``name``; UsageError for an unknown one."""
    if name not in _SPECS:
        raise UsageError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return _SPECS[name]


def _checked_width(width: float) -> float:
    """``width`` as a float; UsageError unless it is a finite number > 0."""
    try:
        scale = float(width)
    except (TypeError, ValueError):
        scale = math.nan
    if not math.isfinite(scale) or scale <= 0:
        raise UsageError(f"width must be a finite number > 0, got {width!r}")
    return scale
