"""Command-line options shared by ``spectrum``, ``embed`` and ``probe`` for models trained
elsewhere (:mod:`dimcollapse.foreign`): ``--model``, ``--weights``, ``--prefix``, ``--select``,
``--stem-padding``, ``--pool``, ``--layer``, ``--image-size`` and ``--dataset``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dimcollapse.errors import UsageError

MODEL_HELP = (
    "a model trained elsewhere: torchvision:NAME (any torchvision classification model) or "
    "timm:NAME (needs dimcollapse[timm]), each with --weights; or hf:DIR, a Hugging Face "
    "save_pretrained folder (needs dimcollapse[hf]; no --weights); repeat to compare models"
    "%(default).0s"
)


def add_foreign_options(parser: argparse.ArgumentParser) -> None:
    """Add the foreign-model options, ``--dataset`` and ``--test-file`` among them."""
    group = parser.add_argument_group(
        "models trained elsewhere (instead of a dimcollapse run; see dimcollapse.foreign)"
    )
    group.add_argument(
        "--model", action="append", default=None, metavar="FAMILY:NAME", help=MODEL_HELP
    )
    group.add_argument(
        "--weights",
        action="append",
        default=None,
        metavar="FILE",
        help=".pt/.pth (weights_only), .safetensors or a Lightning .ckpt; one per "
        "torchvision:/timm: --model, in order%(default).0s",
    )
    group.add_argument(
        "--prefix",
        default=None,
        help="key prefix of the weights inside the file, e.g. 'backbone.' (default: found)"
        "%(default).0s",
    )
    group.add_argument(
        "--select",
        default=None,
        metavar="WHICH",
        help="which encoder of a checkpoint that holds two: a word of its name (teacher, "
        "student, encoder_k, ...) or query, key, base, momentum, ema (default: the one its "
        "method evaluates: teacher, query, base, EMA)%(default).0s",
    )
    group.add_argument(
        "--stem-padding",
        type=int,
        default=None,
        metavar="N",
        help="padding of a CIFAR stem's 3x3 conv1 (torchvision ResNets; the weights cannot show "
        "it; default: 2 for a solo-learn checkpoint, as solo-learn builds it, else 1)"
        "%(default).0s",
    )
    group.add_argument(
        "--pool",
        choices=("pooler", "cls", "mean"),
        default=None,
        help="hf: models' representation: pooler (pooler_output), cls (the CLS token) or mean "
        "(of the patch tokens) (default: pooler when the folder holds the pooler's weights, "
        "else cls when the model has a CLS token, else mean)%(default).0s",
    )
    group.add_argument(
        "--layer",
        default=None,
        metavar="NAME",
        help="read this named module's output (pooled if spatial) instead of the penultimate "
        "feature, e.g. layer3%(default).0s",
    )
    group.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize images to this size (default: the model's, 224 for most)%(default).0s",
    )
    group.add_argument(
        "--dataset",
        default="fashion-mnist",
        help="the images to embed (names as dimcollapse train --dataset; its files under "
        "--data-root, nothing downloaded)",
    )
    group.add_argument(
        "--test-file", default=None, help="npz datasets: the held-out .npz file%(default).0s"
    )


def wants_foreign(args: argparse.Namespace) -> bool:
    """Whether the command line names foreign models; checks that --model and --weights pair."""
    models, weights = args.model or [], args.weights or []
    if not models and not weights:
        return False
    need = [m for m in models if not m.startswith("hf:")]
    if len(need) != len(weights):
        hf = len(models) - len(need)
        also = f"; hf: models ({hf}) read their folder and take none" if hf else ""
        raise UsageError(
            f"give one --weights per --model ({len(need)} --model, {len(weights)} --weights{also})"
        )
    if args.image_size is not None and args.image_size < 8:
        raise UsageError(f"--image-size must be at least 8, got {args.image_size}")
    if getattr(args, "pool", None) is not None and len(need) == len(models):
        raise UsageError(f"--pool {args.pool}: applies only to hf: models, and none is given")
    if getattr(args, "stem_padding", None) is not None and not need:
        raise UsageError(
            f"--stem-padding {args.stem_padding}: applies only to torchvision ResNets with a "
            "CIFAR stem, and only hf: models are given"
        )
    return True


def wants_foreign_instead_of_run(args: argparse.Namespace) -> bool:
    """For commands that read one source: True for --model/--weights, False for the positional
    run directory or checkpoint; refuses both, or neither."""
    foreign = wants_foreign(args)
    if foreign == (args.run is not None):
        raise UsageError("give either a run directory or checkpoint, or --model with --weights")
    return foreign


def load_foreign_models(args: argparse.Namespace, dataset: Any) -> list[tuple[str, Any]]:
    """``(label, ForeignModel)`` for each ``--model``/``--weights`` pair, inputs matched to the
    dataset's normalisation. Every model is built and loaded before any is run."""
    from dimcollapse.foreign import load_foreign_model  # torch-free --help: torch 1440 ms

    out = []
    files = iter(args.weights or [])
    for spec in args.model:
        hf = spec.startswith("hf:")
        weights = None if hf else next(files)
        model = load_foreign_model(
            spec,
            weights,
            data_mean=dataset.mean,
            data_std=dataset.std,
            prefix=args.prefix,
            select=args.select,
            layer=args.layer,
            image_size=args.image_size,
            stem_padding=None if hf else getattr(args, "stem_padding", None),
            pool=getattr(args, "pool", None) if hf else None,
        )
        inside = [Path(weights).name] if weights is not None else []
        inside += [args.layer] if args.layer else []
        label = f"{spec} ({', '.join(inside)})" if inside else spec
        out.append((label, model))
    return out


def load_images(args: argparse.Namespace, split: str, subset: int | None, seed: int = 0) -> Any:
    """The ``split`` of ``--dataset`` under ``--data-root``, optionally a seeded subset."""
    from dimcollapse.data.datasets import load_dataset  # torch-free --help: torch 1440 ms

    return load_dataset(
        args.dataset,
        split,
        root=args.data_root,
        subset=subset,
        seed=seed,
        test_file=getattr(args, "test_file", None),
        can_download=False,
    )
