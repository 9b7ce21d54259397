"""Distributed helpers that do nothing in a single process.

Every function here is safe to call without ``torch.distributed`` being initialised (or even
available): it then behaves as the one and only process of a world of size 1. That keeps the
losses and the training loop testable on a CPU, and lets the same script run under ``torchrun``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
import warnings
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a process group is initialised (we run under ``torchrun`` or similar)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank of this process; 0 in a single process."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes; 1 in a single process."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes files and logs (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process; a no-op in a single process."""
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` over all processes, in place, and return it (unchanged in a single process).

    No gradient flows through this: use it for metrics and counters, not for losses.
    """
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_gather_with_grad(t: Tensor) -> Tensor:
    """Concatenate ``t`` from every process along dim 0, keeping the autograd graph.

    Shapes: ``(B, ...)`` on each of ``W`` processes -> ``(W * B, ...)``, ordered by rank, so this
    process's rows are ``[rank * B, (rank + 1) * B)``. Every process must pass the same shape.

    The backward pass (``torch.distributed.nn.functional.all_gather``) sums, for the local slice,
    the gradients that every process computed with respect to it. With a loss averaged over the
    local anchors and DDP averaging parameter gradients over processes, the result is the gradient
    of the global-batch mean. In a single process ``t`` is returned unchanged.

    ``torch.distributed.nn.functional.all_gather`` cannot be traced by ``torch.compile``: keep the
    loss outside compiled regions.
    """
    if not is_distributed():
        return t
    from torch.distributed.nn.functional import all_gather  # optional: a distributed build

    with warnings.catch_warnings():
        # Recent torch marks it deprecated in favour of the private ``_functional_collectives``,
        # which torch 2.4 does not offer in the same form; the public function still works.
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(t)
    return torch.cat(parts, dim=0)


def all_reduce_with_grad(t: Tensor) -> Tensor:
    """Sum ``t`` over all processes, keeping the autograd graph; ``t`` itself in one process.

    Shapes are kept: ``(...)`` on each of ``W`` processes -> the same ``(...)``, the sum. The
    backward pass (``torch.distributed.nn.functional.all_reduce``) sums the gradients that every
    process computed with respect to the result, so when every process computes the same loss
    from the sum, each receives ``W`` times that loss's gradient for its own term, and DDP's
    averaging over ``W`` processes gives the gradient of the loss (Barlow Twins' cross-correlation
    and its batch statistics are summed this way).
    """
    if not is_distributed():
        return t
    from torch.distributed.nn.functional import all_reduce  # optional: a distributed build

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(t)


def env_ranks() -> tuple[int, int, int] | None:
    """``(rank, local_rank, world_size)`` from the environment ``torchrun`` sets (``RANK``,
    ``LOCAL_RANK``, else the rank, and ``WORLD_SIZE``); ``None`` unless ``RANK`` and
    ``WORLD_SIZE`` are both set."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    rank = int(os.environ["RANK"])
    return rank, int(os.environ.get("LOCAL_RANK", rank)), int(os.environ["WORLD_SIZE"])


def setup_from_env(device_type: str) -> tuple[int, int, int]:
    """Join the process group described by the environment, as ``torchrun`` sets it.

    When ``RANK`` and ``WORLD_SIZE`` are set, initialise the default process group (``nccl`` for
    ``device_type == "cuda"``, ``gloo`` otherwise, rendezvous via ``MASTER_ADDR``/``MASTER_PORT``)
    and, on CUDA, select the GPU ``LOCAL_RANK`` for this process. Otherwise do nothing.

    Returns ``(rank, local_rank, world_size)``; ``(0, 0, 1)`` without those variables.
    """
    ranks = env_ranks()
    if ranks is None:
        return 0, 0, 1
    global_rank, local_rank, size = ranks
    if not is_distributed():
        if device_type == "cuda":
            # Pick the device before NCCL initialises, so each process owns one GPU.
            torch.cuda.set_device(local_rank)
            backend = "nccl"
        else:
            backend = "gloo"
        dist.init_process_group(
            backend=backend, init_method="env://", rank=global_rank, world_size=size
        )
    return global_rank, local_rank, size


TEARDOWN_TIMEOUT_S = 60.0
"""How long :func:`cleanup` waits for the other processes to finish destroying the group."""


def cleanup(*, failed: bool = False) -> None:
    """Destroy the process group if one was initialised; a no-op otherwise.

    ``failed=True`` (this process is leaving on an error; its peers may never arrive): destroy
    at once. Otherwise every process waits for the others (a barrier), destroys its group,
    reports through the rendezvous store that it has, and leaves only when all have; rank 0,
    which hosts the store, leaves last (each wait gives up after ``TEARDOWN_TIMEOUT_S``).

    Why: with a bare ``destroy_process_group`` a two-process Gloo run aborted at teardown
    (SIGABRT, "terminate called without an active exception") in 2 of about 250 runs on a
    loaded 2-core machine, once in CI, after all its work was done; ``torchrun`` reports that as
    a failed job. A process leaving while its peer still closes its connections is the likely
    cause; the handshake rules it out.

    The handshake did not rule out a second cause: an autograd graph through
    :func:`all_gather_with_grad` or :func:`all_reduce_with_grad` that is still alive holds the
    group, which then outlives ``destroy_process_group`` and is torn down with the interpreter.
    A two-process test that kept its last loss alive aborted so at exit in 8 of 407 runs, and in
    0 of 300 once it let the loss go first. So let every such loss go before calling this; the
    ``gc.collect()`` here frees what only a reference cycle still keeps (a finished training
    session, its DDP model).
    """
    if not is_distributed():
        return
    gc.collect()
    if failed:
        dist.destroy_process_group()
        return
    store = dist.distributed_c10d._get_default_store()
    size, me = world_size(), rank()
    dist.barrier()
    dist.destroy_process_group()
    try:
        store.add("dimcollapse/destroyed", 1)
        _wait_for_count(store, "dimcollapse/destroyed", size)
        if me != 0:
            store.add("dimcollapse/leaving", 1)
        else:
            _wait_for_count(store, "dimcollapse/leaving", size - 1)
    except (RuntimeError, OSError):  # a peer already gone: nothing left to protect
        pass


@contextlib.contextmanager
def left_on_exit() -> Iterator[None]:
    """Run the body, then :func:`cleanup`: the teardown handshake when it finished, at once
    (``failed=True``) when it raised, so a failing rank never waits for peers."""
    try:
        yield
    except BaseException:
        cleanup(failed=True)
        raise
    cleanup()


def _wait_for_count(store: dist.Store, key: str, target: int) -> None:
    """Poll ``store`` until the counter ``key`` reaches ``target`` or the teardown times out."""
    deadline = time.monotonic() + TEARDOWN_TIMEOUT_S
    while store.add(key, 0) < target and time.monotonic() < deadline:
        time.sleep(0.005)
