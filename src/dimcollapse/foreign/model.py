"""The wrapped model: :class:`ForeignModel` (``encode(x) -> r`` like a dimcollapse model) and
:func:`load_foreign_model`, which builds an architecture, finds its tensors in a weights file
(or loads a Hugging Face folder) and wraps it."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dimcollapse.errors import UsageError
from dimcollapse.foreign.architectures import (
    DEFAULT_STEM_PADDING,
    SOLO_LEARN_STEM_PADDING,
    build_architecture,
    cifar_stem_in,
    has_imagenet_stem,
    is_cifar_stem_weight,
    parse_model_spec,
    set_cifar_stem,
    strip_classifier,
)
from dimcollapse.foreign.hf import load_hf_backbone
from dimcollapse.foreign.matching import (
    Found,
    find_prefix,
    locate_weights,
    model_keys,
    solo_learn_layout,
)
from dimcollapse.foreign.weights import read_tensor_groups


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
    weights: str | os.PathLike[str] | None = None,
    *,
    data_mean: Sequence[float],
    data_std: Sequence[float],
    prefix: str | None = None,
    select: str | None = None,
    layer: str | None = None,
    image_size: int | None = None,
    stem_padding: int | None = None,
    pool: str | None = None,
    verbose: bool = True,
) -> ForeignModel:
    """Build ``spec``, load ``weights`` into it, strip its classifier: a :class:`ForeignModel`.

    ``hf:DIR`` loads a Hugging Face ``save_pretrained`` folder and takes no ``weights``;
    ``pool`` (``"pooler"``, ``"cls"`` or ``"mean"``; default: the pooled output when the model
    has a trained pooler, else the CLS token, else the mean of the tokens) says which output of
    it is the representation. ``prefix`` and ``select`` choose the tensors when a file holds
    several sets (see :mod:`dimcollapse.foreign.matching`). ``stem_padding`` is the padding of a
    CIFAR stem's 3x3 ``conv1``, which the weights cannot show (default: 2 for a solo-learn
    checkpoint, as solo-learn builds it, else 1); refused when the file has no CIFAR stem. Notes
    on what was chosen go to stderr.
    """
    family, name = parse_model_spec(spec)
    if family == "hf":
        if weights is not None:
            raise UsageError(
                f"--model {spec}: a Hugging Face folder holds its own weights; give --weights "
                "only for torchvision: and timm: models"
            )
        if stem_padding is not None:
            raise UsageError(
                f"--stem-padding: --model {spec} is a Hugging Face folder; it applies only to a "
                "torchvision ResNet whose file has a CIFAR stem"
            )
        net, facts, notes = load_hf_backbone(name, pool=pool)
        source = name
    else:
        if weights is None:
            raise UsageError(f"--model {spec}: needs a weights file (--weights FILE)")
        if pool is not None:
            raise UsageError(
                f"--pool {pool}: applies only to hf: models, not --model {spec} (its "
                "representation is the penultimate feature, or --layer's output)"
            )
        net, facts = build_architecture(spec)
        if strip_classifier(net, family) is None and layer is None:
            raise UsageError(
                f"{spec}: no final Linear classifier to remove; choose the feature with --layer NAME"
            )
        notes = _load_weights(net, family, weights, prefix, select, stem_padding)
        source = str(weights)
    if verbose:
        for note in notes:
            print(f"note: {source}: {note}", file=sys.stderr)
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


def _load_weights(
    net: nn.Module,
    family: str,
    weights: str | os.PathLike[str],
    prefix: str | None,
    select: str | None,
    stem_padding: int | None = None,
) -> list[str]:
    """Find ``net``'s tensors in ``weights`` and load them; the notes to print. A torchvision
    ResNet's stem becomes the CIFAR one when the file's is (by name, or by structure when only
    the CIFAR stem lets the file's tensors line up with the model's), padded as
    :func:`_stem_padding` decides."""
    if stem_padding is not None and not 0 <= stem_padding <= 2:
        raise UsageError(
            f"--stem-padding {stem_padding}: a 3x3 stem conv is padded by 0, 1 or 2 pixels"
        )
    groups = read_tensor_groups(weights)
    stem = family == "torchvision" and _named_cifar_stem(net, groups, prefix)
    if stem:
        set_cifar_stem(net, True)
    try:
        found, notes = locate_weights(
            net, groups, prefix=prefix, select=select, source=str(weights)
        )
    except UsageError as first:
        if stem or family != "torchvision" or not cifar_stem_in(net, groups):
            raise
        set_cifar_stem(net, True)
        try:
            found, notes = locate_weights(
                net, groups, prefix=prefix, select=select, source=str(weights)
            )
        except UsageError:
            set_cifar_stem(net, False)
            raise first from None
        stem = True
    if stem:
        padding, why = _stem_padding(found, groups, stem_padding)
        set_cifar_stem(net, True, padding)  # the padding holds no tensor: rebuilt before loading
        notes.insert(
            0,
            f"the file's 3x3 conv1 is a CIFAR stem: conv1 rebuilt with padding {padding} "
            f"({why}), max-pool removed",
        )
    elif stem_padding is not None:
        raise UsageError(
            f"--stem-padding {stem_padding}: {weights} has no CIFAR stem (a 3x3 conv1) for "
            f"{type(net).__name__}; the option applies only to one that has"
        )
    net.load_state_dict(found.state, strict=False)
    if found.missing:
        notes.append(
            f"{len(found.missing)} model tensor(s) not in the file, left at initialisation: "
            + ", ".join(found.missing[:4])
            + (" ..." if len(found.missing) > 4 else "")
        )
    return notes


def _stem_padding(found: Found, groups: Any, stem_padding: int | None) -> tuple[int, str]:
    """The padding of a CIFAR stem's conv1 and why: ``--stem-padding``, else solo-learn's 2 when
    the layout is solo-learn's, else :data:`DEFAULT_STEM_PADDING`. The weights cannot show it."""
    solo = solo_learn_layout(found, groups)
    if stem_padding is not None:
        told = f"--stem-padding {stem_padding}"
        return stem_padding, told + (
            f"; the layout is solo-learn's, which pads by {SOLO_LEARN_STEM_PADDING}" if solo else ""
        )
    if solo:
        return SOLO_LEARN_STEM_PADDING, (
            f"solo-learn's layout ({solo}): solo-learn pads its CIFAR stem by "
            f"{SOLO_LEARN_STEM_PADDING}; --stem-padding N if the file is not solo-learn's"
        )
    return DEFAULT_STEM_PADDING, (
        f"assumed: the weights cannot show it; {DEFAULT_STEM_PADDING} is the common choice, "
        f"solo-learn's is {SOLO_LEARN_STEM_PADDING}; --stem-padding N if the training code used "
        "another"
    )


def _named_cifar_stem(net: nn.Module, groups: Any, prefix: str | None) -> bool:
    """Whether the file's ``conv1.weight`` (under its voted prefix) is a CIFAR stem."""
    if not has_imagenet_stem(net):
        return False
    keys = model_keys(net)
    for tensors in groups.values():
        p = prefix if prefix is not None else find_prefix(list(tensors), keys)
        if is_cifar_stem_weight(net, tensors.get(p + "conv1.weight")):
            return True
    return False
