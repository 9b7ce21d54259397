"""Hugging Face models from a folder: ``--model hf:DIR``, written by ``save_pretrained``
(``config.json`` and ``model.safetensors``), loaded offline (``local_files_only``) with
``transformers.AutoModel``: the base model, so a ``...ForImageClassification`` folder loses its
classifier.

The representation ``r`` (B, D) is, in this order of preference:

* the model's pooled output (``pooler_output``: DINOv2's normalised CLS token, ResNet's
  global average pool, ViT's dense+tanh pooler) when the folder holds the pooler's weights;
* else the CLS token of the last hidden state (a ViT saved from ``ViTForImageClassification``
  has no trained pooler: its classifier reads the CLS token);
* else the mean of the tokens (or of the positions of a spatial map).

A ``note:`` says which, and lists tensors the folder did not supply; under :data:`MIN_MATCH`
of the model's tensors the load is refused.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dimcollapse.errors import UsageError
from dimcollapse.foreign.architectures import IMAGENET_MEAN, IMAGENET_STD
from dimcollapse.foreign.matching import MIN_MATCH

POOLINGS = ("pooled", "cls", "mean")


class HFBackbone(nn.Module):
    """A ``transformers`` vision model as ``forward(pixel_values (B, C, S, S)) -> r (B, D)``."""

    def __init__(self, model: nn.Module, pooling: str, interpolate: bool) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.interpolate = interpolate

    def forward(self, x: Tensor) -> Tensor:
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate else {}
        out = self.model(pixel_values=x, **kwargs)
        if self.pooling == "pooled":
            return out.pooler_output.flatten(1)
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))


def load_hf_backbone(folder: str) -> tuple[HFBackbone, dict[str, Any], list[str]]:
    """The model saved in ``folder``, its input facts (``image_size``, ``mean``, ``std``,
    ``in_channels``) and the notes to print."""
    path = Path(folder)
    if not path.is_dir():
        raise UsageError(f"--model hf:{folder}: no such folder")
    if not (path / "config.json").is_file():
        raise UsageError(
            f"--model hf:{folder}: not a save_pretrained folder (no config.json in it)"
        )
    model, info = _from_pretrained(path)
    facts = _input_facts(path, model.config)
    state = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    known = set(state)
    missing = sorted(k for k in info.get("missing_keys", ()) if k in known)
    mismatched = [str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ())]
    absent = set(missing) | set(mismatched)
    if len(state) - len(absent) < MIN_MATCH * len(state):
        raise UsageError(
            f"--model hf:{folder}: only {len(state) - len(absent)} of {len(state)} tensors of "
            f"{type(model).__name__} are in the folder: is it another kind of model?"
        )
    notes = []
    interpolate = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
    backbone = HFBackbone(model, "mean", interpolate)
    pooler_absent = any(k.startswith("pooler.") for k in absent)
    pooling, why = _choose_pooling(backbone, facts, pooler_absent)
    backbone.pooling = pooling
    notes.append(f"{type(model).__name__}, representation: {why}")
    others = sorted(k for k in absent if not k.startswith("pooler.") or pooling == "pooled")
    if others:
        notes.append(
            f"{len(others)} model tensor(s) not in the folder, left at initialisation: "
            + ", ".join(others[:4])
            + (" ..." if len(others) > 4 else "")
        )
    return backbone, facts, notes


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' load report and progress bars off (restored after): our notes say it."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _from_pretrained(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    try:
        import transformers
    except ImportError:
        raise UsageError(
            "--model hf:...: transformers is not installed; pip install 'dimcollapse[hf]'"
        ) from None
    try:
        with _quiet_transformers():
            model, info = transformers.AutoModel.from_pretrained(
                str(path), local_files_only=True, output_loading_info=True
            )
    except Exception as exc:  # noqa: BLE001 - config, weights and hub errors of every kind
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"--model hf:{path}: cannot load it with transformers ({first})") from None
    return model.float().eval(), info


def _input_facts(path: Path, config: Any) -> dict[str, Any]:
    """Input size and statistics: ``preprocessor_config.json`` if saved, else the config's
    ``image_size`` (224 without one) and ImageNet's mean and std."""
    size = getattr(config, "image_size", None) or 224
    size = size[-1] if isinstance(size, (list, tuple)) else size
    facts: dict[str, Any] = {
        "image_size": int(size),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "in_channels": int(getattr(config, "num_channels", 3) or 3),
    }
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        try:
            cfg = json.loads(pre.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{pre}: not readable JSON ({exc})") from None
        facts["mean"] = tuple(float(v) for v in cfg.get("image_mean", facts["mean"]))
        facts["std"] = tuple(float(v) for v in cfg.get("image_std", facts["std"]))
        crop = cfg.get("crop_size") if cfg.get("do_center_crop") else None
        side = _side(crop) or _side(cfg.get("size"))
        if side:
            facts["image_size"] = side
    return facts


def _side(size: Any) -> int | None:
    if isinstance(size, int):
        return size
    if isinstance(size, dict):
        value = size.get("height") or size.get("shortest_edge")
        return int(value) if value else None
    return None


def _choose_pooling(
    backbone: HFBackbone, facts: dict[str, Any], pooler_absent: bool
) -> tuple[str, str]:
    """``(pooling, why)``, from one forward pass of a blank image."""
    side, model = facts["image_size"], backbone.model
    kwargs = {"interpolate_pos_encoding": True} if backbone.interpolate else {}
    with torch.no_grad():
        out = model(pixel_values=torch.zeros(1, facts["in_channels"], side, side), **kwargs)
    pooled = getattr(out, "pooler_output", None)
    hidden = getattr(out, "last_hidden_state", None)
    has_cls = any("cls_token" in name for name, _ in model.named_parameters())
    if pooled is not None and not pooler_absent:
        return "pooled", "its pooled output (pooler_output)"
    if hidden is None:
        raise UsageError(f"{type(model).__name__}: gives neither pooled output nor hidden states")
    lead = "the pooler's weights are not in the folder: " if pooled is not None else ""
    if has_cls and hidden.ndim == 3:
        return "cls", lead + "the CLS token of the last hidden state"
    return "mean", lead + "the mean of the last hidden state's tokens"
