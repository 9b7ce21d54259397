"""Models trained elsewhere: torchvision or timm backbones with weights from any common file.

``dimcollapse spectrum``, ``embed`` and ``probe`` accept ``--model torchvision:resnet50`` (any
torchvision classification model) or ``--model timm:NAME`` (with the ``dimcollapse[timm]``
extra) and ``--weights FILE``. :func:`load_foreign_model` builds the architecture *without*
pretrained weights (nothing is downloaded), loads the file's tensors into it and wraps it as a
:class:`ForeignModel`, whose ``encode(x)`` is what :func:`dimcollapse.probe.extract_features`
calls for a dimcollapse model: so the spectrum (Eq. 1), RankMe and the probes read foreign
models through the same code as our own.

Documented choices:

* **Weights files**: ``.safetensors``; ``.pt``/``.pth``/``.ckpt`` loaded with
  ``torch.load(weights_only=True)`` (a file that needs unpickling of arbitrary objects is
  refused, never executed). A dict with a ``state_dict`` entry (PyTorch Lightning, solo-learn)
  or a ``model`` / ``state_dict_ema`` entry of tensors uses that entry.
* **Key prefixes** (``backbone.``, ``module.``, ``encoder.``, ``model.``, or any other): found by
  vote, each file key that ends with a model key proposing the rest as the prefix; the prefix
  matching most tensors (same name and shape) wins. ``--prefix`` sets it.
* **Matching**: at least :data:`MIN_MATCH` of the backbone's tensors must be found with the
  right shape, else the load is refused with the counts and examples (a file of another
  architecture, or a wrong prefix). Tensors found neither way are reported on stderr as a
  ``note:`` line: never a silent load with random weights.
* **Representation**: the penultimate feature. torchvision: the *last* ``nn.Linear`` of the
  model (the classifier: ``fc`` of ResNet/RegNet/Inception, the last layer of ``classifier``
  for VGG/AlexNet/EfficientNet/MobileNet/ConvNeXt/DenseNet, ``heads.head`` of ViT, ``head``
  of Swin) is replaced by ``Identity``, so r is its input (512-d for ResNet-18, 2048-d for
  ResNet-50, 4096-d for VGG). Models without a final ``Linear`` (SqueezeNet) need ``--layer``.
  timm: ``reset_classifier(0)``. ``--layer NAME`` instead reads any named module's output,
  global-average-pooled when it is spatial (N, C, H, W) and flattened otherwise.
* **A CIFAR-stem ResNet** (solo-learn and most small-image SSL code: a 3x3 stride-1 ``conv1``
  and no max-pool) is recognised from the file's ``conv1.weight`` shape, and the torchvision
  ResNet's stem is rebuilt to match (a ``note:`` says so).
* **Input**: the dataset's images (from :func:`dimcollapse.probe.extract_features`'s eval
  loader, normalised with the dataset's statistics) are brought back to the 0..1 scale, grey
  images repeated to three channels when the model has three, resized (bilinear, antialiased)
  to the model's input size, and normalised with the model's own statistics: torchvision's
  default-weights metadata (224 px, ImageNet mean/std; 299 for Inception), timm's
  ``pretrained_cfg``; ``--image-size`` overrides the size (e.g. 32 for a CIFAR model).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dimcollapse.errors import UsageError

FAMILIES = ("torchvision", "timm")
#: The fewest backbone tensors (fraction) a weights file must supply.
MIN_MATCH = 0.9
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"torchvision:resnet50"`` -> ``("torchvision", "resnet50")``; one-line errors."""
    family, sep, name = spec.partition(":")
    if not sep or not name or family not in FAMILIES:
        raise UsageError(
            f"--model {spec!r}: expected FAMILY:NAME with FAMILY one of {', '.join(FAMILIES)}, "
            "e.g. torchvision:resnet50"
        )
    return family, name


def build_architecture(spec: str) -> tuple[nn.Module, dict[str, Any]]:
    """The architecture of ``spec`` with random weights (nothing downloaded) and its input
    facts ``{"image_size", "mean", "std", "in_channels"}``."""
    family, name = parse_model_spec(spec)
    if family == "torchvision":
        return _torchvision(name)
    return _timm(name)


