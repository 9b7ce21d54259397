"""Reproduce the paper end to end and write a report (Markdown + self-contained HTML).

Pretrains every method of Table 1 (simclr-mlp, simclr-linear, simclr-none, directclr) and the
ablations of section 6.3 (fixed-lowrank, diagonal), at --scale full also a sweep of DirectCLR's
d0; probes each frozen backbone offline (linear and kNN; DirectCLR also on r[:d0]) against two
baselines (raw pixels, a random backbone); measures the representation and embedding spectra;
runs the theory lab; writes OUT/report.md, OUT/report.html and OUT/reproduce.json. With
--extras, beyond the paper, it also trains the non-contrastive methods on the same images and
reports their spectra and probes in a section of their own (the paper's sections unchanged).

Scales: quick (the demo, under 10 minutes on 2 CPU cores: a Fashion-MNIST subset, ResNet-18
x0.25 with a stem that leaves layer4 a 2x2 map, 4 seeds), cpu (at most 90 minutes on 2 cores:
every training image, 3 seeds, an interval for every Table 1 claim) and full (one GPU, or
several under torchrun: ResNet-18 x1 with the small-image stem, 100 epochs, d0 sweep); each
option below gives the scales' values. --epochs, --subset, --width and --seeds override them.
Probes: a fixed class-balanced labelled subset, the weight decay chosen on a validation split
of training images, the test images scored once. Each claim is judged holds / fails / inconclusive from the paired differences
between methods across seeds and their 95% interval, and again after Holm's adjustment
over the paper's claims. Rerunning the same command into the
same OUT reuses finished stages and resumes an interrupted run; OUT holding a report of other
settings is refused, and so is a second reproduce into an OUT that one is writing.

examples:
  dimcollapse reproduce --scale quick --out reports/quick
  dimcollapse reproduce --scale cpu --out reports/cpu            # in the background
  dimcollapse reproduce --scale cpu --extras --out reports/cpu   # add VICReg, Barlow Twins
  dimcollapse reproduce --scale quick --seeds 5 --out reports/quick5
  dimcollapse reproduce --epochs 1 --subset 512 --out /tmp/smoke
  dimcollapse reproduce --scale full --out reports/full
  dimcollapse reproduce --scale full --dataset cifar10 --data-root data/ --out reports/c10
  torchrun --nproc_per_node=4 -m dimcollapse reproduce --scale full --out reports/full
"""

from __future__ import annotations

import argparse
import contextlib

from dimcollapse.commands._options import add_device, add_quiet
from dimcollapse.data.formats import FORMATS
from dimcollapse.manifest.settings import ASKED
from dimcollapse.methods import RECIPES, methods_in_group
from dimcollapse.options import add_out, add_seed
from dimcollapse.outlock import folder_lock
from dimcollapse.reproduce.scales import ReproduceSettings, scale_values, shared_default

HELP = "run every experiment of the paper and write a report (Markdown + HTML)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_scale_options(parser)
    _add_run_options(parser)
    _add_testing_knobs(parser)


def _add_scale_options(parser: argparse.ArgumentParser) -> None:
    """The scale and the values of it that can be overridden."""
    dataset = shared_default("dataset")
    parser.add_argument(
        "--scale",
        choices=("quick", "cpu", "full"),
        default="quick",
        help="quick: minutes on a CPU (the demo); cpu: at most 90 minutes on 2 CPU cores, "
        "3 seeds; full: one or more GPUs",
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help=f"dataset name (default: {dataset}); see dimcollapse train --help%(default).0s",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help=f"dataset directory (default for {dataset}: "
        f"{FORMATS[dataset].default_dir})%(default).0s",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"pretraining epochs (default: the scale's, {scale_values('epochs')})%(default).0s",
    )
    parser.add_argument(
        "--subset",
        type=int,
        default=None,
        help="pretrain on this many training images (default: "
        f"{scale_values('subset')}); probes use the fixed labelled subset%(default).0s",
    )
    parser.add_argument(
        "--width",
        type=float,
        default=None,
        help=f"backbone width multiplier (default: {scale_values('width')})%(default).0s",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Where the runs go, on what, with which seeds and how many at once."""
    add_device(parser)
    add_seed(parser, help="first random seed (seeds are SEED, SEED+1, ...)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="K",
        help="train every method with K seeds; claims are judged from the paired differences "
        f"across seeds (default: the scale's, {scale_values('seeds')})%(default).0s",
    )
    parser.add_argument(
        "--extras",
        action="store_true",
        help="beyond the paper: also train the non-contrastive methods "
        f"({', '.join(RECIPES[m].label for m in methods_in_group('extra'))}) "
        "and set their spectra and probes beside SimCLR's and DirectCLR's",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel worker processes (default: one per CPU on a CPU, one on a GPU)%(default).0s",
    )
    add_quiet(parser, help="print nothing but errors%(default).0s")
    add_out(parser, "DIR", help="output directory%(default).0s", required=True)


def _add_testing_knobs(parser: argparse.ArgumentParser) -> None:
    """Options for the tests, hidden from --help."""
    for flag in (
        "--probe-epochs",
        "--test-subset",
        "--toy-steps",
        "--image-steps",
        "--batch-size",
        "--monitor-samples",
    ):
        parser.add_argument(flag, type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--d0-sweep", choices=("on", "off"), default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from dimcollapse.distributed import env_ranks  # torch-free --help: torch 1440 ms
    from dimcollapse.reproduce.execute import reproduce  # torch-free --help: torch 1440 ms

    asked = {name: getattr(args, name) for name in ASKED}  # every one has its option
    asked["d0_sweep"] = None if args.d0_sweep is None else args.d0_sweep == "on"
    settings = ReproduceSettings(
        out=args.out,
        scale=args.scale,
        device=args.device,
        extras=args.extras,
        jobs=args.jobs,
        verbose=not args.quiet,
        **asked,
    )
    first = (env_ranks() or (0, 0, 1))[0] == 0
    with folder_lock(args.out) if first else contextlib.nullcontext():  # one writer per OUT
        reproduce(settings)
    return 0
