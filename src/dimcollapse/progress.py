"""What a command shows while the user waits: one policy for every long loop.

Embedding images with a model, the linear probe's epochs, the kNN probe and the spectrum of a
large file each wrap their loop in :func:`track`. What it shows depends on the mode:

* ``bar``: a tqdm bar on stderr, gone when the loop ends (stderr is a terminal);
* ``lines``: one line per stage on stderr, e.g. ``embedding 10,000 images with
  torchvision:resnet18 ...``: for logs and pipes;
* ``quiet``: nothing (``--json``, ``--quiet``, and any caller outside a command: notebooks,
  ``reproduce``'s stages).

Both show a stage only once it has run :data:`DELAY_S` seconds: a quick command, and an error
found soon after a stage began, stay one line on stderr.

Commands choose the mode with :func:`mode_for` and set it for their run with :func:`reporting`;
the library's loops read it, so no signature carries it. Training reports its steps and epochs
itself (:mod:`dimcollapse.train.progress`: a bar on a terminal, else periodic lines on stdout).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

#: The modes, as the module docstring describes them.
MODES = ("bar", "lines", "quiet")
#: Seconds a stage runs before it is shown.
DELAY_S = 1.0

T = TypeVar("T")

_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("dimcollapse_progress", default="quiet")


def mode_for(quiet: bool, stream: TextIO | None = None) -> str:
    """``quiet`` when asked (``--quiet``, ``--json``), else ``bar`` when ``stream`` (default:
    stderr) is a terminal, else ``lines``."""
    if quiet:
        return "quiet"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


@contextlib.contextmanager
def reporting(mode: str) -> Iterator[None]:
    """Within the block, :func:`track` without a ``mode`` shows progress in ``mode``."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, got {mode!r}")
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


def track(
    iterable: Iterable[T], desc: str, total: int | None = None, mode: str | None = None
) -> Iterator[T]:
    """The items of ``iterable``, showing ``desc`` (and, for a bar, ``total`` items) in ``mode``
    (default: the one :func:`reporting` set; ``quiet`` outside it)."""
    mode = _MODE.get() if mode is None else mode
    if mode == "quiet":
        yield from iterable
    elif mode == "lines":
        yield from _with_stage_line(iterable, desc)
    else:
        from tqdm import tqdm  # lean --help: tqdm 78 ms (the commands import this module)

        bar = tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, delay=DELAY_S)
        try:
            yield from bar
        finally:
            bar.close()


def _with_stage_line(iterable: Iterable[T], desc: str) -> Iterator[T]:
    """The items, with ``desc ...`` on stderr once the stage has run :data:`DELAY_S` seconds from
    its first item (said by a timer, so that a long first item does not hold the line back)."""
    lock, said = threading.Lock(), []

    def say() -> None:
        with lock:
            if not said:
                said.append(True)
                print(f"{desc} ...", file=sys.stderr, flush=True)

    timer, started = None, None
    try:
        for item in iterable:
            if started is None:
                started = time.monotonic()
                if DELAY_S <= 0:
                    say()
                else:
                    timer = threading.Timer(DELAY_S, say)
                    timer.daemon = True
                    timer.start()
            elif time.monotonic() - started >= DELAY_S:
                say()
            yield item
    finally:
        if timer is not None:
            timer.cancel()
