"""A training run in its process: :func:`train` joins (or finds) the process group, removes what
a failed first attempt created (a run with a checkpoint stays resumable) and runs the
:class:`~dimcollapse.train.session.Session`, holding the run folder's lock
(:func:`~dimcollapse.outlock.folder_lock`: one run per folder) all along."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from dimcollapse import distributed as dist
from dimcollapse.config import TrainConfig
from dimcollapse.fileio import removed_on_failure
from dimcollapse.outlock import folder_lock
from dimcollapse.rundir import RunLayout
from dimcollapse.train.session import RunResult, Session


def train(
    cfg: TrainConfig,
    *,
    verbose: bool = True,
    stop_after: int | None = None,
    saved: Mapping[str, Any] | None = None,
) -> RunResult:
    """Pretrain as ``cfg`` says and return the run's metrics; see :mod:`dimcollapse.train`.

    ``stop_after``: leave after this many epochs of this call (checkpointed, resumable with
    ``cfg.resume``), e.g. to fit a run into a time-limited job slot. ``saved``: the run's saved
    settings when the caller has read them (:func:`dimcollapse.config.layered_config`), so a
    resume does not read its config.yaml again; None: read there.
    """
    cfg.validate()
    joined = not dist.is_distributed()  # a caller's process group is left as it was
    rank, local_rank, world = dist.setup_from_env(
        "cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu"
    )
    layout = RunLayout(cfg.out)
    with (
        dist.left_on_exit() if joined else contextlib.nullcontext(),
        # one run per folder: a second writer is refused before it writes anything
        folder_lock(cfg.out) if rank == 0 else contextlib.nullcontext() as lock,
        # a failure removes what this invocation created, unless a checkpoint makes it resumable
        removed_on_failure(
            cfg.out,
            keep=lambda: layout.latest_checkpoint() is not None,
            created=lock.created,
        )
        if lock is not None
        else contextlib.nullcontext(),
    ):
        return _run_session(cfg, rank, local_rank, world, verbose, stop_after, saved)


def _run_session(
    cfg: TrainConfig,
    rank: int,
    local_rank: int,
    world: int,
    verbose: bool,
    stop: int | None,
    saved: Mapping[str, Any] | None,
) -> RunResult:
    """Build the session and run it; its TensorBoard writer is closed whatever happens."""
    session = Session(cfg, rank, local_rank, world, verbose, saved)
    try:
        return session.run(stop)
    except BaseException:
        if session.writer is not None:
            session.writer.close()
        raise
