"""Offline linear and kNN probe of a trained run's frozen representation (section 6).

Trains a fresh linear classifier on the frozen backbone's features with the paper code's recipe
(SGD momentum 0.9, lr 0.1, weight decay 1e-6, batch 256, cosine over 100 epochs; features
standardised with the train set's statistics) and a cosine kNN with exp(sim/0.07)-weighted
votes, on the dataset the run was trained on. This is the offline probe; the online probe
trained during pretraining is ``online_probe_top1`` in the run's metrics.jsonl.

--features subvector probes exactly r[:, :d0], the part DirectCLR's loss sees (section 6.3).
The result is saved as probe-<features>.json in the run directory (for a checkpoint file: its
run directory when it sits in RUN/checkpoints/, else beside the file).

examples:
  dimcollapse probe runs/dclr
  dimcollapse probe runs/dclr --features subvector --json
  dimcollapse probe runs/dclr/checkpoints/last.pt --epochs 20 --train-subset 10000 --no-knn
  dimcollapse probe runs/dclr --augment --device cuda
"""

from __future__ import annotations

import argparse
import json
import time

from dimcollapse.choices import FEATURE_SETS
from dimcollapse.commands._models import (
    add_foreign_options,
    load_foreign_models,
    load_images,
    wants_foreign_instead_of_run,
)
from dimcollapse.commands._options import (
    QUIET_HELP,
    add_autocast_precision,
    add_device,
    add_quiet,
    add_run_argument,
    add_run_data_root,
    refuse_data_options,
    refuse_data_options_for_run,
    require_at_least,
)
from dimcollapse.errors import UsageError
from dimcollapse.fileio import write_json_atomic
from dimcollapse.options import add_json, add_seed
from dimcollapse.progress import mode_for, reporting

HELP = "offline linear and kNN probe of a trained run (full r or DirectCLR's r[:, :d0])"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_what_to_probe(parser)
    add_json(parser, help="print one JSON object")
    add_quiet(parser, help=QUIET_HELP)
    add_device(parser)
    add_autocast_precision(parser, help="autocast precision of the feature extraction")
    _add_images(parser)
    _add_recipe(parser)
    add_foreign_options(parser)


def _add_what_to_probe(parser: argparse.ArgumentParser) -> None:
    """The run, which of its features, and which probes."""
    add_run_argument(parser)
    parser.add_argument(
        "--features",
        choices=FEATURE_SETS,
        default="full",
        help="full representation r, or the sub-vector r[:, :d0] (directclr, fixed-lowrank)",
    )
    parser.add_argument(
        "--knn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the kNN probe (k = 20 and 200)",
    )
    parser.add_argument("--epochs", type=int, default=100, help="linear probe epochs")


def _add_images(parser: argparse.ArgumentParser) -> None:
    """Where the images are and how many of them are used."""
    add_run_data_root(parser)
    parser.add_argument(
        "--train-subset", type=int, default=None, metavar="N", help="probe on N train images"
    )
    parser.add_argument(
        "--test-subset", type=int, default=None, metavar="N", help="evaluate on N test images"
    )


