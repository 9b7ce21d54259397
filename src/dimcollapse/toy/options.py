"""The theory lab's command line: each scenario's options (its defaults, their help text) and
parsing them into :func:`~dimcollapse.toy.scenario_runs.run_scenarios`' settings.

``dimcollapse toy`` (:mod:`dimcollapse.commands.toy`) registers one sub-command per scenario with
:func:`add_scenario_options`; :func:`config_overrides` and :func:`scenario_settings` turn the
parsed options into :class:`~dimcollapse.toy.config.ToyConfig` fields and the scenarios' own
settings, refusing a bad value with one :class:`~dimcollapse.errors.UsageError`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from dimcollapse.choices import DEFAULT_REL_TOL
from dimcollapse.errors import UsageError
from dimcollapse.options import OptionHolder, add_json, add_out, add_rel_tol, add_seed, add_threads
from dimcollapse.toy.config import check_dim, input_variances, parse_noise_dims
from dimcollapse.toy.scenarios import SCENARIO_NAMES, SCENARIOS, Scenario

#: What ``dimcollapse toy`` can run: every scenario, then ``all`` of them.
CHOICES = (*SCENARIO_NAMES, "all")


SCENARIO_HELP = {
    "strong-aug": "section 4 (Theorem 1): one layer, strong vs weak augmentation",
    "two-layer": "section 5 (Theorems 2-3, Figs. 4-5): alignment and singular value dynamics",
    "depth": "Fig. 6a: more layers, more collapsed dimensions",
    "relu": "Fig. 6b: two layers with and without ReLU",
    "all": "every scenario, trained together, plus one combined figure",
}


def scenario_description(name: str) -> str:
    """The description of a scenario's ``--help``: its title and where the paper states it."""
    sc = SCENARIOS.get(name)
    return SCENARIO_HELP[name] if sc is None else f"{sc.title} ({sc.paper})."


def add_scenario_options(p: argparse.ArgumentParser, name: str) -> None:
    """Every option of one choice of :data:`CHOICES`, with its defaults (``all``: each one's)."""
    sc = SCENARIOS.get(name)
    _add_common(p, sc)
    if sc is not None:
        _add_specific(p, sc)


def _add_common(p: argparse.ArgumentParser, sc: Scenario | None) -> None:
    """Options every scenario takes; their defaults are the scenario's (``all``: each one's)."""
    _add_output_options(p.add_argument_group("output"), sc)
    training = p.add_argument_group("model and training")
    _add_training_options(training, sc)
    _add_init_options(training, sc)
    _add_tracking_options(p.add_argument_group("tracking"), sc)


def _default(sc: Any, field: str) -> Any:
    """The scenario's value of a ToyConfig field; under ``all`` (no scenario) each run's own."""
    return argparse.SUPPRESS if sc is None else getattr(sc.config, field)


def _each(sc: Scenario | None) -> str:
    """What the help of a scenario-defaulted option adds under ``all``."""
    return " (default: each scenario's own)" if sc is None else ""


def _add_output_options(group: OptionHolder, sc: Scenario | None) -> None:
    add_out(group, "DIR", "where files go", default="toy-output")
    add_json(group, "print one JSON object per run")
    group.add_argument("--no-figures", action="store_true", help="write the JSON files only")
    tol = DEFAULT_REL_TOL if sc is None or sc.rel_tol is None else sc.rel_tol
    add_rel_tol(
        group,
        argparse.SUPPRESS if sc is None else tol,
        "a dimension is collapsed when sigma_k < REL_TOL * sigma_1 of the Eq. 1 covariance"
        + _each(sc),
    )


def _add_training_options(group: OptionHolder, sc: Scenario | None) -> None:
    """The width, the SGD run and the loss."""
    each = _each(sc)
    group.add_argument("--dim", type=int, default=_default(sc, "dim"), help="d, the width" + each)
    group.add_argument(
        "--steps", type=int, default=_default(sc, "steps"), help="SGD steps per run" + each
    )
    group.add_argument(
        "--lr", type=float, default=_default(sc, "lr"), help="SGD learning rate" + each
    )
    group.add_argument(
        "--batch-size", type=int, default=_default(sc, "batch_size"), help="pairs per step" + each
    )
    group.add_argument(
        "--loss",
        choices=("distance", "cosine"),
        default=_default(sc, "loss"),
        help="distance: Eq. 2, -|z_i - z_j|^2 / (2 tau), unnormalised; cosine: "
        "z_i^T z_j / tau on L2-normalised embeddings (X of Eq. 6, G = -W X and Theorem 1 "
        "are about distance; with cosine X is still reported but does not drive W)" + each,
    )
    group.add_argument(
        "--temperature",
        type=float,
        default=_default(sc, "temperature"),
        help="tau (Eq. 2 is tau = 1)" + each,
    )