def _torchvision(name: str) -> tuple[nn.Module, dict[str, Any]]:
    from torchvision import models

    available = models.list_models(module=models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"--model torchvision:{name}: no such torchvision classification model{hint}"
        )
    model = models.get_model(name, weights=None)
    facts = {"image_size": 224, "mean": _IMAGENET_MEAN, "std": _IMAGENET_STD, "in_channels": 3}
    try:  # the default weights' metadata (no download): input size and normalisation
        preset = models.get_model_weights(name).DEFAULT.transforms()
        size = getattr(preset, "crop_size", None)
        facts["image_size"] = int(size[0] if isinstance(size, (list, tuple)) else size or 224)
        facts["mean"] = tuple(float(v) for v in getattr(preset, "mean", _IMAGENET_MEAN))
        facts["std"] = tuple(float(v) for v in getattr(preset, "std", _IMAGENET_STD))
    except Exception:  # noqa: BLE001 - a model without registered weights keeps the defaults
        pass
    return model, facts


def _timm(name: str) -> tuple[nn.Module, dict[str, Any]]:
    try:
        import timm
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
        "mean": tuple(cfg.get("mean", _IMAGENET_MEAN)),
        "std": tuple(cfg.get("std", _IMAGENET_STD)),
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


# ---- weights ---------------------------------------------------------------------------------


def read_weights(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a weights file, as a flat ``{name: tensor}`` dict."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such weights file")
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            return dict(load_file(str(p)))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
            raise UsageError(f"{p}: not a readable safetensors file ({exc})") from None
    from dimcollapse.fileio import load_torch_weights_only

    return _tensor_dict(load_torch_weights_only(p, "weights file"), p)


