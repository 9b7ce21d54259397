"""Hugging Face models from a folder: ``--model hf:DIR``, written by ``save_pretrained``
(``config.json`` and ``model.safetensors``), loaded offline (``local_files_only``) with
``transformers.AutoModel``: the base model, so a ``...ForImageClassification`` folder loses its
classifier.

The representation ``r`` (B, D) is chosen by ``pool`` (``--pool``), by default in this order
of preference:

* ``pooler``: the model's pooled output (``pooler_output``: DINOv2's normalised CLS token,
  ResNet's global average pool, ViT's dense+tanh pooler) when the folder holds the pooler's
  weights;
* else ``cls``: the CLS token of the last hidden state (a ViT saved from
  ``ViTForImageClassification`` has no trained pooler: its classifier reads the CLS token);
* else ``mean``: the mean of the tokens (or of the positions of a spatial map). Asked for on a
  model with a CLS token, the mean is of the patch tokens: the CLS, distillation and register
  tokens in front of them are left out, as DINOv2's own classifier and timm's ``avg`` pool do.

A ``note:`` says which, and lists tensors the folder did not supply; under :data:`MIN_MATCH`
of the model's tensors the load is refused. A ``pool`` the model cannot give (``pooler``
without a pooler or without its weights, ``cls`` without a CLS token) is refused.
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

#: The representations ``--pool`` chooses from.
POOLINGS = ("pooler", "cls", "mean")
#: Parameters whose tokens precede the patch tokens in a ViT's hidden states (DeiT's
#: distillation token, DINOv2-with-registers' register tokens).
_PREFIX_TOKENS = ("cls_token", "distillation_token", "register_tokens")


class HFBackbone(nn.Module):
    """A ``transformers`` vision model as ``forward(pixel_values (B, C, S, S)) -> r (B, D)``.

    ``pooling`` is one of :data:`POOLINGS`; ``mean`` averages the tokens after the first
    ``prefix_tokens`` (the CLS and similar tokens), or a spatial map's positions."""

    def __init__(
        self, model: nn.Module, pooling: str, interpolate: bool, prefix_tokens: int = 0
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.interpolate = interpolate
        self.prefix_tokens = prefix_tokens

    def forward(self, x: Tensor) -> Tensor:
        """The representation of ``pixel_values`` ``x``: pooled output, CLS token or mean."""
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate else {}
        out = self.model(pixel_values=x, **kwargs)
        if self.pooling == "pooler":
            return out.pooler_output.flatten(1)
        hidden = out.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        if hidden.ndim == 3:
            return hidden[:, self.prefix_tokens :].mean(dim=1)
        return hidden.mean(dim=(2, 3))


def load_hf_backbone(
    folder: str, pool: str | None = None
) -> tuple[HFBackbone, dict[str, Any], list[str]]:
    """The model saved in ``folder``, its input facts (``image_size``, ``mean``, ``std``,
    ``in_channels``) and the notes to print. ``pool`` (one of :data:`POOLINGS`) chooses the
    representation; None: the pooled output, else the CLS token, else the mean."""
    if pool is not None and pool not in POOLINGS:
        raise UsageError(f"--pool {pool!r}: expected one of {', '.join(POOLINGS)}")
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
    pooling, why = _choose_pooling(backbone, facts, pooler_absent, pool)
    backbone.pooling = pooling
    if pool == "mean":
        backbone.prefix_tokens = _prefix_tokens(model)
    also = "" if pool else "; --pool cls, mean or pooler chooses another"
    notes.append(f"{type(model).__name__}, representation: {why}{also}")
    others = sorted(k for k in absent if not k.startswith("pooler.") or pooling == "pooler")
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
    from transformers.utils import logging as hf_logging  # optional: dimcollapse[hf]

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
        import transformers  # optional: dimcollapse[hf]
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


def _prefix_tokens(model: nn.Module) -> int:
    """How many tokens (CLS, distillation, registers) precede the patch tokens."""
    count = 0
    for name, param in model.named_parameters():
        if name.rpartition(".")[2] in _PREFIX_TOKENS:
            count += int(param.shape[1]) if param.ndim == 3 else 1
    return count


def _choose_pooling(
    backbone: HFBackbone, facts: dict[str, Any], pooler_absent: bool, pool: str | None = None
) -> tuple[str, str]:
    """``(pooling, why)``, from one forward pass of a blank image: ``pool`` when the model can
    give it (refused otherwise), else the pooled output, the CLS token or the mean."""
    side, model = facts["image_size"], backbone.model
    name = type(model).__name__
    kwargs = {"interpolate_pos_encoding": True} if backbone.interpolate else {}
    with torch.no_grad():
        out = model(pixel_values=torch.zeros(1, facts["in_channels"], side, side), **kwargs)
    pooled = getattr(out, "pooler_output", None)
    hidden = getattr(out, "last_hidden_state", None)
    has_cls = any(n.rpartition(".")[2] == "cls_token" for n, _ in model.named_parameters())
    tokens = hidden is not None and hidden.ndim == 3
    if pool == "pooler":
        if pooled is None:
            raise UsageError(
                f"--pool pooler: {name} has no pooler (no pooler_output); use cls or mean"
            )
        if pooler_absent:
            raise UsageError(
                f"--pool pooler: the folder holds no weights for {name}'s pooler (it would run "
                "at initialisation); use cls or mean"
            )
        return "pooler", "its pooled output (pooler_output; --pool pooler)"
    if pool is not None and hidden is None:
        raise UsageError(f"--pool {pool}: {name} gives no hidden states; use pooler")
    if pool == "cls":
        if not (has_cls and tokens):
            raise UsageError(f"--pool cls: {name} has no CLS token; use mean or pooler")
        return "cls", "the CLS token of the last hidden state (--pool cls)"
    if pool == "mean":
        what = "patch tokens" if has_cls and tokens else "tokens" if tokens else "positions"
        return "mean", f"the mean of the last hidden state's {what} (--pool mean)"
    if pooled is not None and not pooler_absent:
        return "pooler", "its pooled output (pooler_output)"
    if hidden is None:
        raise UsageError(f"{name}: gives neither pooled output nor hidden states")
    lead = "the pooler's weights are not in the folder: " if pooled is not None else ""
    if has_cls and tokens:
        return "cls", lead + "the CLS token of the last hidden state"
    return "mean", lead + "the mean of the last hidden state's tokens"
