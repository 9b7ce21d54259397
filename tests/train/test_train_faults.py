"""Fault injection: training stopped at any step (SIGTERM, Ctrl-C, SIGKILL at random moments,
SIGKILL inside a checkpoint write or just after its rename) resumes to the same weights, bit for
bit, as an uninterrupted run, with every epoch's metrics line written once; a non-finite loss or
gradient stops the run cleanly or, with --max-bad-steps, is skipped."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dimcollapse import checkpoint as checkpoint_module
from dimcollapse import losses
from dimcollapse.checkpoint import load_checkpoint
from dimcollapse.config import TrainConfig
from dimcollapse.errors import Interrupted, Terminated, UsageError
from dimcollapse.train import Stepper, train
from dimcollapse.train import session as session_module

#: 5 steps per epoch, 3 epochs: small enough to run a dozen times.
TINY = dict(
    dataset="digits",
    epochs=3,
    batch_size=64,
    width=0.125,
    workers=0,
    monitor_samples=64,
    subset=320,
    deterministic=True,
)
STEPS_PER_EPOCH = 5


def _cfg(out: Path, **changes: object) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(out), **changes})


def _weights(out: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(out / "checkpoints" / "final.pt")
    return {**ckpt.model, **{f"opt.{k}": v for k, v in _flat(ckpt.optimizer).items()}}


def _flat(state: dict) -> dict[str, torch.Tensor]:
    return {
        f"{pid}.{name}": t
        for pid, slot in state["state"].items()
        for name, t in slot.items()
        if isinstance(t, torch.Tensor)
    }


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    rows_a = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b] == [1, 2, 3]
    for ra, rb in zip(rows_a, rows_b):  # the same losses and spectra: nothing lost or doubled
        assert ra["loss"] == rb["loss"] and ra["step"] == rb["step"]
        assert ra["representation_rankme"] == rb["representation_rankme"]


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    train(_cfg(out), verbose=False)
    return out


def _signal_at(monkeypatch, calls: int, signum: int) -> None:
    """Send this process ``signum`` during the ``calls``-th optimisation step."""
    real = Stepper.step
    count = {"n": 0}

    def step(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            os.kill(os.getpid(), signum)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Stepper, "step", step)


@pytest.mark.parametrize("at_step", [2, 5, 8, 14])
def test_sigterm_at_any_step_saves_there_and_the_resume_is_bit_identical(
    tmp_path, monkeypatch, whole_run, at_step
):
    out = tmp_path / "run"
    _signal_at(monkeypatch, at_step, signal.SIGTERM)
    epoch_end = at_step % STEPS_PER_EPOCH == 0
    where = f"end of epoch {at_step // STEPS_PER_EPOCH}" if epoch_end else f"at step {at_step} "
    with pytest.raises(Terminated, match=where):
        train(_cfg(out, checkpoint_every="0"), verbose=False)
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt.step == at_step  # the step it reached, not the last epoch's end
    assert ckpt.epoch == at_step // STEPS_PER_EPOCH
    monkeypatch.undo()
    train(_cfg(out, resume=True), verbose=False)
    _assert_same_run(out, whole_run)


def test_ctrl_c_saves_like_sigterm_and_says_so(tmp_path, monkeypatch, whole_run):
    out = tmp_path / "run"
    _signal_at(monkeypatch, 7, signal.SIGINT)
    with pytest.raises(Interrupted, match="epoch 2, step 2 of 5"):
        train(_cfg(out), verbose=False)
    monkeypatch.undo()
    train(_cfg(out, resume=True), verbose=False)
    _assert_same_run(out, whole_run)


def test_checkpoint_every_steps_saves_inside_epochs(tmp_path, monkeypatch):
    saved = []
    real = checkpoint_module.save_checkpoint

    def spy(path, payload):
        saved.append((payload["step"], payload["step_in_epoch"]))
        return real(path, payload)

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", spy)
    train(_cfg(tmp_path / "run", epochs=2, checkpoint_every="3"), verbose=False)
    # every 3rd step inside an epoch, and every epoch's end (step_in_epoch 0)
    assert saved == [(3, 3), (5, 0), (6, 1), (9, 4), (10, 0)]


_DRIVER = """
import os, signal, sys
import torch

