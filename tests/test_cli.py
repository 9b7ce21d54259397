"""The command line as a whole: every command exists, helps, and fails with one error line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest
from conftest import assert_usage_error

from dimcollapse.cli import COMMANDS


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_exists_and_explains_its_options(cli, name):
    assert importlib.util.find_spec(f"dimcollapse.commands.{name}") is not None
    code, out, _ = cli(name, "--help")
    assert code == 0
    assert "usage: dimcollapse" in out and "--" in out


def test_python_dash_m_and_no_command():
    proc = subprocess.run(
        [sys.executable, "-m", "dimcollapse", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and all(name in proc.stdout for name in COMMANDS)
    proc = subprocess.run(
        [sys.executable, "-m", "dimcollapse"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2


def test_unknown_command_is_one_error_line(cli):
    assert_usage_error(cli("collapse"), "invalid choice")


def test_a_full_disk_is_one_error_line_and_leaves_no_partial_file(cli, tmp_path, monkeypatch):
    """ENOSPC while writing a checkpoint (torch's zip writer raises RuntimeError 'unexpected
    pos'), an embeddings file or a plot: one 'error:' line naming the file, exit 2."""
    import errno

    import numpy as np
    import torch
    from conftest import assert_usage_error

    def full_disk_save(*_a, **_k):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full_disk_save)
    out = tmp_path / "run"
    result = cli(
        "train", "--dataset", "digits", "--epochs", "1", "--subset", "128", "--width", "0.0625",
        "--batch-size", "64", "--monitor-samples", "0", "--workers", "0", "--out", out, "--quiet",
    )  # fmt: skip
    assert_usage_error(result, "last.pt", "no space left", "MiB free")
    assert not list((out / "checkpoints").glob(".*tmp*"))  # the partial file is gone

    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(50, 4)))

    def full_disk_savefig(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "plot.png"))

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk_savefig)
    result = cli("spectrum", emb, "--plot", tmp_path / "plot.png")
    assert_usage_error(result, "plot.png", "no space left")
    assert not (tmp_path / "plot.png").exists()


def test_shared_options_read_the_same_in_every_command():
    """Options built by commands/_options.py: one flag, type and default wherever they appear."""
    from dimcollapse.cli import build_parser
    from dimcollapse.commands._options import DEVICE_HELP

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("embed", "probe", "reproduce"):
        (device,) = [a for a in sub.choices[name]._actions if a.dest == "device"]
        assert (device.default, device.help) == ("auto", DEVICE_HELP)
    for name in ("embed", "probe"):
        (run,) = [a for a in sub.choices[name]._actions if a.dest == "run"]
        assert (run.nargs, run.metavar) == ("?", "RUN_OR_CHECKPOINT")


@pytest.mark.parametrize("value", [0.0, 1.0, float("nan"), float("inf"), -0.5])
def test_rel_tol_outside_zero_one_is_refused(value):
    from dimcollapse.commands._options import check_rel_tol
    from dimcollapse.errors import UsageError

    with pytest.raises(UsageError, match="--rel-tol must be between 0 and 1"):
        check_rel_tol(value)
    check_rel_tol(0.5)
    check_rel_tol(None)  # not given: the library's default


def test_require_at_least_names_the_option_as_typed():
    import argparse

    from dimcollapse.commands._options import require_at_least
    from dimcollapse.errors import UsageError

    args = argparse.Namespace(chunk_rows=0, subset=None)
    with pytest.raises(UsageError, match="^--chunk-rows must be at least 1, got 0$"):
        require_at_least(args, "chunk_rows", 1)
    require_at_least(args, "subset", 2)  # None: not given


def _entry_point() -> str:
    """The installed ``dimcollapse`` console script beside this interpreter."""
    from pathlib import Path

    script = Path(sys.executable).parent / "dimcollapse"
    assert script.exists(), script
    return str(script)


