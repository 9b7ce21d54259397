"""Reading weights files: every dictionary of tensors inside one, however deeply nested.

A checkpoint is often more than a state dict: Lightning's ``{"state_dict": ...}``, timm's
``state_dict`` beside ``state_dict_ema``, DINO's ``student`` and ``teacher``, an optimizer's
state. :func:`read_tensor_groups` returns each dictionary that holds tensors under its dotted
path in the file (``""`` for the top level); which group, and which key prefix inside it, is
the model is decided by :mod:`dimcollapse.foreign.matching`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from dimcollapse.errors import UsageError

#: Entries that hold training state, never a model: not searched.
NOT_MODELS = frozenset(
    {"optimizer", "optimizer_states", "lr_schedulers", "scaler", "amp", "loops", "callbacks"}
)
#: How deep dictionaries are searched for tensors.
MAX_DEPTH = 4
#: The entries a single-model reader takes, in order (Lightning, timm, plain training scripts).
_USUAL = ("", "state_dict", "model", "state_dict_ema", "model_state_dict")


def read_tensor_groups(path: str | os.PathLike[str]) -> dict[str, dict[str, Tensor]]:
    """``{dotted path in the file: {name: tensor}}`` for every dictionary holding tensors.

    ``.safetensors`` files are one group ``""``; torch files are loaded with
    ``weights_only=True`` (``argparse.Namespace``, which DINO and others save as ``args``, is
    allowed: it only holds values).
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such weights file")
    if p.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file

            return {"": dict(load_file(str(p)))}
        except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
            raise UsageError(f"{p}: not a readable safetensors file ({exc})") from None
    from dimcollapse.fileio import load_torch_weights_only

    with _namespace_allowed():
        data = load_torch_weights_only(p, "weights file")
    groups: dict[str, dict[str, Tensor]] = {}
    _collect(data, "", groups, 0)
    if not groups:
        raise UsageError(f"{p}: holds no named tensors (not a state_dict or checkpoint)")
    return groups


def read_weights(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a weights file as one flat ``{name: tensor}`` dict: the top level, else
    the first of ``state_dict``, ``model``, ``state_dict_ema``, ``model_state_dict``, else the
    largest group."""
    groups = read_tensor_groups(path)
    for key in _USUAL:
        if key in groups:
            return groups[key]
    return max(groups.values(), key=len)


def _collect(obj: Any, path: str, out: dict[str, dict[str, Tensor]], depth: int) -> None:
    if not isinstance(obj, Mapping) or depth > MAX_DEPTH:
        return
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if tensors:
        out[path] = tensors
    for key, value in obj.items():
        if isinstance(value, Mapping) and str(key) not in NOT_MODELS:
            _collect(value, f"{path}.{key}" if path else str(key), out, depth + 1)


def _namespace_allowed() -> contextlib.AbstractContextManager[Any]:
    import torch

    safe = getattr(torch.serialization, "safe_globals", None)
    return safe([argparse.Namespace]) if safe is not None else contextlib.nullcontext()
