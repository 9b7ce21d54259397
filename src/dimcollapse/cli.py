"""The ``dimcollapse`` command line: one subcommand per module in :mod:`dimcollapse.commands`.

Each command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, matplotlib) happen inside the command modules' functions, each saying why
(the reasons: :mod:`dimcollapse.lazy`): building the parser imports no torch, so
``dimcollapse probe --help`` answers in 0.2 s instead of 4.6 s (benchmarks/RESULTS.md); the
choices and defaults it shows come from torch-free modules (:mod:`dimcollapse.choices`, ...).
Every :class:`~dimcollapse.errors.UsageError` becomes one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import signal
import sys
import threading
from collections.abc import Sequence

from dimcollapse import __version__
from dimcollapse.errors import Interrupted, Terminated, UsageError

#: Subcommands in the order ``dimcollapse --help`` lists them; each is ``dimcollapse.commands.<name>``.
COMMANDS = ("spectrum", "toy", "train", "embed", "probe", "reproduce", "bench")


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one ``error:`` line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {self.prog}: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default and keeps the descriptions' line breaks."""


def build_parser() -> ArgumentParser:
    """The full parser, with every subcommand registered."""
    parser = ArgumentParser(
        prog="dimcollapse",
        description="See, understand and avoid dimensional collapse in contrastive "
        "self-supervised learning (Jing, Vincent, LeCun, Tian, ICLR 2022).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dimcollapse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMANDS:
        if importlib.util.find_spec(f"dimcollapse.commands.{name}") is None:
            continue  # not built yet; tests/test_cli.py checks that every command exists
        module = importlib.import_module(f"dimcollapse.commands.{name}")
        doc = (module.__doc__ or "").strip()
        p = sub.add_parser(name, help=module.HELP, description=doc, formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m dimcollapse``; returns the exit status.

    Ctrl-C at any moment, also while the parser is built or torch is imported, is one
    ``error: interrupted`` line and exit status 130 (SIGTERM: ``error: terminated``, 143): the
    handlers are in place before anything else is imported, and they remember the signal, so a
    signal that a library turned into its own error, or swallowed, still ends the command as a
    signal (see :class:`_Signals`)."""
    signals = _Signals()
    args = None
    try:
        # inside the try: a Ctrl-C right after the handlers are in place (SIGTERM's, the last,
        # is what a waiting test sees) is already the one line below, never a traceback
        signals.install()
        parser = build_parser()
        args = parser.parse_args(argv)
        if getattr(args, "_run", None) is None:
            parser.print_help(sys.stderr)
            return 2
        status = int(args._run(args) or 0)
        signals.raise_if_received()
        return status
    except BaseException as exc:  # _exit_status re-raises what it does not report
        return _exit_status(exc, args, signals.received)
    finally:
        signals.restore()


def _exit_status(exc: BaseException, args: object, received: int | None) -> int:
    """The one ``error:`` line and exit status for ``exc``, raised while the command ran;
    re-raises what is neither the user's doing nor a signal (a bug keeps its traceback).

    A signal is judged by what was received, not only by the exception's type: a Ctrl-C that
    lands inside a C extension's import comes back as that import's error (numpy turns it into
    ``ImportError: ... PyCapsule_Import could not import module "datetime"``)."""
    if isinstance(exc, KeyboardInterrupt) or (
        received == signal.SIGINT and not isinstance(exc, Terminated)
    ):
        _ignore_interrupts()  # a second Ctrl-C while this is said: no traceback either
        sys.stderr.write(f"error: interrupted{_resume_hint(args, exc)}\n")
        _forget_caught_interrupts()
        return 130
    if isinstance(exc, Terminated) or received == signal.SIGTERM:
        sys.stderr.write(f"error: terminated (SIGTERM){_resume_hint(args, exc)}\n")
        return 143
    if isinstance(exc, UsageError):
        sys.stderr.write(f"error: {exc}\n")
        return 2
    message = _os_error_message(exc) if isinstance(exc, OSError) else None
    if message is None:
        raise exc
    sys.stderr.write(f"error: {message}\n")
    return 2


class _Signals:
    """SIGTERM and SIGINT while a command runs: each raises (``Terminated``,
    ``KeyboardInterrupt``, unless the caller set SIGINT to be ignored) and is remembered, so
    that :func:`main` reports it even when a library caught the exception and raised its own,
    or swallowed it (an optional import's ``except ImportError``). Installed in the main thread
    only; :meth:`restore` puts back the handlers they replaced. Training installs its own for
    the time it trains (:class:`dimcollapse.train.interrupt.StopSignals`)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.received = signum
        self.raise_if_received()

    def raise_if_received(self) -> None:
        """Raise the received signal's exception, if any; after a command returned: a signal it
        swallowed still ends it as that signal."""
        if self.received is not None:
            raise KeyboardInterrupt if self.received == signal.SIGINT else Terminated()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)  # type: ignore[arg-type]


def _forget_caught_interrupts() -> None:
    """Keep CPython from ending the process by SIGINT (status -2 to a parent) instead of 130.

    CPython remembers a KeyboardInterrupt that left code run from a *string*
    (``run_eval_code_obj``: ``exec("...")``, as ``dataclasses`` and ``namedtuple`` do for the
    classes they build while torch is imported) and, when the program ran as ``python -m
    dimcollapse``, kills itself with SIGINT at exit, although ``main`` caught the interrupt
    further up: 6 to 12 of 96 Ctrl-Cs in the first two seconds. Running any code from a string
    clears that memory first thing, so this does exactly that (tests/test_cli.py checks it)."""
    exec("pass")  # a constant string: resets CPython's flag, runs nothing


def _ignore_interrupts() -> None:
    """Ignore further Ctrl-C while the command stops (main thread only; restored on return)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _resume_hint(args: object, exc: BaseException) -> str:
    """For ``train``: what was saved and how to resume; for ``reproduce``: how to continue. Training that stops at a signal saves
    a checkpoint at the step it reached and says so in the exception; a signal anywhere else
    (loading data, the monitor) leaves the run's last checkpoint as it was."""
    command = getattr(args, "command", None)
    if command == "reproduce" and getattr(args, "out", None):
        return (
            f"; {args.out} keeps every finished stage and checkpoint: run the same command "
            "again to continue"
        )
    if command != "train" or not getattr(args, "out", None):
        return ""
    # signals first: at the top, rundir's 23 ms would run before main() guards Ctrl-C
    from dimcollapse.rundir import RunLayout

    saved = str(exc) if isinstance(exc, (Terminated, Interrupted)) and str(exc) else ""
    return "; " + RunLayout(args.out).restart_hint(saved)


#: Operating-system errors that are the user's situation, not a bug: one line, exit status 2.
_USER_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EACCES: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENAMETOOLONG: "file name too long",
}


def _os_error_message(exc: OSError) -> str | None:
    """One line for a full disk, a quota, permissions or a read-only file system, naming the file
    and the free space of its own file system; else None."""
    what = _USER_OS_ERRORS.get(exc.errno or -1)
    if what is None:
        return None
    space = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if not exc.filename:  # a writer that did not say which file: the best we can say
        return f"{what} while writing an output" + ("; free some space" if space else "")
    text = f"{exc.filename}: {what}"
    if space:
        # signals first: at the top, rundir's 23 ms would run before main() guards Ctrl-C
        from dimcollapse.fileio import free_space_text

        free = free_space_text(exc.filename)
        text += (f" ({free})" if free else "") + "; free some space or write elsewhere"
    return text
