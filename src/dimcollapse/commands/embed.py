"""Write a trained run's frozen vectors of one dataset split to a file that `spectrum` reads.

--space representation (default) writes the backbone output r (rep_dim-d; Figs. 7b and 9 of the
paper); --space embedding writes z = head(r), what the loss sees (Fig. 2). Images are
unaugmented; the dataset and its root come from the run's config unless --data-root is given.

Output: float32 N x D, key "embeddings" in .safetensors (plus "labels" with --labels), a plain
array in .npy (with --labels, the labels go to a sibling FILE.labels.npy: emb.npy ->
emb.labels.npy). Written atomically; an existing file is kept unless --force, and a second
embed into the same file while one is writing it is refused.

examples:
  dimcollapse embed runs/dclr --split test --out r.npy
  dimcollapse embed runs/dclr --split test --space embedding --out z.safetensors --labels
  dimcollapse spectrum r.npy z.safetensors --key embeddings --plot spectra.png
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from dimcollapse.choices import FEATURE_BATCH
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
    add_force,
    add_quiet,
    add_run_argument,
    add_run_data_root,
    add_space,
    add_split,
    refuse_data_options,
    refuse_data_options_for_run,
    refuse_overwrite,
    require_at_least,
)
from dimcollapse.errors import UsageError
from dimcollapse.fileio import atomic_path, check_output_file, check_output_suffix
from dimcollapse.options import add_out, add_seed
from dimcollapse.outlock import file_lock
from dimcollapse.progress import mode_for, reporting

HELP = "write a run's representation or embedding vectors of a split to .npy/.safetensors"

SUFFIXES = (".npy", ".safetensors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)
    add_split(parser, required=True, help="dataset split")
    add_space(parser, help="backbone output r, or the head's output z")
    add_out(parser, "FILE", help="output .npy or .safetensors", required=True)
    parser.add_argument(
        "--subset", type=int, default=None, metavar="N", help="a seeded random subset of N images"
    )
    add_seed(parser, help="seed of the subset")
    add_device(parser)
    add_autocast_precision(
        parser, help="autocast precision of the forward pass (the file is float32 either way)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=FEATURE_BATCH, help="images per forward pass"
    )
    add_run_data_root(parser)
    parser.add_argument(
        "--labels",
        action="store_true",
        help="also write the labels (safetensors key 'labels'; .npy: sibling FILE.labels.npy)",
    )
    add_force(parser, help="overwrite existing output files")
    add_quiet(parser, help=QUIET_HELP)
    add_foreign_options(parser)


def labels_path(out: Path) -> Path:
    """The sibling labels file of an .npy output: ``emb.npy`` -> ``emb.labels.npy``."""
    return out.with_name(out.stem + ".labels.npy")


def run(args: argparse.Namespace) -> int:
    # one embed per output file: checked (not there, or --force) and written under the lock
    with file_lock(args.out):
        return _embed(args)


def _embed(args: argparse.Namespace) -> int:
    """Check the outputs, load the model and images, write the vectors (and labels)."""
    # torch-free --help: torch 1440 ms
    from dimcollapse.probe import extract_features
    from dimcollapse.runtime import resolve_device

    targets = _output_targets(args)
    model, dataset, source, label = _load_model_and_images(args)
    with reporting(mode_for(args.quiet)):
        x, y = extract_features(
            model,
            dataset,
            space=args.space,
            device=resolve_device(args.device),
            batch_size=args.batch_size,
            precision=args.precision,
            label=label,
        )
    vectors = x.numpy().astype(np.float32, copy=False)
    labels = y.numpy().astype(np.int64, copy=False)
    _write(targets, vectors, labels, args)
    extra = ""
    if args.labels:
        extra = f" and labels ({targets[1]})" if len(targets) > 1 else " and labels"
    print(
        f"wrote {vectors.shape[0]:,} x {vectors.shape[1]} float32 {args.space} vectors of the "
        f"{source} to {targets[0]}{extra}",
        flush=True,
    )
    return 0


def _output_targets(args: argparse.Namespace) -> list[Path]:
    """The files to write (``--out``, and its labels file for .npy); refuse bad options."""
    out = check_output_suffix(args.out, SUFFIXES)
    check_output_file(out)
    targets = [out]
    if args.labels and out.suffix.lower() == ".npy":
        targets.append(labels_path(out))
    for target in targets:
        if target.is_dir():
            raise UsageError(f"{target}: is a directory")
        refuse_overwrite([target], args.force, "use --force to overwrite it")
    require_at_least(args, "subset", 1)
    require_at_least(args, "batch_size", 1)
    return targets


def _load_model_and_images(args: argparse.Namespace) -> tuple[Any, Any, str, str]:
    """The model to embed with, the images of its split, the words naming them and the model's
    name."""
    if not wants_foreign_instead_of_run(args):
        # torch-free --help: torch 1440 ms
        from dimcollapse.checkpoint import find_checkpoint, load_model
        from dimcollapse.probe import load_run_data

        model, ckpt = load_model(find_checkpoint(args.run))
        refuse_data_options_for_run(ckpt, args.data_root, args.test_file)
        dataset = load_run_data(
            ckpt, args.split, data_root=args.data_root, subset=args.subset, seed=args.seed
        )
        return model, dataset, f"{ckpt.config.get('dataset')} {args.split} split", str(args.run)
    if len(args.model) > 1:
        raise UsageError("embed writes one file: give one --model")
    refuse_data_options(args.dataset, args.data_root, args.test_file)
    dataset = load_images(args, args.split, args.subset, args.seed)
    ((label, model),) = load_foreign_models(args, dataset)
    if args.space != "representation":
        raise UsageError("--space embedding needs a dimcollapse run (a foreign model has r)")
    return model, dataset, f"{args.dataset} {args.split} split by {label}", label


def _write(targets: list[Path], vectors: Any, labels: Any, args: argparse.Namespace) -> None:
    """Write the vectors (and labels) atomically: all files appear, or none."""
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(t)) for t in targets]
        if targets[0].suffix.lower() == ".npy":
            with open(tmps[0], "wb") as fh:
                np.save(fh, vectors)
            if args.labels:
                with open(tmps[1], "wb") as fh:
                    np.save(fh, labels)
        else:
            arrays = {"embeddings": np.ascontiguousarray(vectors)}
            if args.labels:
                arrays["labels"] = np.ascontiguousarray(labels)
            save_file(arrays, str(tmps[0]), metadata={"space": args.space, "split": args.split})
