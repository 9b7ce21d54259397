"""One writer per output (issue 24): two commands started together on one --out, exactly one
runs and the other is refused with one error line, leaving the first one's files alone; and
after a signal, the hint names a command that works."""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_usage_error

from dimcollapse.cli import main
from dimcollapse.errors import Terminated, UsageError
from dimcollapse.outlock import file_lock, folder_lock

#: The smallest real training run: one step of 16 digits, nothing measured.
SMALLEST = ["train", "--dataset", "digits", "--epochs", "1", "--batch-size", "16", "--width",
            "0.0625", "--workers", "0", "--subset", "32", "--monitor-samples", "0",
            "--online-probe", "false", "--quiet"]  # fmt: skip
#: What it leaves (no spectra.jsonl: nothing measured).
RUN_FILES = {"config.yaml", "metrics.jsonl", "tensorboard", "checkpoints"}
TRIES = 50


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> Path:
    """One smallest run in this process first: the forked processes then start with every
    module imported and the digits loaded (a try takes half a second, not seven)."""
    out = tmp_path_factory.mktemp("warm") / "x"
    assert main([*SMALLEST, "--out", str(out)]) == 0
    return out


def test_the_smallest_run_leaves_one_epoch(warm):
    """What the tries below expect of a run: its files, one metrics line."""
    assert {p.name for p in warm.iterdir()} == RUN_FILES
    assert len((warm / "metrics.jsonl").read_text().splitlines()) == 1


def _child(argv: list[str], me: int, done: list, results: multiprocessing.Queue) -> None:
    """One forked ``dimcollapse`` process: its exit status and stderr go to ``results``. A run
    that gets as far as its session waits there until the other process has ended, so that the
    two always overlap: without the lock both would train into the folder."""
    from dimcollapse.train import session

    real_run = session.Session.run

    def run_after_the_other(self, stop_after):  # type: ignore[no-untyped-def]
        done[1 - me].wait(timeout=20)
        return real_run(self, stop_after)

    session.Session.run = run_after_the_other  # type: ignore[method-assign]
    sys.stdout = io.StringIO()
    sys.stderr = err = io.StringIO()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    except BaseException as exc:  # noqa: BLE001 - reported, not raised in a child
        code, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
    done[me].set()
    results.put((me, code, err.getvalue()))


