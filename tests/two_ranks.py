"""Run a worker script as the ranks of a local gloo world, as torchrun would start them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ranks(worker: str, tmp_path: Path, *args: Any, world: int = 2) -> list[Any]:
    """Run ``python -c worker OUT *args`` as ranks 0..world-1 (RANK, WORLD_SIZE, MASTER_* set,
    this checkout's ``src`` first on PYTHONPATH); each rank saves its result with
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
            PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]),
        )
        cmd = [sys.executable, "-c", worker, str(tmp_path / f"rank{rank}.pt"), *map(str, args)]
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]
