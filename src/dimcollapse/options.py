"""Generic command-line option declarations, below every package that declares options.

Each ``add_*`` function adds one option with its flag and type fixed here; the caller gives the
help text and default, since they say what the option means for that command.
:mod:`dimcollapse.commands._options` (the commands' shared options and checks) and
:mod:`dimcollapse.toy.options` (the theory lab's) both build on these, so a flag is spelt and
typed once.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class OptionHolder(Protocol):
    """A parser or an argument group: anything options are added to."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action: ...


def add_out(parser: OptionHolder, metavar: str, help: str, **kwargs: Any) -> None:
    """``--out``: where the command writes (``required=True`` or a ``default``)."""
    parser.add_argument("--out", metavar=metavar, help=help, **kwargs)


def add_json(parser: OptionHolder, help: str) -> None:
    parser.add_argument("--json", action="store_true", help=help)


#: The seeds every command takes: 0 .. 2**32 - 1, what NumPy's and torch's generators both
#: accept as they are (torch's reach 2**64 - 1, NumPy's legacy seeding 2**32 - 1).
SEED_MAX = 2**32 - 1


def seed_problem(seed: int) -> str | None:
    """Why ``seed`` is no seed a command takes (outside 0 .. :data:`SEED_MAX`); None if it is."""
    if 0 <= seed <= SEED_MAX:
        return None
    return f"must be an integer from 0 to {SEED_MAX} (2**32 - 1), got {seed}"


def seed_value(text: str) -> int:
    """``--seed``'s type: an integer in 0 .. :data:`SEED_MAX`; argparse's one-line error else."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    problem = seed_problem(seed)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return seed


def add_seed(parser: OptionHolder, help: str, default: Any = 0) -> None:
    parser.add_argument("--seed", type=seed_value, default=default, help=help)


def add_threads(parser: OptionHolder, default: Any, help: str) -> None:
    parser.add_argument("--threads", type=int, default=default, help=help)


def add_rel_tol(parser: OptionHolder, default: Any, help: str) -> None:
    parser.add_argument("--rel-tol", type=float, default=default, help=help)