def _two_together(argv: list[str]) -> list[tuple[int, str]]:
    """Run ``argv`` in two forked processes released at the same instant; their (exit status,
    stderr), in the order of the processes."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    done = [ctx.Event(), ctx.Event()]
    results = ctx.Queue()

    def released(me: int) -> None:
        start.wait(timeout=20)
        _child(argv, me, done, results)

    procs = [ctx.Process(target=released, args=(me,)) for me in (0, 1)]
    for p in procs:
        p.start()
    start.set()
    got = dict((me, (code, err)) for me, code, err in (results.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
    return [got[0], got[1]]


def test_two_trains_started_together_on_one_out_exactly_one_runs(warm, tmp_path):
    """50 times: two ``train`` processes on one new --out; one trains (exit 0), the other says
    one line (exit 2) and leaves nothing; the folder holds the one run's files only."""
    out = tmp_path / "runs" / "x"
    outcomes = []
    for _ in range(TRIES):
        (first, second) = _two_together([*SMALLEST, "--out", str(out)])
        outcomes.append((first[0], second[0]))
        winner, loser = (first, second) if first[0] == 0 else (second, first)
        assert winner[0] == 0, (first, second)
        assert_usage_error((loser[0], "", loser[1]), f"--out {out}", "another dimcollapse process")
        assert {p.name for p in out.iterdir()} == RUN_FILES
        assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # one run's epoch
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["final.pt", "last.pt"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # no lock file beside
        shutil.rmtree(tmp_path / "runs")
    assert sorted(outcomes).count((0, 2)) + sorted(outcomes).count((2, 0)) == TRIES


def test_a_refused_train_into_an_existing_run_leaves_it_as_it_was(warm, tmp_path):
    """The loser's --resume into a run the winner is training: refused; the run is the
    winner's, its metrics one line per epoch."""
    out = tmp_path / "run"
    assert main([*SMALLEST, "--out", str(out)]) == 0
    argv = [*SMALLEST, "--out", str(out), "--resume", "--epochs", "2"]
    first, second = _two_together(argv)
    assert sorted([first[0], second[0]]) == [0, 2], (first, second)
    loser = first if first[0] == 2 else second
    assert_usage_error((2, "", loser[1]), "another dimcollapse process")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ['{"epoch": 1', '{"epoch": 2']


@pytest.mark.slow
def test_two_train_commands_in_separate_interpreters(tmp_path):
    """The same with two real ``python -m dimcollapse train`` processes (no fork, no waiting:
    the loser is refused by the lock, or by the finished run if it came that late)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "dimcollapse", *SMALLEST, "--out", str(tmp_path / "x")]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert sorted(code for code, _ in results) == [0, 2], results
    code, err = next(r for r in results if r[0] == 2)
    assert_usage_error((code, "", err), "--out")
    assert len((tmp_path / "x" / "metrics.jsonl").read_text().splitlines()) == 1


def test_two_toys_started_together_on_one_out(warm, tmp_path):
    argv = ["toy", "strong-aug", "--steps", "2", "--no-figures", "--out", str(tmp_path / "t")]
    codes = []
    for _ in range(5):
        first, second = _two_together(argv)
        codes.append(sorted([first[0], second[0]]))
        shutil.rmtree(tmp_path / "t", ignore_errors=True)
    # a toy run holds its lock for milliseconds: the second may come after it, never beside it
    assert all(c in ([0, 2], [0, 0]) for c in codes), codes


# -- the lock itself -----------------------------------------------------------------------------


def test_folder_lock_refuses_a_second_holder_and_frees_at_the_end(tmp_path):
    out = tmp_path / "a" / "b"
    with folder_lock(out) as lock:
        assert out.is_dir() and lock.created == tmp_path / "a"
        with pytest.raises(UsageError, match="another dimcollapse process"), folder_lock(out):
            pass
        assert out.is_dir()  # the refusal removed nothing of the holder's
    assert not (tmp_path / "a").exists()  # made for the lock, left empty: removed
    with folder_lock(out):
        (out / "kept.txt").write_text("x")
    assert (out / "kept.txt").is_file()  # filled: kept
    with folder_lock(out) as lock:  # free again, and existing: nothing made
        assert lock.created is None


def test_file_lock_removes_its_lock_file_and_refuses_a_second_holder(tmp_path):
    target = tmp_path / "sub" / "e.npy"
    with file_lock(target):
        assert (tmp_path / "sub" / ".e.npy.lock").is_file()
        with pytest.raises(UsageError, match="another dimcollapse process"), file_lock(target):
            pass
        target.write_bytes(b"x")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["e.npy"]
    stale = tmp_path / "sub" / ".e.npy.lock"
    stale.write_text("")  # left by a killed process: no lock held on it
    with file_lock(target):
        pass
    assert not stale.exists()


def test_a_lock_dies_with_its_process(tmp_path):
    """A killed holder leaves no lock behind: the next writer takes it."""
    code = (
        "import os, sys, time; from dimcollapse.outlock import folder_lock\n"
        f"with folder_lock({str(tmp_path / 'r')!r}):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=r"pid \d+"), folder_lock(tmp_path / "r"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(tmp_path / "r"):
        pass


# -- after a signal, the hint names a command that works -----------------------------------------


def _terminated(*_args: object, **_kwargs: object) -> None:
    raise Terminated()


def test_sigterm_before_anything_was_saved_hints_to_rerun_the_command(cli, tmp_path, monkeypatch):
    """SIGTERM while the data loads: nothing saved, no folder left; the hint is the same
    command again (``--resume`` would find nothing), and that command works."""
    out = tmp_path / "run"
    argv = [*SMALLEST, "--out", str(out)]
    monkeypatch.setattr("dimcollapse.train.session.load_training_data", _terminated)
    code, _, err = cli(*argv)
    assert code == 143 and "--resume" not in err.replace("without --resume", ""), err
    assert "nothing was saved yet" in err and "run the same command again" in err, err
    assert not out.exists()
    assert_usage_error(cli("train", "--out", str(out), "--resume"), "nothing to resume")
    monkeypatch.undo()
    assert cli(*argv)[0] == 0


def test_sigterm_before_the_first_checkpoint_hints_to_resume(cli, tmp_path, monkeypatch):
    """SIGTERM after config.yaml was written but before any checkpoint: ``--resume`` starts the
    run again in place, as the hint says, and finishes it."""
    out = tmp_path / "run"
    monkeypatch.setattr("dimcollapse.train.session.Session.run", _terminated)
    code, _, err = cli(*SMALLEST, "--out", str(out))
    assert code == 143 and "no checkpoint was saved yet" in err, err
    hinted = err.split("with: ", 1)[1].split()
    assert hinted[:2] == ["dimcollapse", "train"] and hinted[-1] == "--resume", err
    monkeypatch.undo()
    assert cli(*hinted[1:])[0] == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_sigterm_after_a_checkpoint_hints_to_resume(tmp_path):
    from dimcollapse.rundir import RunLayout

    layout = RunLayout(tmp_path)
    layout.checkpoints.mkdir()
    layout.last.write_bytes(b"x")
    hint = layout.restart_hint("saved checkpoints/last.pt at step 3")
    assert hint == (
        f"saved checkpoints/last.pt at step 3: resume with: dimcollapse train --out {tmp_path} "
        "--resume"
    )
