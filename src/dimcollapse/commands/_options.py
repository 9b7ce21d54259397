"""Command-line options that several commands share, and the checks of their values.

Each ``add_*`` function adds one option with its flag, type and default fixed here; the help
text is the shared one unless a command says what the option means for it. The generic ones
(``--out``, ``--json``, ``--seed``, ``--threads``, ``--rel-tol``) live in
:mod:`dimcollapse.options`, which the theory lab's options use too. The options of models
trained elsewhere (``--model``, ``--weights``, ...) live in :mod:`dimcollapse.commands._models`.
Checks raise :class:`~dimcollapse.errors.UsageError`, which the command line prints as one
``error:`` line with exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dimcollapse.choices import SPACES
from dimcollapse.errors import UsageError
from dimcollapse.options import OptionHolder

DEVICE_HELP = "auto | cpu | cuda | cuda:N"
#: ``--quiet`` of the commands whose results go to stdout (``spectrum``, ``embed``, ``probe``).
QUIET_HELP = "show no progress on stderr (a bar on a terminal, else a line per stage)"
RUN_DATA_ROOT_HELP = "dataset directory or .npz file; None: the one in the run's config"
#: Splits of a dataset that a trained run's images come from.
SPLITS = ("train", "test")
#: Autocast precisions of a frozen model's forward pass (``runtime.autocast``).
AUTOCAST_PRECISIONS = ("fp32", "bf16", "fp16", "auto")


def add_run_argument(parser: OptionHolder) -> None:
    """The optional positional run directory or checkpoint (``embed``, ``probe``)."""
    parser.add_argument(
        "run",
        nargs="?",
        metavar="RUN_OR_CHECKPOINT",
        help="run directory or checkpoint file (or --model with --weights)",
    )


def add_device(parser: OptionHolder, default: str = "auto", help: str = DEVICE_HELP) -> None:
    parser.add_argument("--device", default=default, help=help)


def add_quiet(parser: OptionHolder, help: str = "print nothing but errors") -> None:
    parser.add_argument("--quiet", action="store_true", help=help)


def add_force(parser: OptionHolder, help: str) -> None:
    parser.add_argument("--force", action="store_true", help=help)


def add_run_data_root(parser: OptionHolder, help: str = RUN_DATA_ROOT_HELP) -> None:
    """``--data-root`` of a trained run's dataset, when not where the run's config says."""
    parser.add_argument("--data-root", default=None, help=help)


def add_split(parser: OptionHolder, **kwargs: Any) -> None:
    """``--split``: required, or with the ``default`` the command gives."""
    parser.add_argument("--split", choices=SPLITS, **kwargs)


def add_space(parser: OptionHolder, help: str) -> None:
    """``--space``: the backbone's output r or the head's output z."""
    parser.add_argument("--space", choices=SPACES, default="representation", help=help)


def add_autocast_precision(parser: OptionHolder, help: str) -> None:
    parser.add_argument("--precision", choices=AUTOCAST_PRECISIONS, default="fp32", help=help)


def require_at_least(args: argparse.Namespace, dest: str, minimum: int) -> None:
    """Refuse ``args.<dest>`` below ``minimum``; ``None`` (not given) passes."""
    value = getattr(args, dest)
    if value is not None and value < minimum:
        raise UsageError(f"--{dest.replace('_', '-')} must be at least {minimum}, got {value}")


def check_rel_tol(rel_tol: float | None) -> None:
    """``--rel-tol`` must lie strictly between 0 and 1 (NaN and infinities are refused)."""
    if rel_tol is not None and not (0.0 < rel_tol < 1.0):
        raise UsageError(f"--rel-tol must be between 0 and 1, got {rel_tol}")


def refuse_overwrite(paths: Iterable[Path], force: bool, advice: str) -> None:
    """Refuse output files that already exist unless ``--force``; ``advice`` ends the message."""
    for path in paths:
        if path.exists() and not force:
            raise UsageError(f"{path}: already exists; {advice}")


def refuse_data_options(dataset: str | None, data_root: Any, test_file: Any) -> None:
    """Refuse data options that do not apply to ``dataset`` instead of ignoring them:
    ``--data-root`` with ``digits`` (scikit-learn's, built in) and ``--test-file`` with any
    dataset but ``npz``."""
    if data_root is not None and dataset == "digits":
        raise UsageError(
            f"--data-root {data_root} does not apply to digits (scikit-learn's, built in); drop it"
        )
    if test_file is not None and dataset != "npz":
        raise UsageError(
            f"--test-file {test_file} applies only to --dataset npz, not {dataset}; drop it"
        )


def refuse_data_options_for_run(ckpt: Any, data_root: Any, test_file: Any) -> None:
    """The same for a trained run's checkpoint, whose dataset and test file its config names:
    ``--test-file`` (for ``--model``'s dataset) never applies to a run."""
    dataset = ckpt.config.get("dataset")
    if test_file is not None:
        raise UsageError(
            f"--test-file applies to --model's --dataset; a run reads its {dataset} test split "
            "as its config says; drop it"
        )
    refuse_data_options(dataset, data_root, None)
