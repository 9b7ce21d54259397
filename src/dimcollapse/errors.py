"""Errors that the command line reports as one ``error:`` line with exit status 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: a missing or malformed file, a wrong shape, an impossible option.

    The command line prints ``error: <message>`` on stderr and exits with status 2, without a
    traceback. Library code raises it wherever the cause is the caller's input, never for bugs.
    """


class Terminated(BaseException):
    """SIGTERM (a scheduler's preemption, ``kill``) turned into an exception, so that a command
    stops with one line and exit status 143 instead of dying without a word. Training raises it
    after saving a checkpoint at the step it reached; its message then says where."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) after training saved a checkpoint at the step it reached; the message
    says where. A bare ``KeyboardInterrupt`` means nothing was saved."""
