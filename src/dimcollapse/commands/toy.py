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
  images      sections 4-5 on real images: linear encoders on a dataset's pixels (depth, ReLU,
              augmentation strength, additive noise), spectra at initialisation and at the end

Each writes OUT/<scenario>.png and OUT/<scenario>.json; --json prints one JSON object per training
run on stdout. A run whose checks come out NaN or infinite diverged: one error: line (exit status
2) and nothing is written. One toy command writes into an OUT at a time. `dimcollapse toy SCENARIO --help` lists a scenario's defaults.

examples:
  dimcollapse toy strong-aug
  dimcollapse toy two-layer --steps 20000 --out figs
  dimcollapse toy depth --depths 1,2,3,4,5,6 --json
  dimcollapse toy all --seed 3 --out toy-output
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from dimcollapse.cli import ArgumentParser, HelpFormatter
from dimcollapse.commands._options import check_rel_tol, require_at_least
from dimcollapse.errors import UsageError
from dimcollapse.fileio import check_output_dir, removed_on_failure, write_json_atomic
from dimcollapse.options import add_json, add_out, add_seed, add_threads
from dimcollapse.outlock import folder_lock
from dimcollapse.toy.options import (
    CHOICES,
    SCENARIO_HELP,
    add_scenario_options,
    config_overrides,
    scenario_description,
    scenario_settings,
)
from dimcollapse.toy.scenarios import SCENARIO_NAMES

HELP = "linear toy models of sections 4-5: strong augmentation, alignment, depth, ReLU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="scenario", metavar="SCENARIO", parser_class=ArgumentParser, required=True
    )
    for name in CHOICES:
        p = sub.add_parser(
            name,
            help=SCENARIO_HELP[name],
            description=scenario_description(name),
            formatter_class=HelpFormatter,
        )
        add_scenario_options(p, name)
    images = sub.add_parser(
        "images",
        help="sections 4-5 on real images: linear encoders on a dataset's pixels",
        description=IMAGES_DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    _add_image_options(images)


IMAGES_DESCRIPTION = """Sections 4-5 on real images: bias-free linear encoders (784 -> 128 -> ... on Fashion-MNIST)
trained with InfoNCE (temperature 0.1, row-normalised z, plain SGD) on a dataset's pixels, two
views per image made by the real augmentations at a strength or by additive Gaussian noise.
Sweeps: depth 1-3 (augmentations and noise), two layers with a ReLU, augmentation strength at
one layer. Each encoder's embedding spectrum of held-out test images is measured at
initialisation and at the end; collapse is counted by the cliff rule with the counts under
thresholds beside it. Writes OUT/images.json (every record) and OUT/images.png; one line per
encoder (mean over seeds) on stdout, or with --json one JSON object per encoder and seed.

examples:
  dimcollapse toy images --seeds 3
  dimcollapse toy images --steps 3000 --seeds 5 --out figs
"""


def _add_image_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion-mnist", help="dataset name")
    p.add_argument("--data-root", default=None, help="dataset directory (none: its record's)")
    p.add_argument("--steps", type=int, default=1000, help="SGD steps of 256 pairs per encoder")  # fmt: skip
    p.add_argument("--seeds", type=int, default=3, help="seeds SEED, SEED+1, ...")  # fmt: skip
    add_seed(p, help="first seed")
    add_threads(p, 1, help="torch threads")
    add_out(p, "DIR", help="where files go", default="toy-images")
    add_json(p, help="one JSON object per encoder and seed on stdout")


def run(args: argparse.Namespace) -> int:
    # torch-free --help: torch 1440 ms
    from dimcollapse.runtime import torch_threads
    from dimcollapse.toy.output import describe, divergence_error, json_safe, write_results
    from dimcollapse.toy.scenario_runs import run_scenarios

    if args.scenario == "images":
        return _run_images(args)
    names = list(SCENARIO_NAMES) if args.scenario == "all" else [args.scenario]
    settings = _check_options(args)
    t0 = time.perf_counter()
    with folder_lock(args.out) as lock:  # one writer per folder, from the start
        with torch_threads(args.threads):
            results = run_scenarios(names, **settings)
        train_s = time.perf_counter() - t0
        diverged = divergence_error(results)
        if diverged:
            raise UsageError(diverged)
        # a failed write leaves none of this run's files
        with removed_on_failure(args.out, created=lock.created):
            written = write_results(
                results,
                Path(args.out),
                combined=args.scenario == "all",
                figures=not args.no_figures,
            )
    total_s = time.perf_counter() - t0
    for res in results:
        for rec in res.records():
            print(json.dumps(json_safe(rec), allow_nan=False) if args.json else describe(rec))
    note = sys.stderr if args.json else sys.stdout
    print(
        f"trained in {train_s:.1f} s, {total_s:.1f} s in all; wrote "
        + ", ".join(str(p) for p in written),
        file=note,
    )
    return 0


def _check_options(args: argparse.Namespace) -> dict[str, Any]:
    """Refuse bad options before training; return ``run_scenarios``' keyword arguments."""
    overrides = config_overrides(args)
    rel_tol = getattr(args, "rel_tol", None)
    check_rel_tol(rel_tol)
    require_at_least(args, "threads", 1)
    scenario = scenario_settings(args)
    check_output_dir(args.out)  # a file, a special file system, a name too long
    return {"rel_tol": rel_tol, **scenario, **overrides}


def _run_images(args: argparse.Namespace) -> int:
    """``toy images``: every sweep of :mod:`dimcollapse.toy.images` at each seed."""
    # torch-free --help: torch 1440 ms
    from dimcollapse.report.image_lab import figure_image_lab, table_rows
    from dimcollapse.runtime import torch_threads
    from dimcollapse.toy.images import aggregate_images, run_image_lab_on

    for name, low in (("steps", 1), ("seeds", 1), ("threads", 1)):
        require_at_least(args, name, low)
    check_output_dir(args.out)
    seeds = [args.seed + i for i in range(args.seeds)]
    t0 = time.perf_counter()
    with folder_lock(args.out) as lock:
        with torch_threads(args.threads):
            results = [
                run_image_lab_on(args.dataset, root=args.data_root, seed=s, steps=args.steps)
                for s in seeds
            ]
        images = aggregate_images(results, args.steps)
        if not images:
            raise UsageError(f"{args.dataset} is not held in memory: the image lab needs it")
        out = Path(args.out)
        with removed_on_failure(args.out, created=lock.created):
            write_json_atomic(out / "images.json", images)
            figure_image_lab(images, out / "images.png")
    for per_seed in images["records"]:
        for rec in per_seed if args.json else []:
            print(json.dumps(rec))
    if not args.json:
        for row in table_rows(images):
            print(f"{row[0]}: collapsed {row[1]}, dead {row[2]}, largest drop {row[3]} decades; "
                  f"under 1e-4 / 1e-6 / 1e-8: {row[4]} / {row[5]} / {row[6]}")  # fmt: skip
    note = sys.stderr if args.json else sys.stdout
    total = time.perf_counter() - t0
    print(f"{len(seeds)} seed(s) in {total:.1f} s; wrote {out / 'images.json'}, "
          f"{out / 'images.png'}", file=note)  # fmt: skip
    return 0
