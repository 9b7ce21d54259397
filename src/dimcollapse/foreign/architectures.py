"""Architectures for ``--model FAMILY:NAME``: torchvision and timm models built with random
weights (nothing downloaded), their input facts, classifier removal and the CIFAR stem."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn
from torchvision import models

from dimcollapse.data.formats import IMAGENET_NORMALIZATION
from dimcollapse.errors import UsageError

FAMILIES = ("torchvision", "timm", "hf")
#: The padding of a CIFAR stem's 3x3 ``conv1`` when nothing says otherwise: the common choice
#: (``nn.Conv2d(3, 64, 3, 1, 1)``). The weights cannot show it; ``--stem-padding`` sets it.
DEFAULT_STEM_PADDING = 1
#: solo-learn's: ``nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)`` for
#: cifar10/100 (vturrisi/solo-learn, solo/methods/base.py).
SOLO_LEARN_STEM_PADDING = 2
#: The input statistics a model trained elsewhere is assumed to expect when it names none.
IMAGENET_MEAN, IMAGENET_STD = IMAGENET_NORMALIZATION


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"torchvision:resnet50"`` -> ``("torchvision", "resnet50")``; one-line errors."""
    family, sep, name = spec.partition(":")
    if not sep or not name or family not in FAMILIES:
        raise UsageError(
            f"--model {spec!r}: expected FAMILY:NAME with FAMILY one of {', '.join(FAMILIES)}, "
            "e.g. torchvision:resnet50 or hf:DIR"
        )
    return family, name


def build_architecture(spec: str) -> tuple[nn.Module, dict[str, Any]]:
    """The architecture of ``spec`` with random weights (nothing downloaded) and its input
    facts ``{"image_size", "mean", "std", "in_channels"}``. ``hf:`` models come with their
    weights: :func:`dimcollapse.foreign.hf.load_hf_backbone`."""
    family, name = parse_model_spec(spec)
    if family == "torchvision":
        return _torchvision(name)
    if family == "timm":
        return _timm(name)
    raise UsageError(f"--model {spec}: a Hugging Face folder holds its weights; load it whole")


def _torchvision(name: str) -> tuple[nn.Module, dict[str, Any]]:
    available = models.list_models(module=models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"--model torchvision:{name}: no such torchvision classification model{hint}"
        )
    model = models.get_model(name, weights=None)
    facts = {"image_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "in_channels": 3}
    try:  # the default weights' metadata (no download): input size and normalisation
        preset = models.get_model_weights(name).DEFAULT.transforms()
        size = getattr(preset, "crop_size", None)
        facts["image_size"] = int(size[0] if isinstance(size, (list, tuple)) else size or 224)
        facts["mean"] = tuple(float(v) for v in getattr(preset, "mean", IMAGENET_MEAN))
        facts["std"] = tuple(float(v) for v in getattr(preset, "std", IMAGENET_STD))
    except Exception:  # noqa: BLE001 - a model without registered weights keeps the defaults
        pass
    return model, facts


def _timm(name: str) -> tuple[nn.Module, dict[str, Any]]:
    try:
        import timm  # optional: dimcollapse[timm]
    except ImportError:
        raise UsageError(
            "--model timm:...: timm is not installed; pip install 'dimcollapse[timm]'"
        ) from None
    try:
        model = timm.create_model(name, pretrained=False)
    except Exception as exc:  # noqa: BLE001 - timm raises RuntimeError for unknown names
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"--model timm:{name}: {str(exc).splitlines()[0]}{hint}") from None
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size", (3, 224, 224))
    facts = {
        "image_size": int(size[-1]),
        "mean": tuple(cfg.get("mean", IMAGENET_MEAN)),
        "std": tuple(cfg.get("std", IMAGENET_STD)),
        "in_channels": int(size[0]),
    }
    return model, facts


def strip_classifier(model: nn.Module, family: str) -> str | None:
    """Remove the classifier so that the output is the penultimate feature; returns its name
    (None when there is none to remove)."""
    if family == "timm" and hasattr(model, "reset_classifier"):
        model.reset_classifier(0)
        return "timm classifier"
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        return None
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return last


def has_imagenet_stem(model: nn.Module) -> bool:
    """Whether ``model`` is a torchvision-style ResNet with a 7x7 ``conv1`` (and a max-pool)."""
    conv = getattr(model, "conv1", None)
    return isinstance(conv, nn.Conv2d) and conv.kernel_size == (7, 7)


def is_cifar_stem_weight(model: nn.Module, weight: Tensor | None) -> bool:
    """Whether ``weight`` is a 3x3 stem conv that fits ``model.conv1``'s channels."""
    if weight is None or weight.ndim != 4 or not has_imagenet_stem(model):
        return False
    conv = model.conv1
    return tuple(weight.shape) == (conv.out_channels, conv.in_channels, 3, 3)


def cifar_stem_in(model: nn.Module, groups: Mapping[str, Mapping[str, Tensor]]) -> bool:
    """Whether any tensor in the file could be a CIFAR stem for ``model`` (3x3, its channels)."""
    return any(is_cifar_stem_weight(model, t) for g in groups.values() for t in g.values())


def set_cifar_stem(model: nn.Module, cifar: bool, padding: int = DEFAULT_STEM_PADDING) -> None:
    """Rebuild a torchvision ResNet's stem as the CIFAR one (3x3 stride-1 ``conv1`` padded by
    ``padding``, no max-pool), or back to the ImageNet one (7x7 stride-2, 3x3 max-pool)."""
    conv = model.conv1
    if cifar:
        model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, padding, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 7, 2, 3, bias=False)
        model.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
