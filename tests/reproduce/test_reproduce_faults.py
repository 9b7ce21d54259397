"""Fault injection for ``reproduce``: a SIGTERM to the whole process group (what a scheduler
sends) and a SIGKILL, each at a random moment of a tiny reproduction with two worker
processes; each SIGTERM ends with exit status 143 and one ``error:`` line saying how to
continue, never a traceback; the same command run again then finishes with the numbers of
an uninterrupted reproduction in ``reproduce.json`` (paths and times aside)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tiny_runs import TINY_REPRODUCE_ARGS

#: The tiny reproduction with one seed and two worker processes (the pool is what is tested).
ARGS = [*TINY_REPRODUCE_ARGS]
ARGS[ARGS.index("--seeds") + 1] = "1"
ARGS[ARGS.index("--jobs") + 1] = "2"
ARGS.remove("--quiet")

#: Keys whose values are times, places or bookkeeping of this invocation, not results.
NOT_NUMBERS = ("seconds", "_s", "wall", "images_per_s", "reused", "run_dir", "path", "file")


def _start(out: Path) -> subprocess.Popen:
    """``dimcollapse reproduce`` in its own process group, as a scheduler runs a job."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "dimcollapse", "reproduce", "--out", str(out), *ARGS]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _interrupt(out: Path, sig: int, rng: random.Random) -> tuple[int | None, str]:
    """Start the reproduction, wait for its first line (its handlers are installed by then),
    send ``sig`` to its process group at a random moment; return (exit status or None if it
    finished first, stderr)."""
    proc = _start(out)
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(rng.uniform(0.0, 8.0))
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _numbers(manifest: dict[str, Any]) -> Any:
    """The results of ``reproduce.json``: no times, paths, machine or command line."""

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {
                k: strip(v) for k, v in obj.items() if not any(word in k for word in NOT_NUMBERS)
            }
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    kept = {k: v for k, v in manifest.items() if k in ("settings", "runs", "baselines", "toys")}
    return strip(kept)


@pytest.mark.slow
def test_reproduce_stopped_at_random_moments_continues_to_the_same_numbers(tmp_path):
    rng = random.Random(int(os.environ.get("FAULT_SEED", time.time_ns() % 10_000)))
    out = tmp_path / "interrupted"

    code, err = _interrupt(out, signal.SIGTERM, rng)
    if code is not None and code != 0:  # it may have finished before the signal
        assert code == 143, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert "Traceback" not in err, err
        assert lines and lines[-1].startswith("error: terminated (SIGTERM)"), err
        assert "run the same command again" in lines[-1], err
        assert sum(ln.startswith("error:") for ln in lines) == 1, err

    code, err = _interrupt(out, signal.SIGKILL, rng)
    assert code in (0, -signal.SIGKILL), err

    finished = _start(out)
    _, err = finished.communicate(timeout=300)
    assert finished.returncode == 0, err
    assert "Traceback" not in err, err

    reference = tmp_path / "reference"
    clean = _start(reference)
    _, err = clean.communicate(timeout=300)
    assert clean.returncode == 0, err

    got = json.loads((out / "reproduce.json").read_text())
    want = json.loads((reference / "reproduce.json").read_text())
    assert got["status"] == want["status"] == "complete"
    assert _numbers(got) == _numbers(want)