def _add_recipe(parser: argparse.ArgumentParser) -> None:
    """Departures from the linear probe's recipe, its data loading and its seed."""
    parser.add_argument(
        "--augment",
        action="store_true",
        help="train on features of randomly cropped and flipped train images, fresh each epoch "
        "(the paper's linear_probe.py; slower)",
    )
    parser.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="use raw features, exactly as the paper's recipe (may diverge at lr 0.1)",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (image folders)")
    add_seed(parser, help="seed of the probe and of the subsets")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _summary_text(rec: dict, saved: str) -> str:
    feat = (
        f"sub-vector r[:, :{rec['d0']}]"
        if rec["features"] == "subvector"
        else "full representation r"
    )
    lines = [
        f"offline probe of {rec['checkpoint']} ({rec['method']} on {rec['dataset']}, "
        f"epoch {rec['checkpoint_epoch']})",
        f"  features              {feat}, {rec['dim']}-d",
        f"  linear top-1 / top-5  {_fmt(rec['top1'])} / {_fmt(rec['top5'])}"
        f"  ({rec['epochs']} epochs"
        + (", augmented" if rec["augment"] else "")
        + (", standardised" if rec["standardize"] else ", raw features")
        + ")",
    ]
    if rec.get("knn_top1_k20") is not None:
        lines.append(
            f"  kNN top-1             k=20 {_fmt(rec['knn_top1_k20'])}  "
            f"k=200 {_fmt(rec['knn_top1_k200'])}  (cosine, exp(sim/0.07) votes)"
        )
    if rec.get("online_probe_top1") is not None:
        lines.append(
            f"  online probe top-1    {_fmt(rec['online_probe_top1'])}  (during training, "
            "held-out subset; for comparison)"
        )
    lines += [
        f"  images                {rec['train_images']:,} train, {rec['test_images']:,} test;"
        f" {rec['seconds']:.1f} s on {rec['device']}",
        f"  saved to {saved}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    with reporting(mode_for(args.quiet or args.json)):
        return _probe(args)


def _probe(args: argparse.Namespace) -> int:
    """The probe of a run, or of each --model (:func:`_probe_foreign`); prints the result."""
    from dimcollapse.probe import probe_run, result_dir  # torch-free --help: torch 1440 ms

    for name in ("epochs", "train_subset", "test_subset"):
        require_at_least(args, name, 1)
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    if wants_foreign_instead_of_run(args):
        return _probe_foreign(args)
    if args.data_root is not None or args.test_file is not None:
        # torch-free --help: torch 1440 ms
        from dimcollapse.checkpoint import find_checkpoint, load_checkpoint

        ckpt = load_checkpoint(find_checkpoint(args.run))
        refuse_data_options_for_run(ckpt, args.data_root, args.test_file)
    result = probe_run(
        args.run,
        features=args.features,
        knn=args.knn,
        epochs=args.epochs,
        device=args.device,
        data_root=args.data_root,
        train_subset=args.train_subset,
        test_subset=args.test_subset,
        augment=args.augment,
        seed=args.seed,
        precision=args.precision,
        workers=args.workers,
        standardize=args.standardize,
    )
    out = result_dir(args.run) / f"probe-{args.features}.json"
    write_json_atomic(out, result)
    print(json.dumps(result) if args.json else _summary_text(result, str(out)), flush=True)
    return 0


def _probe_foreign(args: argparse.Namespace) -> int:
    """Offline linear (and kNN) probe of each --model's representation on --dataset."""
    # torch-free --help: torch 1440 ms
    from dimcollapse.probe import extract_features, probe_features
    from dimcollapse.runtime import resolve_device

    if args.features != "full" or args.augment:
        raise UsageError("--features subvector and --augment need a dimcollapse run")
    refuse_data_options(args.dataset, args.data_root, args.test_file)
    device = resolve_device(args.device)
    train_set = load_images(args, "train", args.train_subset, args.seed)
    test_set = load_images(args, "test", args.test_subset, args.seed)
    for label, model in load_foreign_models(args, train_set):
        t0 = time.perf_counter()
        common = dict(device=device, precision=args.precision)
        train_x, train_y = extract_features(model, train_set, label=f"{label} (train)", **common)
        test_x, test_y = extract_features(model, test_set, label=f"{label} (test)", **common)
        result = probe_features(
            train_x,
            train_y,
            test_x,
            test_y,
            num_classes=int(train_set.num_classes),
            epochs=args.epochs,
            knn=args.knn,
            seed=args.seed,
            device=device,
            standardize=args.standardize,
        )
        result.update(
            {"model": label, "dataset": args.dataset, "seconds": time.perf_counter() - t0}
        )
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        knn = ""
        if result.get("knn_top1_k20") is not None:
            knn = f", kNN k=20 {_fmt(result['knn_top1_k20'])}"
        print(
            f"offline probe of {label} on {args.dataset}: {result['dim']}-d r, linear top-1 "
            f"{_fmt(result['top1'])}{knn} ({result['train_images']:,} train, "
            f"{result['test_images']:,} test images, {result['seconds']:.1f} s)",
            flush=True,
        )
    return 0
