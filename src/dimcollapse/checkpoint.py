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

import os
from pathlib import Path
from typing import Any

import torch

from dimcollapse.errors import UsageError
from dimcollapse.fileio import atomic_path, load_torch_weights_only

FORMAT = "dimcollapse-checkpoint"
FORMAT_VERSION = 1


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
            import errno

            raise OSError(errno.ENOSPC, "could not write the checkpoint", str(path)) from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check a checkpoint (``weights_only=True``); one-line errors for anything else."""
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
        for name in ("final.pt", "last.pt"):
            candidate = p / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise UsageError(f"{p}: holds no checkpoints/final.pt or checkpoints/last.pt")
    if not p.exists():
        raise UsageError(f"{p}: no such run directory or checkpoint")
    return p


def load_model(run_or_checkpoint: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Rebuild the trained :class:`~dimcollapse.model.ContrastiveModel` (eval mode) and its checkpoint."""
    from dimcollapse.model import ModelSpec, build_model

    ckpt = load_checkpoint(find_checkpoint(run_or_checkpoint))
    model = build_model(ModelSpec(**ckpt["model_spec"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt
