"""Errors that the command line reports as one ``error:`` line with exit status 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: a missing or malformed file, a wrong shape, an impossible option.

    The command line prints ``error: <message>`` on stderr and exits with status 2, without a
    traceback. Library code raises it wherever the cause is the caller's input, never for bugs.
    """
