"""Write a trained run's frozen vectors of one dataset split to a file that `spectrum` reads.

--space representation (default) writes the backbone output r (rep_dim-d; Figs. 7b and 9 of the
paper); --space embedding writes z = head(r), what the loss sees (Fig. 2). Images are
unaugmented; the dataset and its root come from the run's config unless --data-root is given.

Output: float32 N x D, key "embeddings" in .safetensors (plus "labels" with --labels), a plain
array in .npy (with --labels, the labels go to a sibling FILE.labels.npy: emb.npy ->
emb.labels.npy). Written atomically; an existing file is kept unless --force.

examples:
  dimcollapse embed runs/dclr --split test --out r.npy
  dimcollapse embed runs/dclr --split test --space embedding --out z.safetensors --labels
  dimcollapse spectrum r.npy z.safetensors --key embeddings --plot spectra.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a run's representation or embedding vectors of a split to .npy/.safetensors"

SUFFIXES = (".npy", ".safetensors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dimcollapse.commands._models import add_foreign_options

    parser.add_argument(
        "run",
        nargs="?",
        metavar="RUN_OR_CHECKPOINT",
        help="run directory or checkpoint file (or --model with --weights)",
    )
    parser.add_argument("--split", choices=("train", "test"), required=True, help="dataset split")
    parser.add_argument(
        "--space",
        choices=("representation", "embedding"),
        default="representation",
        help="backbone output r, or the head's output z",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="output .npy or .safetensors")
    parser.add_argument(
        "--subset", type=int, default=None, metavar="N", help="a seeded random subset of N images"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16", "auto"),
        default="fp32",
        help="autocast precision of the forward pass (the file is float32 either way)",
    )
    parser.add_argument("--batch-size", type=int, default=512, help="images per forward pass")
    parser.add_argument(
        "--data-root",
        default=None,
        help="dataset directory or .npz file; None: the one in the run's config",
    )
    parser.add_argument(
        "--labels",
        action="store_true",
        help="also write the labels (safetensors key 'labels'; .npy: sibling FILE.labels.npy)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    add_foreign_options(parser)


def labels_path(out: Path) -> Path:
    """The sibling labels file of an .npy output: ``emb.npy`` -> ``emb.labels.npy``."""
    return out.with_name(out.stem + ".labels.npy")


def run(args: argparse.Namespace) -> int:
    from dimcollapse.errors import UsageError
    from dimcollapse.fileio import check_output_suffix

    out = check_output_suffix(args.out, SUFFIXES)
    suffix = out.suffix.lower()
    targets = [out]
    if args.labels and suffix == ".npy":
        targets.append(labels_path(out))
    for target in targets:
        if target.is_dir():
            raise UsageError(f"{target}: is a directory")
        if target.exists() and not args.force:
            raise UsageError(f"{target}: already exists; use --force to overwrite it")
    if args.subset is not None and args.subset < 1:
        raise UsageError(f"--subset must be at least 1, got {args.subset}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")

    import contextlib

    import numpy as np

    from dimcollapse.commands._models import load_foreign_models, load_images, wants_foreign
    from dimcollapse.fileio import atomic_path
    from dimcollapse.probe import extract_features
    from dimcollapse.runtime import resolve_device

    foreign = wants_foreign(args)
    if foreign == (args.run is not None):
        raise UsageError("give either a run directory or checkpoint, or --model with --weights")
    if foreign and len(args.model) > 1:
        raise UsageError("embed writes one file: give one --model")
    if foreign:
        dataset = load_images(args, args.split, args.subset, args.seed)
        ((label, model),) = load_foreign_models(args, dataset)
        if args.space != "representation":
            raise UsageError("--space embedding needs a dimcollapse run (a foreign model has r)")
        source = f"{args.dataset} {args.split} split by {label}"
    else:
        from dimcollapse.checkpoint import find_checkpoint, load_model
        from dimcollapse.probe import load_run_data

        model, ckpt = load_model(find_checkpoint(args.run))
        dataset = load_run_data(
            ckpt, args.split, data_root=args.data_root, subset=args.subset, seed=args.seed
        )
        source = f"{ckpt.get('config', {}).get('dataset')} {args.split} split"
    device = resolve_device(args.device)
    x, y = extract_features(
        model,
        dataset,
        space=args.space,
        device=device,
        batch_size=args.batch_size,
        precision=args.precision,
    )
    vectors = x.numpy().astype(np.float32, copy=False)
    labels = y.numpy().astype(np.int64, copy=False)

    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(t)) for t in targets]
        if suffix == ".npy":
            with open(tmps[0], "wb") as fh:
                np.save(fh, vectors)
            if args.labels:
                with open(tmps[1], "wb") as fh:
                    np.save(fh, labels)
        else:
            from safetensors.numpy import save_file

            arrays = {"embeddings": np.ascontiguousarray(vectors)}
            if args.labels:
                arrays["labels"] = np.ascontiguousarray(labels)
            save_file(arrays, str(tmps[0]), metadata={"space": args.space, "split": args.split})

    extra = ""
    if args.labels:
        extra = f" and labels ({targets[1]})" if len(targets) > 1 else " and labels"
    print(
        f"wrote {vectors.shape[0]:,} x {vectors.shape[1]} float32 {args.space} vectors of the "
        f"{source} to {out}{extra}",
        flush=True,
    )
    return 0
