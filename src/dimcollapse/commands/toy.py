"""The theory lab: train the linear toy models of sections 4 and 5 and check the paper's claims.

Models: L bias-free d x d linear layers (ReLU between them in `relu`), Gaussian inputs, two views
made by additive Gaussian noise, InfoNCE of Eq. 2 (or its normalised form, --loss cosine), plain
SGD. Every --track-every steps the singular values of each W_l, the embedding covariance
spectrum (Eq. 1, on fresh samples) and the alignment matrices V_{l+1}^T U_l are recorded; at the
end the closed forms are checked in float64: Lemma 2 (X of Eq. 6 = Sigma0_hat - Sigma1_hat),
Lemmas 1/3 (closed-form gradients against autograd), the eigenvalues of X (Theorem 1), the
alignment (Theorem 2) and Eq. 11 (Theorem 3).

scenarios:
  strong-aug  section 4: one layer, strong vs weak noise on the last half of the dimensions
  two-layer   section 5, Figs. 4-5: alignment heatmap, singular value trajectories
  depth       Fig. 6a: embedding spectra for L = 1..4
  relu        Fig. 6b: L = 2 with and without ReLU
  all         every scenario (trained together) plus one combined figure

Each writes OUT/<scenario>.png and OUT/<scenario>.json; --json prints one JSON object per training
run on stdout. `dimcollapse toy SCENARIO --help` lists a scenario's defaults.

examples:
  dimcollapse toy strong-aug
  dimcollapse toy two-layer --steps 20000 --out figs
  dimcollapse toy depth --depths 1,2,3,4,5,6 --json
  dimcollapse toy all --seed 3 --out toy-output
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from dimcollapse.cli import ArgumentParser, HelpFormatter
from dimcollapse.commands._options import (
    OptionHolder,
    add_json,
    add_out,
    add_rel_tol,
    add_seed,
    add_threads,
    check_rel_tol,
    parse_list,
    require_at_least,
)
from dimcollapse.errors import UsageError
from dimcollapse.fileio import check_output_dir, removed_on_failure

HELP = "linear toy models of sections 4-5: strong augmentation, alignment, depth, ReLU"

_SCENARIO_HELP = {
    "strong-aug": "section 4 (Theorem 1): one layer, strong vs weak augmentation",
    "two-layer": "section 5 (Theorems 2-3, Figs. 4-5): alignment and singular value dynamics",
    "depth": "Fig. 6a: more layers, more collapsed dimensions",
    "relu": "Fig. 6b: two layers with and without ReLU",
    "all": "every scenario, trained together, plus one combined figure",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dimcollapse.toy.scenarios import SCENARIO_NAMES, SCENARIOS

    sub = parser.add_subparsers(
        dest="scenario", metavar="SCENARIO", parser_class=ArgumentParser, required=True
    )
    for name in (*SCENARIO_NAMES, "all"):
        sc = SCENARIOS.get(name)
        desc = _SCENARIO_HELP[name]
        if sc is not None:
            desc = f"{sc.title} ({sc.paper})."
        p = sub.add_parser(
            name, help=_SCENARIO_HELP[name], description=desc, formatter_class=HelpFormatter
        )
        _add_common(p, sc)
        if sc is not None:
            _add_specific(p, sc)


def _add_common(p: argparse.ArgumentParser, sc: Any) -> None:
    """Options every scenario takes; their defaults are the scenario's (``all``: each one's)."""
    _add_output_options(p.add_argument_group("output"), sc)
    training = p.add_argument_group("model and training")
    _add_training_options(training, sc)
    _add_init_options(training, sc)
    _add_tracking_options(p.add_argument_group("tracking"), sc)


def _default(sc: Any, field: str) -> Any:
    """The scenario's value of a ToyConfig field; under ``all`` (no scenario) each run's own."""
    return argparse.SUPPRESS if sc is None else getattr(sc.config, field)


def _each(sc: Any) -> str:
    """What the help of a scenario-defaulted option adds under ``all``."""
    return " (default: each scenario's own)" if sc is None else ""


def _add_output_options(group: OptionHolder, sc: Any) -> None:
    from dimcollapse.spectrum import DEFAULT_REL_TOL

    add_out(group, "DIR", help="where files go", default="toy-output")
    add_json(group, help="print one JSON object per run")
    group.add_argument("--no-figures", action="store_true", help="write the JSON files only")
    tol = DEFAULT_REL_TOL if sc is None or sc.rel_tol is None else sc.rel_tol
    add_rel_tol(
        group,
        argparse.SUPPRESS if sc is None else tol,
        help="a dimension is collapsed when sigma_k < REL_TOL * sigma_1 of the Eq. 1 covariance"
        + _each(sc),
    )


def _add_training_options(group: OptionHolder, sc: Any) -> None:
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


def _add_init_options(group: OptionHolder, sc: Any) -> None:
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
    add_seed(group, help="the runs' seed" + each, default=_default(sc, "seed"))
    group.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default=_default(sc, "dtype"),
        help="training precision (the analytics are always float64)" + each,
    )


def _add_tracking_options(group: OptionHolder, sc: Any) -> None:
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
        help="torch CPU threads while this command runs (the toy's matrices are too small "
        "to gain from more)",
    )


def _add_specific(p: argparse.ArgumentParser, sc: Any) -> None:
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
_CONFIG_FIELDS = (
    "dim", "steps", "lr", "batch_size", "loss", "temperature", "init", "init_decay",
    "init_scale", "seed", "dtype", "track_every", "eval_samples", "noise", "layers",
)  # fmt: skip


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """ToyConfig fields from the parsed options (only those present)."""
    out = {field: getattr(args, field) for field in _CONFIG_FIELDS if hasattr(args, field)}
    dim = out.get("dim", 16)
    if dim is not None and dim < 2:  # before the options whose length depends on it
        raise UsageError(f"--dim must be at least 2, got {dim}")
    if hasattr(args, "noise_dims"):
        out["noise_dims"] = _parse_noise_dims(args.noise_dims, dim)
    if hasattr(args, "input_var"):
        out["input_cov"] = _parse_input_var(args.input_var, dim)
    return out


def _parse_noise_dims(text: str, dim: int) -> int | None:
    word = str(text).strip().lower()
    if word == "all":
        return None
    if word == "half":
        return dim // 2
    try:
        k = int(word)
    except ValueError:
        raise UsageError(f"--noise-dims must be 'all', 'half' or a number, got {text!r}") from None
    if k < 0 or k > dim:
        raise UsageError(f"--noise-dims must be between 0 and --dim ({dim}), got {k}")
    return k


def _parse_input_var(text: str, dim: int) -> tuple[float, ...] | None:
    values = parse_list(text, "--input-var", float, "numbers")
    if len(values) == 1:
        values = values * dim
    if len(values) != dim:
        raise UsageError(f"--input-var needs 1 or --dim ({dim}) values, got {len(values)}")
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise UsageError("--input-var values must be finite and >= 0")
    if all(v == 1.0 for v in values):
        return None
    return tuple(values)


def _parse_depths(text: str) -> list[int]:
    return parse_list(text, "--depths", int, "integers")


def _clean(obj: Any) -> Any:
    """JSON-safe: non-finite floats become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _fmt(value: Any, spec: str = ".2g") -> str:
    return "n/a" if value is None else format(value, spec)