mode, nth = os.environ["FAULT_MODE"], int(os.environ["FAULT_AT"])
calls = {"n": 0}

def kill_now():
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "save":  # die half-way through writing a checkpoint
    real_save = torch.save
    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == nth:
            with open(f, "wb") as fh:
                fh.write(b"PK\\x03\\x04 half a checkpoint")
            kill_now()
        return real_save(obj, f, *a, **k)
    torch.save = save
elif mode == "rename":  # die just after a checkpoint's rename
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        calls["n"] += 1
        if calls["n"] == nth:
            kill_now()
    os.replace = replace

from dimcollapse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _train_args(out: Path, *extra: str) -> list[str]:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    return [*args, "--checkpoint-every", "2", "--quiet", "--out", str(out), *extra]


def _run(driver: Path, out: Path, env: dict[str, str], resume: bool) -> subprocess.Popen:
    extra = ["--resume"] if resume else []
    return subprocess.Popen(
        [sys.executable, str(driver), "train", *_train_args(out, *extra)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_while_training(proc: subprocess.Popen, out: Path, delay: float) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after it has (re)written its config.yaml, i.e. once
    it is training rather than importing torch."""
    config = out / "config.yaml"
    before = config.stat().st_mtime_ns if config.exists() else None
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if config.exists() and config.stat().st_mtime_ns != before:
            break
        time.sleep(0.01)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def test_sigkill_anywhere_then_resume_is_bit_identical(tmp_path, whole_run):
    """SIGKILL inside two checkpoint writes, just after a rename, and at random moments; each
    time ``--resume`` goes on (or restarts in place when no checkpoint was saved yet)."""
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    out = tmp_path / "run"
    base = {**os.environ, "OMP_NUM_THREADS": "1", "FAULT_MODE": "none", "FAULT_AT": "0"}
    faults = [("save", 1), ("save", 3), ("rename", 2)]
    rng = random.Random(0)
    kills = 0
    started = False
    for attempt in range(12):
        mode, nth = faults[attempt] if attempt < len(faults) else ("none", 0)
        proc = _run(driver, out, {**base, "FAULT_MODE": mode, "FAULT_AT": str(nth)}, started)
        if mode == "none" and attempt < len(faults) + 2:
            _kill_while_training(proc, out, rng.uniform(0.0, 1.0))
        _, err = proc.communicate(timeout=180)
        started = True
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
        kills += 1
    else:
        pytest.fail("the run never finished")
    assert kills >= len(faults)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # no orphan left at the end
    _assert_same_run(out, whole_run)


def _nan_at(monkeypatch, calls: int) -> None:
    """Make the ``calls``-th step's contrastive loss NaN."""
    count = {"n": 0}

    def nan_at(value):
        count["n"] += 1
        return value * float("nan") if count["n"] == calls else value

    _wrap_info_nce(monkeypatch, nan_at)


def _wrap_info_nce(monkeypatch, after) -> None:
    """Every training loss ``info_nce`` builds is passed through ``after(value)``."""
    real = losses.LOSSES["info_nce"]

    def factory(**options):
        loss_fn = real(**options)
        return lambda z1, z2: after(loss_fn(z1, z2))

    monkeypatch.setitem(losses.LOSSES, "info_nce", factory)


def test_a_nan_loss_stops_with_its_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _nan_at(monkeypatch, 8)  # epoch 2, step 3
    with pytest.raises(UsageError) as err:
        train(_cfg(out), verbose=False)
    text = str(err.value)
    assert "the contrastive loss became nan at step 8" in text
    assert "last good state (step 5)" in text and "--base-lr" in text
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt.step == 5 and all(torch.isfinite(t).all() for t in ckpt.model.values())
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]  # no line for the diverged epoch


def test_a_non_finite_gradient_names_the_parameter(tmp_path, monkeypatch):
    """A hook poisons one parameter's gradient while the loss stays finite."""
    real_build = session_module.build_model

    def build(spec):
        model = real_build(spec)
        target = next(model.backbone.parameters())
        count = {"n": 0}

        def hook(grad):
            count["n"] += 1
            return grad * float("inf") if count["n"] == 4 else grad

        target.register_hook(hook)
        return model

    monkeypatch.setattr(session_module, "build_model", build)
    with pytest.raises(UsageError, match=r"the gradient of \S+ became non-finite at step 4"):
        train(_cfg(tmp_path / "run", epochs=1, checkpoint_every="0"), verbose=False)


def test_max_bad_steps_skips_that_many_then_stops(tmp_path, monkeypatch, whole_run):
    out = tmp_path / "run"
    _nan_at(monkeypatch, 3)
    result = train(_cfg(out, max_bad_steps=1), verbose=False)
    assert [m["bad_steps"] for m in result.metrics] == [1, 1, 1]
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in result.metrics)
    final = load_checkpoint(out / "checkpoints" / "final.pt").model
    assert all(torch.isfinite(t).all() for t in final.values())
    ref = _weights(whole_run)
    assert any(not torch.equal(final[k], ref[k]) for k in final)  # the step really was skipped

    calls = {"n": 0}

    def always_nan_after_two(value):
        calls["n"] += 1
        return value * float("nan") if calls["n"] > 2 else value

    _wrap_info_nce(monkeypatch, always_nan_after_two)
    with pytest.raises(UsageError, match=r"at step 5 \(after 2 skipped\)"):
        train(_cfg(tmp_path / "again", max_bad_steps=2), verbose=False)


