"""Reading weights files: every dictionary of tensors inside one, however deeply nested.

A checkpoint is often more than a state dict: Lightning's ``{"state_dict": ...}``, timm's
``state_dict`` beside ``state_dict_ema``, DINO's ``student`` and ``teacher``, an optimizer's
state. :func:`read_tensor_groups` returns each dictionary that holds tensors under its dotted
path in the file (``""`` for the top level); which group, and which key prefix inside it, is
the model is decided by :mod:`dimcollapse.foreign.matching`.

Torch files are read with ``torch.load(weights_only=True)``: no pickled code runs. Beside
tensors and containers, the plain data checkpoints keep in their ``args`` or Lightning
``hyper_parameters`` is allowed (:func:`plain_data_globals`: ``argparse.Namespace``,
``pathlib`` paths, OmegaConf's ``DictConfig``/``ListConfig`` and their value nodes, the builtin
types such configs record); any other pickled object is refused in one line that keeps torch's
own detail (which global, and how torch would allow it).
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import re
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from dimcollapse.errors import UsageError
from dimcollapse.fileio import file_kind, load_torch_weights_only

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
    ``weights_only=True``, the plain data of :func:`plain_data_globals` allowed (DINO's
    ``args``, Lightning's ``hyper_parameters``).
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such weights file")
    if p.suffix.lower() == ".safetensors":
        try:
            return {"": dict(load_file(str(p)))}
        except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
            raise UsageError(f"{p}: not a readable safetensors file ({exc})") from None
    data = _load_torch(p)
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


def plain_data_globals() -> list[Any]:
    """The classes a weights file may hold beside tensors, allowed to ``torch.load``'s
    ``weights_only`` unpickler: values only, nothing that runs code of the file's choosing.

    ``argparse.Namespace``; ``pathlib`` paths (a path of the other operating system as its
    ``Pure`` form, which needs no file system); the builtin types and ``typing.Any`` that
    OmegaConf records as a node's type, ``collections.defaultdict``; OmegaConf's
    ``DictConfig``, ``ListConfig``, their metadata and value nodes, when omegaconf is installed
    (Hydra users' ``cfg``; Lightning saves ``hparams_type``).
    """
    allowed: list[Any] = [
        argparse.Namespace,
        pathlib.PurePath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        pathlib.Path,
        typing.Any,
        collections.defaultdict,
        *(dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bool),
    ]
    if os.name == "nt":
        allowed += [pathlib.WindowsPath, (pathlib.PurePosixPath, "pathlib.PosixPath")]
    else:
        allowed += [pathlib.PosixPath, (pathlib.PureWindowsPath, "pathlib.WindowsPath")]
    try:
        from omegaconf import base, dictconfig, listconfig, nodes  # optional: with lightning
    except ImportError:
        return allowed
    allowed += [dictconfig.DictConfig, listconfig.ListConfig, base.Metadata]
    allowed += [base.ContainerMetadata]
    for name in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode"):
        allowed.append(getattr(nodes, name))
    allowed += [getattr(nodes, n) for n in ("BytesNode", "PathNode") if hasattr(nodes, n)]
    return allowed


#: The part of torch's refusal that names what was not allowed.
_TORCH_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.*?)(?:\s+Please use|\n|$)")
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")


def _load_torch(path: pathlib.Path) -> Any:
    """``torch.load(path, weights_only=True)`` with :func:`plain_data_globals` allowed; a file
    that needs anything else is refused in one line with torch's detail."""
    safe = getattr(torch.serialization, "safe_globals", None)
    if file_kind(path) not in ("zip", "pickle") or safe is None:
        return load_torch_weights_only(path, "weights file")  # its one-line refusals
    try:
        with safe(plain_data_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. the pickle-protocol warning
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle and zip errors of every kind
        found = _TORCH_DETAIL.search(str(exc))
        if found is None:
            return load_torch_weights_only(path, "weights file")  # the same, named as such
        detail = found.group(1).rstrip(". ")
        name = _UNSAFE_GLOBAL.search(detail)
        allow = (
            f"; torch.serialization.safe_globals([{name.group(1)}]) would allow it, if you trust "
            "the file"
            if name
            else ""
        )
        raise UsageError(
            f"{path}: not a weights file that can be loaded safely: besides tensors and plain "
            f"data it holds a pickled object, and unpickling can run code (torch: {detail}"
            f"{allow}); save the state_dict alone"
        ) from None