def _describe(rec: dict[str, Any]) -> str:
    noise_dims = rec["noise_dims"]
    where = "all dims" if noise_dims == rec["dim"] else f"last {noise_dims} dims"
    parts = [
        f"{rec['scenario']:<10} {rec['run']:<7} L={rec['layers']}{' relu' if rec['relu'] else ''}",
        f"noise {rec['noise']:g} on {where}",
        f"collapsed {rec['collapsed_dims']}/{rec['dim']} (init {rec['collapsed_dims_init']})",
        f"min eig X {_fmt(rec['x_min_eigenvalue'], '.3g')}",
        f"Lemma 2 err {_fmt(rec['lemma2_max_abs_err'])}",
        f"grad rel err {_fmt(rec['gradient_rel_err'])}",
    ]
    if "alignment_diag_mean" in rec:
        parts.append(
            f"|diag A| {_fmt(rec['alignment_diag_mean'], '.3f')}"
            f" (weighted {_fmt(rec['alignment_weighted_diag_mean'], '.3f')})"
        )
    if "eq11_rel_err" in rec:
        parts.append(f"Eq. 11 rel err {_fmt(rec['eq11_rel_err'], '.3g')}")
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    from dimcollapse.runtime import torch_threads
    from dimcollapse.toy.scenario_runs import run_scenarios
    from dimcollapse.toy.scenarios import SCENARIO_NAMES

    names = list(SCENARIO_NAMES) if args.scenario == "all" else [args.scenario]
    settings = _check_options(args)
    t0 = time.perf_counter()
    with torch_threads(args.threads):
        results = run_scenarios(names, **settings)
    train_s = time.perf_counter() - t0
    with removed_on_failure(args.out):  # a failed write leaves none of this run's files
        written = _write_outputs(results, args)
    total_s = time.perf_counter() - t0
    for res in results:
        for rec in res.records():
            print(json.dumps(_clean(rec), allow_nan=False) if args.json else _describe(rec))
    _warn_about_nan_checks(results)
    note = sys.stderr if args.json else sys.stdout
    print(
        f"trained in {train_s:.1f} s, {total_s:.1f} s in all; wrote "
        + ", ".join(str(p) for p in written),
        file=note,
    )
    return 0