def test_building_the_parser_imports_no_torch():
    """Every command's options come from torch-free modules (dimcollapse.choices, ...)."""
    code = (
        "import sys; from dimcollapse.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


HELPS = [[], *([name] for name in COMMANDS), ["toy", "two-layer"]]


@pytest.mark.parametrize("words", HELPS, ids=lambda w: " ".join(w) or "top")
def test_help_through_the_entry_point_imports_no_torch(words):
    """``dimcollapse [COMMAND] --help`` as a user types it; Python lists every module it imports
    (PYTHONPROFILEIMPORTTIME), and torch is not among them."""
    import os

    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run(
        [_entry_point(), *words, "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0 and "usage: dimcollapse" in proc.stdout
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if "|" in ln}
    assert "argparse" in imported  # the listing is there
    assert not {m for m in imported if m.split(".")[0] in ("torch", "torchvision")}


def _sigint_default() -> None:
    """In the child before exec: SIGINT at its default disposition."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_main(pid: int) -> None:
    """Until ``main()`` of process ``pid`` has installed its signal handlers (SIGTERM caught, as
    /proc shows). What comes before, Python's own start and the console script's first imports
    (``import re``), no code of dimcollapse can cover."""
    import signal
    import time
    from pathlib import Path

    term = 1 << (signal.SIGTERM - 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        (caught,) = [ln.split()[1] for ln in status.splitlines() if ln.startswith("SigCgt:")]
        if int(caught, 16) & term:
            return
        time.sleep(0.0005)
    raise AssertionError(f"process {pid} never installed its SIGTERM handler")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_at_any_moment_is_one_line_and_status_130(tmp_path):
    """SIGINT while the command builds its parser, imports torch or streams the file (0 to 2 s
    after main() began): exit status 130 and one 'error: interrupted' line, never a traceback."""
    import signal
    import time

    import numpy as np

    emb = tmp_path / "e.npy"  # 200,000 one-row chunks: seconds of work after torch's import
    np.save(emb, np.random.default_rng(0).normal(size=(200_000, 2)).astype(np.float32))
    outcomes = []
    for delay in (0.0, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0) * 2:
        proc = subprocess.Popen(
            [_entry_point(), "spectrum", str(emb), "--chunk-rows", "1", "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # a terminal's foreground command: SIGINT at its default even when this test runs in
            # a background job, whose shell hands SIGINT down ignored (and Python keeps it so)
            preexec_fn=_sigint_default,
        )
        _wait_for_main(proc.pid)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
        outcomes.append((delay, proc.returncode, err))
    for delay, code, err in outcomes:
        assert code == 130, (delay, code, err)
        assert "Traceback" not in err, (delay, err)
        assert err.strip().splitlines() == ["error: interrupted"], (delay, err)


def test_ctrl_c_while_the_parser_is_built_is_one_line(cli, monkeypatch):
    """The handlers come first in main(): building the parser (which imports the command
    modules) already runs under them, and a Ctrl-C there is one line and status 130."""
    import signal

    import dimcollapse.cli

    seen = {}
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def interrupted_build():
        seen["term"] = signal.getsignal(signal.SIGTERM)
        raise KeyboardInterrupt

    monkeypatch.setattr(dimcollapse.cli, "build_parser", interrupted_build)
    code, out, err = cli("spectrum", "emb.npy")
    assert (code, out, err) == (130, "", "error: interrupted\n")
    assert seen["term"] not in (signal.SIG_DFL, signal.SIG_IGN, None)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def _interrupt_self() -> None:
    """Send this process SIGINT and wait for its handler to raise."""
    import os
    import signal
    import time

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the handler raises long before this ends
    raise AssertionError("SIGINT's handler did not raise")


@pytest.fixture
def sigint_handled():
    """SIGINT handled in this process for the test, as in a terminal's foreground command, even
    when the suite runs as a background job, whose shell hands SIGINT down ignored (main()
    leaves an ignored SIGINT ignored)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_that_a_library_turns_into_its_own_error_is_still_an_interrupt(
    cli, monkeypatch, tmp_path, sigint_handled
):
    """numpy turns a Ctrl-C during its own import into ``ImportError: ... PyCapsule_Import could
    not import module "datetime"`` (seen once in CI): the signal, not the error, ends the
    command. And one a library swallows still ends it as a Ctrl-C when the command returns."""
    import contextlib

    import numpy as np

    import dimcollapse.cli

    real_build = dimcollapse.cli.build_parser

    def import_error_build():
        try:
            _interrupt_self()
        except KeyboardInterrupt as exc:  # what numpy's C import does with it
            raise ImportError('PyCapsule_Import could not import module "datetime"') from exc
        return real_build()

    def swallowing_build():
        # as an optional import's `except ImportError` does after such a turn
        with contextlib.suppress(KeyboardInterrupt):
            _interrupt_self()
        return real_build()

    monkeypatch.setattr(dimcollapse.cli, "build_parser", import_error_build)
    assert cli("spectrum", "emb.npy") == (130, "", "error: interrupted\n")
    monkeypatch.setattr(dimcollapse.cli, "build_parser", swallowing_build)
    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    code, _out, err = cli("spectrum", emb, "--quiet")
    assert (code, err) == (130, "error: interrupted\n")
    monkeypatch.setattr(dimcollapse.cli, "build_parser", real_build)
    assert cli("spectrum", emb, "--quiet")[0] == 0  # the same command, not interrupted


def test_a_bug_keeps_its_traceback_and_no_signal_is_reported(cli, monkeypatch):
    """Without a signal, an unexpected error is not dressed up as one: it propagates."""
    import dimcollapse.cli

    def broken_build():
        raise ImportError("a real bug")

    monkeypatch.setattr(dimcollapse.cli, "build_parser", broken_build)
    with pytest.raises(ImportError, match="a real bug"):
        cli("spectrum", "emb.npy")


def test_ctrl_c_inside_code_run_from_a_string_still_exits_130(tmp_path):
    """CPython remembers a KeyboardInterrupt that left ``exec("...")`` (dataclasses build their
    methods so while torch is imported) and, under ``python -m``, kills itself with SIGINT at
    exit (status -2 to the parent) although main() caught it; main() makes it forget, so the
    status is 130."""
    (tmp_path / "interrupted_main.py").write_text(
        textwrap.dedent(
            """
            import dimcollapse.cli as cli

            def build_parser():
                exec("import os, signal, time; os.kill(os.getpid(), signal.SIGINT); time.sleep(5)")

            cli.build_parser = build_parser
            raise SystemExit(cli.main(["spectrum", "e.npy"]))
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "interrupted_main"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        preexec_fn=_sigint_default,
    )
    assert (proc.returncode, proc.stderr) == (130, "error: interrupted\n")
