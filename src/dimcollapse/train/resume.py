"""Starting, restarting and resuming in a run directory: what may change on a resume, and
what is refused (by name, before anything is written)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import Any

from dimcollapse.checkpoint import Checkpoint
from dimcollapse.config import TrainConfig
from dimcollapse.errors import UsageError
from dimcollapse.fileio import check_output_dir, plain_data, remove_orphan_temps
from dimcollapse.rundir import RunLayout

#: Config fields a resume may change (applied and recorded in config.yaml); every other field
#: must match the run's (optimiser, learning rate, batch size, augmentation, method, ...).
RESUME_MAY_CHANGE = (
    "epochs",
    "log_every",
    "checkpoint_every",
    "max_bad_steps",
    "workers",
    "device",
    "data_root",
    "download",
    "out",
    "resume",
)


def prepare_out_dir(cfg: TrainConfig, saved: Mapping[str, Any] | None = None) -> Checkpoint | None:
    """Refuse to overwrite another run; return the checkpoint to resume from, if any.

    A run directory with no checkpoint yet (stopped before its first save: killed in epoch 1,
    a NaN, a full disk) is not a dead end: ``--resume`` starts it again from its first step,
    in place. Temporary files that a kill during an atomic write left behind are removed.
    ``saved``: the run's saved settings if the caller read them (None: read here).
    """
    layout = RunLayout(cfg.out)
    out = layout.root
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file, not a run directory; choose another --out")
    check_output_dir(out)
    for folder in (out, layout.checkpoints):
        remove_orphan_temps(folder)
    if cfg.resume:
        return _resume_from(layout, cfg, saved)
    if out.exists() and any(out.iterdir()):
        if layout.without_checkpoint():
            raise UsageError(
                f"{out}: holds a run that stopped before its first checkpoint; --resume starts "
                "it again in place, or choose a new --out"
            )
        raise UsageError(f"{out}: already holds another run; choose a new --out, or --resume it")
    return None


def _resume_from(
    layout: RunLayout, cfg: TrainConfig, saved: Mapping[str, Any] | None
) -> Checkpoint | None:
    if not layout.last.is_file():
        if layout.without_checkpoint():
            print(
                f"note: {layout.root}: no checkpoint yet (the run stopped before its first "
                "save); starting it again from its first step",
                file=sys.stderr,
            )
            layout.clear()
            return None
        raise UsageError(
            f"{layout.root}: nothing to resume (no run there); start it without --resume"
        )
    ckpt = Checkpoint.load(layout.last)
    if ckpt.kind != "pretrain":
        raise UsageError(f"{layout.last}: not a pretraining checkpoint")
    # the checkpoint's settings and model_spec are held to the rules config.yaml is held to:
    # an unknown key or a value of the wrong type is refused, never ignored or rewritten
    TrainConfig.check_settings(ckpt.config, f"{layout.last} (its config)")
    ckpt.spec()
    check_resume_settings(layout, ckpt.config, cfg, saved)
    return ckpt


def check_resumed_spec(ckpt: Checkpoint, built: Any, path: str) -> None:
    """Refuse a resume whose checkpoint's ``model_spec`` is not the model the run's settings
    build (``built``, a :class:`~dimcollapse.model.ModelSpec`): an edited checkpoint, or one of
    another run, whose spec would otherwise be silently rewritten from the settings."""
    recorded = dataclasses.asdict(ckpt.spec())
    for key, value in dataclasses.asdict(built).items():
        if plain_data(recorded.get(key)) != plain_data(value):
            raise UsageError(
                f"{path}: its model_spec has {key}={recorded.get(key)!r}, but the run's settings "
                f"build {key}={value!r}: the checkpoint was edited or comes from another run; "
                "resume a run's own checkpoint, or start a new run"
            )


def check_resume_settings(
    layout: RunLayout,
    saved: dict[str, Any],
    cfg: TrainConfig,
    recorded: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a resume that changes anything but :data:`RESUME_MAY_CHANGE`, naming the setting,
    before any file is written. ``saved``: the checkpoint's config; settings an older
    checkpoint lacks count as their defaults. The augmentation is compared with the resolved
    recipe the run recorded in its config.yaml (``recorded``, its ``config`` mapping, when the
    caller has read it already)."""
    out = layout.root
    defaults = TrainConfig(out=str(out)).to_dict()
    for key, value in cfg.to_dict().items():
        if key in RESUME_MAY_CHANGE or key == "augment":
            continue
        before = saved.get(key, defaults.get(key))
        if plain_data(before) != plain_data(value):
            raise UsageError(
                f"{out}: cannot resume with {key}={value!r}: the run has {key}={before!r} "
                f"(a resume may change only {', '.join(RESUME_MAY_CHANGE[:3])}, ...)"
            )
    if recorded is None:
        recorded = layout.recorded_config()
    recipe = {**(saved.get("augment") or {}), **(recorded.get("augment") or {})}
    for key, value in (cfg.augment or {}).items():
        if key in recipe and plain_data(recipe[key]) != plain_data(value):
            raise UsageError(
                f"{out}: cannot resume with augmentation {key}={value!r}: the run has "
                f"{recipe[key]!r}"
            )