_RANK1_SIGTERM = """
import os, signal, sys
from dimcollapse.train import Stepper

if os.environ.get("RANK") == "1":  # only one process is signalled
    real = Stepper.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == int(os.environ["SIGNAL_AT"]):
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *args, **kwargs)

    Stepper.step = step

from dimcollapse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_under_torchrun_every_rank_stops_at_the_same_step(tmp_path):
    """SIGTERM reaches rank 1 only, at its step 3: both processes agree at the next agreement
    step (every 8), rank 0 saves there, both exit; the resume finishes the run."""
    driver = tmp_path / "driver.py"
    driver.write_text(_RANK1_SIGTERM)
    out = tmp_path / "run"
    settings = {**TINY, "subset": 1280, "epochs": 2, "device": "cpu"}
    args = [f"--{k.replace('_', '-')}={v}" for k, v in settings.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SIGNAL_AT": "3"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*launch, str(driver), "train", *args, "--quiet", "--out", str(out)]
    stopped = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert stopped.returncode != 0
    assert stopped.stderr.count("saved checkpoints/last.pt at step 8 ") == 2, stopped.stderr[-3000:]
    assert load_checkpoint(out / "checkpoints" / "last.pt").step == 8
    resumed = subprocess.run(
        [*cmd, "--resume"], env={**env, "SIGNAL_AT": "0"}, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in rows] == [(1, 20), (2, 40)]  # 20 steps per epoch


def test_the_clock_saves_after_its_minutes_and_again_after_each_save(monkeypatch):
    from dimcollapse.train import interrupt

    now = {"t": 1000.0}
    monkeypatch.setattr(interrupt.time, "monotonic", lambda: now["t"])
    clock = interrupt.CheckpointClock((0, 600.0), 1, torch.device("cpu"))  # "10m"
    assert clock.decide(1, False) == (False, False)
    now["t"] += 599
    assert clock.decide(2, False) == (False, False)
    now["t"] += 2
    assert clock.decide(3, False) == (False, True)
    clock.saved()
    assert clock.decide(4, True) == (True, False)  # a signal stops; no save is due
