"""Torchvision ResNets as representation encoders: ``(B, C, H, W)`` -> ``r: (B, rep_dim)``.

The paper's encoder is torchvision's ``resnet50(zero_init_residual=True)`` with ``fc =
Identity``, so ``r`` is the 2048-d pooled output. On top of that this module offers:

* ``stem`` (:data:`STEMS`): ``"imagenet"``, torchvision's 7x7 stride-2 conv and 3x3 stride-2
  max-pool (the image's side divided by 4 before layer1); ``"cifar"`` (``small_images=True``),
  a 3x3 stride-1 conv without max-pool that keeps the resolution of small images
  (``data.augment.SMALL_IMAGE_MAX`` px or less); ``"half"``, a 3x3 stride-2 conv without
  max-pool (the side divided by 2), which at 28 px gives layer4 a 2x2 map for a quarter of the
  CIFAR stem's cost. :func:`feature_map_sizes` says which map each stage sees;
* ``in_channels``: 1 for grey images such as Fashion-MNIST;
* ``width``: multiplies every stage's channels (64, 128, 256, 512), for cheap experiments.

The blocks are torchvision's ``BasicBlock`` / ``Bottleneck`` assembled by its ``ResNet`` class.
"""

from __future__ import annotations

import math

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from dimcollapse.choices import STEMS
from dimcollapse.errors import UsageError

BACKBONES = ("resnet18", "resnet34", "resnet50")

_SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}
_STAGE_PLANES = (64, 128, 256, 512)

#: The stages whose output side :func:`feature_map_sizes` reports, in order.
STAGES = ("input", "conv1", "maxpool", "layer1", "layer2", "layer3", "layer4")


def resolve_stem(stem: str | None, small_images: bool) -> str:
    """``stem`` when given (checked), else the stem ``small_images`` selects ("cifar" or
    "imagenet")."""
    if stem is None:
        return "cifar" if small_images else "imagenet"
    if stem not in STEMS:
        raise UsageError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
    return stem


def _conv_out(side: int, kernel: int, stride: int, padding: int) -> int:
    return (side + 2 * padding - kernel) // stride + 1


def feature_map_sizes(stem: str, image_size: int) -> dict[str, int]:
    """The side (px) of the square map after each stage (:data:`STAGES`) of a ResNet with
    ``stem`` on ``image_size`` px images; ``layer4``'s is what r averages over.

    For 28 px: imagenet 14, 7, 7, 4, 2, 1; half 14, 14, 14, 7, 4, 2; cifar 28, 28, 28, 14, 7, 4
    (conv1, maxpool, layer1 ... layer4).
    """
    stem = resolve_stem(stem, False)
    side = int(image_size)
    sizes = {"input": side}
    if stem == "imagenet":
        side = _conv_out(side, 7, 2, 3)
        sizes["conv1"] = side
        side = _conv_out(side, 3, 2, 1)
    elif stem == "half":
        side = _conv_out(side, 3, 2, 1)
        sizes["conv1"] = side
    else:
        sizes["conv1"] = side
    sizes["maxpool"] = side
    sizes["layer1"] = side
    for stage in ("layer2", "layer3", "layer4"):
        side = _conv_out(side, 3, 2, 1)  # the first block's stride-2 3x3 conv
        sizes[stage] = side
    return sizes


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
        stem: str | None = None,
        width: float = 1.0,
        zero_init_residual: bool = True,
    ) -> None:
        # torchvision builds the standard network (stem for 3-channel ImageNet images, channels
        # 64..512); rebuild only the parts that differ, then initialise those as torchvision does.
        super().__init__(block, layers, zero_init_residual=zero_init_residual)
        self.fc = nn.Identity()
        rebuilt: list[nn.Module] = []
        stem_planes = _scaled(_STAGE_PLANES[0], width)
        if width != 1.0:
            self.inplanes = stem_planes
            self.bn1 = self._norm_layer(stem_planes)
            stages = [
                self._make_layer(block, _scaled(planes, width), blocks, stride=stride)
                for planes, blocks, stride in zip(_STAGE_PLANES, layers, (1, 2, 2, 2))
            ]
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            rebuilt += [self.bn1, *stages]
        self.stem = resolve_stem(stem, small_images)
        if self.stem in ("cifar", "half"):
            stride = 1 if self.stem == "cifar" else 2
            self.conv1 = nn.Conv2d(
                in_channels, stem_planes, kernel_size=3, stride=stride, padding=1, bias=False
            )
            self.maxpool = nn.Identity()
            rebuilt.append(self.conv1)
        elif in_channels != 3 or width != 1.0:
            self.conv1 = nn.Conv2d(
                in_channels, stem_planes, kernel_size=7, stride=2, padding=3, bias=False
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
    stem: str | None = None,
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
    torchvision (the paper's code sets it). ``stem`` (one of :data:`STEMS`) overrides
    ``small_images`` when given.
    """
    block, layers = _spec(name)
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels <= 0:
        raise UsageError(f"in_channels must be a positive integer, got {in_channels!r}")
    encoder = ResNetEncoder(
        block,
        layers,
        in_channels=in_channels,
        small_images=small_images,
        stem=stem,
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
