"""Run a worker script as the ranks of a local gloo world, as torchrun would start them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(worker: str, tmp_path: Path, *args: Any, world: int = 2) -> list[Any]:
    """Run ``python -c worker OUT *args`` as ranks 0..world-1 (RANK, WORLD_SIZE, MASTER_* set,
    this checkout's ``src`` and ``tests`` first on PYTHONPATH, so a worker can import
    :func:`loss_and_grads`); each rank saves its result with
    ``torch.save`` to OUT (its first argument). Returns the results in rank order; a rank that
    fails fails the test with its stderr."""
    port, procs = free_port(), []
    for rank in range(world):
        env = dict(os.environ)
        env.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")]),
        )
        cmd = [sys.executable, "-c", worker, str(tmp_path / f"rank{rank}.pt"), *map(str, args)]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]


def loss_and_grads(
    loss_fn: Any, z1: torch.Tensor, z2: torch.Tensor, rows: slice, **options: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """In a worker: ``loss_fn`` on this rank's ``rows`` of both views, then backward; returns
    the detached loss and the two views' gradients.

    A function, so that the autograd graph is gone when it returns: the graph through the
    gathers holds the process group, and a worker that kept its last loss alive (at module
    level) outlived ``destroy_process_group`` with it and aborted at exit ("terminate called
    without an active exception") in 8 of 407 two-process runs on 2 busy cores, 0 of 300 once
    the graph was dropped before :func:`dimcollapse.distributed.cleanup`."""
    a = z1[rows].clone().requires_grad_(True)
    b = z2[rows].clone().requires_grad_(True)
    loss = loss_fn(a, b, **options)
    loss.backward()
    return loss.detach(), a.grad, b.grad