def _check_options(args: argparse.Namespace) -> dict[str, Any]:
    """Refuse bad options before training; return ``run_scenarios``' keyword arguments."""
    overrides = _overrides(args)
    rel_tol = getattr(args, "rel_tol", None)
    check_rel_tol(rel_tol)
    require_at_least(args, "threads", 1)
    depths = _parse_depths(args.depths) if hasattr(args, "depths") else None
    weak = getattr(args, "weak_noise", None)
    if weak is not None and not (math.isfinite(weak) and weak >= 0):
        raise UsageError(f"--weak-noise must be a finite number >= 0, got {weak}")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory")
    check_output_dir(out_dir)
    return {"rel_tol": rel_tol, "weak_noise": weak, "depths": depths, **overrides}


def _write_outputs(results: list[Any], args: argparse.Namespace) -> list[Path]:
    """Each scenario's JSON and figure in ``--out`` (under ``all`` also the combined ones)."""
    from dimcollapse.fileio import write_json_atomic

    out_dir = Path(args.out)
    written: list[Path] = []
    for res in results:
        json_path = out_dir / f"{res.name}.json"
        write_json_atomic(json_path, _clean(res.to_dict()))
        written.append(json_path)
    if args.scenario == "all":
        path = out_dir / "all.json"
        write_json_atomic(path, _clean({"scenarios": [r.to_dict() for r in results]}))
        written.append(path)
    if not args.no_figures:
        from dimcollapse.toy.figures import combined_figure, save_figure, scenario_figure

        for res in results:
            path = out_dir / f"{res.name}.png"
            save_figure(scenario_figure(res), path)
            written.append(path)
        if args.scenario == "all":
            path = out_dir / "all.png"
            save_figure(combined_figure(results), path)
            written.append(path)
    return written


#: The numerical checks of the paper's statements in each record (``--json`` keys).
CHECKS = (
    "lemma2_max_abs_err",
    "gradient_rel_err",
    "x_min_eigenvalue",
    "alignment_diag_mean",
    "eq11_rel_err",
)


def _warn_about_nan_checks(results: list[Any]) -> None:
    """One ``warning:`` line on stderr per run whose checks came out NaN or infinite: the
    training diverged (or a check could not be computed), so those numbers say nothing."""
    for res in results:
        for rec in res.records():
            bad = [k for k in CHECKS if isinstance(rec.get(k), float) and not math.isfinite(rec[k])]
            if bad:
                name = f"{rec.get('scenario')} {rec.get('run', '')}".strip()
                print(
                    f"warning: {name}: {', '.join(bad)} came out {rec[bad[0]]} (written as null): "
                    f"the training likely diverged (lr {rec.get('lr')}); lower --lr",
                    file=sys.stderr,
                    flush=True,
                )
