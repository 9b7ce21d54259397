"""The one checkpoint format of dimcollapse, for every command; atomic writes; resume.

A checkpoint is a dict saved with ``torch.save`` and loaded with ``weights_only=True``:

=================  ============================================================================
``format``         ``"dimcollapse-checkpoint"``
``version``        :data:`FORMAT_VERSION`
``model_spec``     :class:`dimcollapse.model.ModelSpec` as a dict (rebuilds the model)
``model``          the ContrastiveModel state dict (backbone, head incl. fixed projection, probe)
``optimizer``      optimiser state; ``scheduler``, ``scaler`` likewise (None when unused)
``epoch``          completed epochs; ``step``: optimiser steps taken
``step_in_epoch``  steps of epoch ``epoch + 1`` already taken (0 at an epoch's end)
``partial_epoch``  that epoch's loss sums so far (``train.EpochTally``), or None
``bad_steps``      non-finite steps skipped so far (``--max-bad-steps``)
``rng``            global RNG states (:func:`dimcollapse.runtime.rng_state`)
``config``         the resolved TrainConfig as a dict; ``data``: dataset facts (mean, std, ...)
``metrics``        the last epoch's metrics line
=================  ============================================================================

Written to a temporary file then ``os.replace``d, so a crash never leaves a torn checkpoint.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from dimcollapse.errors import UsageError
from dimcollapse.fileio import atomic_path, load_torch_weights_only
from dimcollapse.rundir import RunLayout

FORMAT = "dimcollapse-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A pretraining checkpoint: the fields of the table above, typed.

    ``model_spec``, ``config`` and ``data`` stay plain dicts in the file (``weights_only``
    loading admits nothing else); :meth:`spec` and :meth:`train_config` rebuild the objects.
    Checkpoints written before the mid-epoch fields existed load with their defaults.
    """

    model_spec: dict[str, Any]
    model: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    step: int = 0
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    step_in_epoch: int = 0
    partial_epoch: dict[str, Any] | None = None
    bad_steps: int = 0
    kind: str = "pretrain"
    #: Where it was read from, for messages (not a field: never saved).
    source: ClassVar[str] = "the checkpoint"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically to ``path`` (see :func:`save_checkpoint`)."""
        # not dataclasses.asdict: it would deep-copy every tensor of the state dicts
        save_checkpoint(path, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str | os.PathLike[str]) -> Checkpoint:
        """The checkpoint in a loaded file's dict; a UsageError when it lacks the model."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ("model_spec", "model") if k not in payload]
        if missing:
            raise UsageError(f"{path}: a dimcollapse checkpoint without {', '.join(missing)}")
        values = {k: v for k, v in payload.items() if k in names and v is not None}
        for key in ("config", "data", "metrics"):  # older files may hold None here
            values.setdefault(key, {})
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read and check a checkpoint file (``weights_only``); one-line errors otherwise."""
        ckpt = cls.from_payload(_load_payload(path), path)
        ckpt.source = str(path)
        return ckpt

    @property
    def online_probe_top1(self) -> float | None:
        """The online probe's accuracy at the last epoch's end, if measured."""
        value = self.metrics.get("online_probe_top1")
        return None if value is None else float(value)

    def spec(self) -> Any:
        """The :class:`~dimcollapse.model.ModelSpec` that rebuilds the model; a UsageError for a
        ``model_spec`` with a field it does not know or without one it needs."""
        # torchvision-free spectrum FILE: torchvision 1240 ms
        from dimcollapse.model import ModelSpec

        spec = self.model_spec
        if not isinstance(spec, dict):
            raise UsageError(f"{self.source}: model_spec is a {type(spec).__name__}, not a mapping")
        known = {f.name: f for f in dataclasses.fields(ModelSpec)}
        unknown = sorted(str(k) for k in spec if k not in known)
        if unknown:
            raise UsageError(
                f"{self.source}: model_spec has unknown field(s) {', '.join(unknown)} (edited, "
                f"or written by another dimcollapse version); it knows {', '.join(known)}"
            )
        needed = [n for n, f in known.items() if _required(f) and n not in spec]
        if needed:
            raise UsageError(f"{self.source}: model_spec lacks {', '.join(needed)}")
        return ModelSpec(**spec)

    def build_model(self) -> Any:
        """The trained :class:`~dimcollapse.model.ContrastiveModel`, in eval mode; its tensors
        checked against the file's before loading (:func:`load_model_state`)."""
        # torchvision-free spectrum FILE: torchvision 1240 ms
        from dimcollapse.model import build_model

        try:
            model = build_model(self.spec())
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"{self.source}: its model_spec builds no model ({exc})") from None
        load_model_state(model, self.model, self.source)
        model.eval()
        return model


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def load_model_state(model: torch.nn.Module, state: Any, source: str = "the checkpoint") -> None:
    """``model.load_state_dict(state)`` behind one gate: every tensor's name and shape is checked
    first, so that edited weights, or weights of another width or backbone, are one UsageError
    naming the tensor and both shapes (never torch's multi-line ``size mismatch`` report)."""
    if not isinstance(state, dict):
        raise UsageError(f"{source}: its model weights are a {type(state).__name__}, not a dict")
    expected = model.state_dict()
    for name, want in expected.items():
        have = state.get(name)
        if have is None:
            raise UsageError(
                f"{source}: the weights lack {name} (of {len(expected)} tensors the model has); "
                "the file was edited, or its model_spec describes another model"
            )
        if not isinstance(have, torch.Tensor):
            raise UsageError(f"{source}: {name} is a {type(have).__name__}, not a tensor")
        if tuple(have.shape) != tuple(want.shape):
            raise UsageError(
                f"{source}: tensor {name} has shape {tuple(have.shape)}, but the model its "
                f"model_spec describes needs {tuple(want.shape)}: the weights were edited, or "
                "come from another width or backbone than the model_spec says"
            )
    extra = sorted(k for k in state if k not in expected)
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise UsageError(
            f"{source}: the weights hold tensors the model does not have ({', '.join(extra[:3])}"
            f"{more}); its model_spec describes another model"
        )
    model.load_state_dict(state)


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format and version) to ``path`` atomically."""
    data = {"format": FORMAT, "version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp:
        try:
            torch.save(data, tmp)
        except RuntimeError as exc:  # torch's zip writer on a full disk: "unexpected pos ..."
            text = str(exc)
            if "unexpected pos" not in text and "write failed" not in text:
                raise
            raise OSError(errno.ENOSPC, "could not write the checkpoint", str(path)) from None


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Load and check a checkpoint (``weights_only=True``); one-line errors for anything else."""
    return Checkpoint.load(path)


