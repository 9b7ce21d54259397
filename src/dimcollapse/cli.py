"""The ``dimcollapse`` command line: one subcommand per module in :mod:`dimcollapse.commands`.

Each command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Heavy imports (torch, matplotlib) happen inside ``run`` so that ``--help`` stays fast.
Every :class:`~dimcollapse.errors.UsageError` becomes one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import sys
from collections.abc import Sequence

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
    from dimcollapse import __version__

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
    """Entry point of the console script and of ``python -m dimcollapse``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    previous = _terminate_as_exception()
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt as exc:
        sys.stderr.write(f"error: interrupted{_resume_hint(args, exc)}\n")
        return 130
    except Terminated as exc:
        sys.stderr.write(f"error: terminated (SIGTERM){_resume_hint(args, exc)}\n")
        return 143
    except OSError as exc:
        message = _os_error_message(exc)
        if message is None:
            raise
        sys.stderr.write(f"error: {message}\n")
        return 2
    finally:
        _restore_sigterm(previous)


def _terminate_as_exception() -> object:
    """Install the SIGTERM handler (main thread only); return the previous one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(_signum: int, _frame: object) -> None:
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: object) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]


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
        from dimcollapse.fileio import free_space_text

        free = free_space_text(exc.filename)
        text += (f" ({free})" if free else "") + "; free some space or write elsewhere"
    return text