def _add_init_options(group: OptionHolder, sc: Scenario | None) -> None:
    """The initial weights, the inputs, the seed and the training precision."""
    each = _each(sc)
    group.add_argument(
        "--init",
        choices=("random", "spectral", "orthogonal"),
        default=_default(sc, "init"),
        help="random: U(-1/sqrt(d), 1/sqrt(d)); spectral: U diag(exp(-DECAY k)) V^T "
        "(non-degenerate, the paper's case 2); orthogonal: all singular values equal" + each,
    )
    group.add_argument(
        "--init-decay",
        type=float,
        default=_default(sc, "init_decay"),
        metavar="DECAY",
        help="decay of the spectral initialisation" + each,
    )
    group.add_argument(
        "--init-scale",
        type=float,
        default=_default(sc, "init_scale"),
        help="multiplies the initial weights" + each,
    )
    group.add_argument(
        "--input-var",
        default=argparse.SUPPRESS if sc is None else "1",
        metavar="V[,V...]",
        help="variances of the Gaussian inputs: one for every dimension, or d of them" + each,
    )
    add_seed(group, "the runs' seed" + each, default=_default(sc, "seed"))
    group.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default=_default(sc, "dtype"),
        help="training precision (the analytics are always float64)" + each,
    )


def _add_tracking_options(group: OptionHolder, sc: Scenario | None) -> None:
    each = _each(sc)
    group.add_argument(
        "--track-every",
        type=int,
        default=_default(sc, "track_every"),
        metavar="K",
        help="record spectra and alignment every K steps" + each,
    )
    group.add_argument(
        "--eval-samples",
        type=int,
        default=_default(sc, "eval_samples"),
        help="fresh clean samples for each embedding spectrum" + each,
    )
    add_threads(
        group,
        1,
        "torch CPU threads while this command runs (the toy's matrices are too small to gain "
        "from more)",
    )


def _add_specific(p: argparse.ArgumentParser, sc: Scenario) -> None:
    cfg = sc.config
    g = p.add_argument_group(f"{sc.name}")
    g.add_argument(
        "--noise",
        type=float,
        default=cfg.noise,
        help="noise standard deviation of the augmentation"
        + (" (the strong run)" if sc.name == "strong-aug" else ""),
    )
    g.add_argument(
        "--noise-dims",
        default="half" if sc.name == "strong-aug" else "all",
        metavar="K",
        help="the noise sits on the last K input dimensions ('all', 'half' or a number)",
    )
    if sc.name == "strong-aug":
        g.add_argument(
            "--weak-noise", type=float, default=sc.weak_noise, help="the weak run's noise"
        )
        g.add_argument(
            "--layers", type=int, default=cfg.layers, help="L (Theorem 1 is about L = 1)"
        )
    elif sc.name == "depth":
        g.add_argument(
            "--depths",
            default=",".join(str(k) for k in sc.depths),
            metavar="L[,L...]",
            help="the layer counts to compare",
        )
    elif sc.name == "relu":
        g.add_argument("--layers", type=int, default=cfg.layers, help="L")
    elif sc.name == "two-layer":
        g.add_argument(
            "--layers", type=int, default=cfg.layers, help="L (Theorem 2 is about L = 2)"
        )


#: ToyConfig fields that options of the same name set.
CONFIG_FIELDS = (
    "dim", "steps", "lr", "batch_size", "loss", "temperature", "init", "init_decay",
    "init_scale", "seed", "dtype", "track_every", "eval_samples", "noise", "layers",
)  # fmt: skip


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """ToyConfig fields from the parsed options (only those present)."""
    out = {field: getattr(args, field) for field in CONFIG_FIELDS if hasattr(args, field)}
    dim = out.get("dim", 16)
    if dim is not None:  # before the options whose length depends on it
        check_dim(dim)
    if hasattr(args, "noise_dims"):
        out["noise_dims"] = parse_noise_dims(args.noise_dims, dim)
    if hasattr(args, "input_var"):
        values = parse_list(args.input_var, "--input-var", float, "numbers")
        out["input_cov"] = input_variances(values, dim)
    return out


def scenario_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The scenarios' own settings from the parsed options: ``depths`` and ``weak_noise``."""
    depths = (
        parse_list(args.depths, "--depths", int, "integers") if hasattr(args, "depths") else None
    )
    weak = getattr(args, "weak_noise", None)
    if weak is not None and not (math.isfinite(weak) and weak >= 0):
        raise UsageError(f"--weak-noise must be a finite number >= 0, got {weak}")
    return {"weak_noise": weak, "depths": depths}


def parse_list(text: str, option: str, kind: Callable[[str], Any], what: str) -> list[Any]:
    """Comma-separated values of ``kind`` (``int``, ``float``); an empty item (``1,,2``, a
    trailing comma) or an empty list is refused, never skipped."""
    items = [v.strip() for v in str(text).split(",")]
    if not any(items):
        raise UsageError(f"{option} needs at least one value, got {text!r}")
    if "" in items:
        raise UsageError(
            f"{option} has an empty item in {text!r}; separate {what} by single commas"
        )
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise UsageError(f"{option} must be {what} separated by commas, got {text!r}") from None