def _load_payload(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked dict of a checkpoint file."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such checkpoint")
    data = load_torch_weights_only(p, "dimcollapse checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{p}: not a dimcollapse checkpoint (another format)")
    if data.get("version") != FORMAT_VERSION:
        raise UsageError(
            f"{p}: checkpoint format version {data.get('version')} is not supported "
            f"(this dimcollapse reads version {FORMAT_VERSION})"
        )
    return data


def find_checkpoint(run_or_checkpoint: str | os.PathLike[str]) -> Path:
    """A checkpoint file, or a run directory -> its ``checkpoints/final.pt`` else ``last.pt``."""
    p = Path(run_or_checkpoint)
    if p.is_dir():
        found = RunLayout(p).latest_checkpoint()
        if found is None:
            raise UsageError(f"{p}: holds no checkpoints/final.pt or checkpoints/last.pt")
        return found
    if not p.exists():
        raise UsageError(f"{p}: no such run directory or checkpoint")
    return p


def load_model(run_or_checkpoint: str | os.PathLike[str]) -> tuple[Any, Checkpoint]:
    """Rebuild the trained :class:`~dimcollapse.model.ContrastiveModel` (eval mode) of a run
    directory or checkpoint file, with its :class:`Checkpoint`."""
    ckpt = load_checkpoint(find_checkpoint(run_or_checkpoint))
    return ckpt.build_model(), ckpt