def _tensor_dict(data: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(data, Mapping):
        for key in ("state_dict", "model", "state_dict_ema", "model_state_dict"):
            inner = data.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
                data = inner
                break
        tensors = {str(k): v for k, v in data.items() if isinstance(v, Tensor)}
        if tensors:
            return tensors
    raise UsageError(f"{path}: holds no named tensors (not a state_dict or checkpoint)")


def find_prefix(file_keys: Sequence[str], model_keys: Sequence[str]) -> str:
    """The key prefix of a weights file relative to a model's keys, by vote (may be '')."""
    votes: Counter[str] = Counter()
    model_set = set(model_keys)
    for fk in file_keys:
        if fk in model_set:
            votes[""] += 1
            continue
        parts = fk.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in model_set:
                votes[".".join(parts[:i]) + "."] += 1
                break
    return votes.most_common(1)[0][0] if votes else ""


def match_weights(
    model: nn.Module, tensors: Mapping[str, Tensor], prefix: str | None, source: str
) -> tuple[dict[str, Tensor], list[str], str]:
    """Map the file's tensors onto ``model``'s state dict: (matched state, missing keys, prefix).

    Refuses (UsageError) when fewer than :data:`MIN_MATCH` of the model's tensors are found with
    the right shape.
    """
    state = model.state_dict()
    model_keys = [k for k in state if not k.endswith("num_batches_tracked")]
    if prefix is None:
        prefix = find_prefix(list(tensors), model_keys)
    matched: dict[str, Tensor] = {}
    wrong_shape: list[str] = []
    for key in model_keys:
        value = tensors.get(prefix + key)
        if value is None:
            continue
        if tuple(value.shape) != tuple(state[key].shape):
            wrong_shape.append(key)
            continue
        matched[key] = value
    missing = [k for k in model_keys if k not in matched]
    if not model_keys or len(matched) < MIN_MATCH * len(model_keys):
        what = f"prefix {prefix!r}" if prefix else "no prefix"
        detail = ""
        if wrong_shape:
            k = wrong_shape[0]
            detail = (
                f"; {len(wrong_shape)} have another shape (e.g. {k}: "
                f"{tuple(tensors[prefix + k].shape)} in the file, {tuple(state[k].shape)} here)"
            )
        elif missing:
            detail = f"; e.g. {missing[0]!r} is missing"
        raise UsageError(
            f"{source}: only {len(matched)} of {len(model_keys)} tensors of the model found "
            f"({what}){detail}: is it another architecture? (--prefix sets the key prefix)"
        )
    return matched, missing, prefix


def _adapt_cifar_stem(model: nn.Module, tensors: Mapping[str, Tensor], prefix: str) -> bool:
    """Rebuild a torchvision ResNet's stem as the CIFAR one when the file's conv1 is 3x3."""
    conv = getattr(model, "conv1", None)
    weight = tensors.get(prefix + "conv1.weight")
    if not isinstance(conv, nn.Conv2d) or weight is None or weight.ndim != 4:
        return False
    if tuple(weight.shape[-2:]) != (3, 3) or conv.kernel_size == (3, 3):
        return False
    model.conv1 = nn.Conv2d(
        weight.shape[1], weight.shape[0], kernel_size=3, stride=1, padding=1, bias=False
    )
    if hasattr(model, "maxpool"):
        model.maxpool = nn.Identity()
    return True


# ---- the wrapped model -----------------------------------------------------------------------


class ForeignModel(nn.Module):
    """A foreign backbone behind dimcollapse's ``encode(x) -> r (B, D)`` interface.

    ``x`` comes normalised with the *dataset's* statistics (``data_mean``/``data_std``, as
    :func:`dimcollapse.data.loaders.build_eval_loader` gives it); ``encode`` converts it to the
    model's input (channels, size, normalisation) before the forward pass. ``head`` is None:
    a foreign model has a representation, not our embedding.
    """

    head = None

    def __init__(
        self,
        net: nn.Module,
        *,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        in_channels: int,
        data_mean: Sequence[float],
        data_std: Sequence[float],
        layer: str | None = None,
        name: str = "",
    ) -> None:
        super().__init__()
        self.net = net
        self.image_size = int(image_size)
        self.in_channels = int(in_channels)
        self.name = name
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer(
            "data_mean", torch.tensor(data_mean, dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer(
            "data_std", torch.tensor(data_std, dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.layer = layer
        self._captured: Tensor | None = None
        if layer is not None:
            modules = dict(net.named_modules())
            if layer not in modules or not layer:
                close = difflib.get_close_matches(layer, [n for n in modules if n], n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise UsageError(f"--layer {layer!r}: no module of that name in {name}{hint}")
            modules[layer].register_forward_hook(self._capture)

    def _capture(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        self._captured = output

    def prepare(self, x: Tensor) -> Tensor:
        """Dataset-normalised images (B, C, H, W) -> the model's input."""
        x = x.float() * self.data_std + self.data_mean
        if x.shape[1] == 1 and self.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != self.in_channels:
            raise UsageError(
                f"{self.name} takes {self.in_channels}-channel images, the dataset has {x.shape[1]}"
            )
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True
            )
        return (x - self.mean) / self.std

    def encode(self, x: Tensor) -> Tensor:
        """The representation ``(B, D)``: penultimate features, or ``--layer``'s output pooled."""
        out = self.net(self.prepare(x))
        if self.layer is not None:
            out, self._captured = self._captured, None
        if isinstance(out, (tuple, list)):  # e.g. Inception's (logits, aux) in train mode
            out = out[0]
        if out.ndim == 4:
            out = out.mean(dim=(2, 3))
        elif out.ndim == 3:  # tokens (B, T, C): their mean
            out = out.mean(dim=1)
        return out.flatten(1)


def load_foreign_model(
    spec: str,
    weights: str | os.PathLike[str],
    *,
    data_mean: Sequence[float],
    data_std: Sequence[float],
    prefix: str | None = None,
    layer: str | None = None,
    image_size: int | None = None,
    verbose: bool = True,
) -> ForeignModel:
    """Build ``spec``, load ``weights`` into it, strip its classifier: a :class:`ForeignModel`."""
    family, _name = parse_model_spec(spec)
    net, facts = build_architecture(spec)
    tensors = read_weights(weights)
    guess = prefix if prefix is not None else find_prefix(list(tensors), list(net.state_dict()))
    notes = []
    if family == "torchvision" and _adapt_cifar_stem(net, tensors, guess):
        notes.append("the file's 3x3 conv1 is a CIFAR stem: conv1 rebuilt, max-pool removed")
    removed = strip_classifier(net, family)
    matched, missing, used = match_weights(net, tensors, prefix, str(weights))
    net.load_state_dict(matched, strict=False)
    if missing:
        notes.append(
            f"{len(missing)} model tensor(s) not in the file, left at initialisation: "
            + ", ".join(missing[:4])
            + (" ..." if len(missing) > 4 else "")
        )
    if removed is None and layer is None:
        raise UsageError(
            f"{spec}: no final Linear classifier to remove; choose the feature with --layer NAME"
        )
    if verbose:
        for note in notes:
            print(f"note: {weights}: {note}", file=sys.stderr)
    net.eval()
    return ForeignModel(
        net,
        image_size=image_size or facts["image_size"],
        mean=facts["mean"],
        std=facts["std"],
        in_channels=facts["in_channels"],
        data_mean=data_mean,
        data_std=data_std,
        layer=layer,
        name=spec,
    )
