"""Singular-value spectrum of the embedding covariance (Eq. 1 of Jing et al. 2022) and collapse
metrics, for one or several embeddings files (.npy memory-mapped, .npz, .pt/.pth, .safetensors).

Each file is streamed in row chunks through a float64 accumulator, so files larger than memory
work. Metrics: collapsed dimensions (sigma_k < rel_tol * sigma_1 of the covariance), RankMe
(singular values of the raw N x d matrix), entropy effective rank and alpha-ReQ (of the covariance
eigenvalues), and the number of dimensions holding 90% and 99% of the variance.

A FILE may also be a training run directory or a dimcollapse checkpoint: its backbone then
embeds a split of the dataset it was trained on (--split, --space, --subset), so the spectrum of
the representation (Figs. 7b, 9) or of the embedding (Fig. 2) of a trained model is one command.

A model trained elsewhere: --model torchvision:NAME or timm:NAME with --weights FILE (a
torchvision state_dict, a .safetensors file, a Lightning .ckpt with a backbone. prefix, ...)
embeds a split of --dataset; its penultimate feature, or --layer's output, is the representation.

examples:
  dimcollapse spectrum emb.npy
  dimcollapse spectrum a.npy b.safetensors --key embeddings --plot spectra.png
  dimcollapse spectrum emb.npz --key z --normalize --json
  dimcollapse spectrum runs/directclr runs/simclr-none --space representation --plot fig9.png
  dimcollapse spectrum --model torchvision:resnet18 --weights r18.pth --dataset fashion-mnist --json
  dimcollapse spectrum --model torchvision:resnet18 --weights simclr.ckpt \
      --model torchvision:resnet18 --weights supervised.pth --dataset cifar10 --data-root data \
      --image-size 32 --plot compare.png
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

HELP = "singular-value spectrum and collapse metrics of embeddings files (Eq. 1)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dimcollapse.commands._models import add_foreign_options
    from dimcollapse.spectrum import DEFAULT_REL_TOL, PRECISIONS

    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="embeddings files (N x d), run directories or checkpoints",
    )
    parser.add_argument(
        "--key",
        default=None,
        help="array name inside .npz/.pt/.safetensors files (default: the only one)",
    )
    parser.add_argument(
        "--normalize",
        action="store_true",
        help="L2-normalise each row first (as the paper's spectrum.py does)",
    )
    parser.add_argument(
        "--rel-tol",
        type=float,
        default=DEFAULT_REL_TOL,
        help="a dimension is collapsed when sigma_k < REL_TOL * sigma_1",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="OUT.png",
        help="write log singular value against index, all files overlaid",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per file, one per line"
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=65536,
        help="rows read and accumulated at a time (memory: chunk + d^2)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="dtype of each chunk's outer product; auto: float64 (sums are always float64); "
        "float32 is about 2x faster on a CPU but puts RankMe about 0.2%% high",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device for the accumulation (cpu, cuda, cuda:1, ...)"
    )
    models = parser.add_argument_group("trained models (FILE is a run directory or checkpoint)")
    models.add_argument(
        "--split",
        choices=("train", "test"),
        default="test",
        help="which split of the run's dataset to embed",
    )
    models.add_argument(
        "--space",
        choices=("representation", "embedding"),
        default="representation",
        help="backbone output r (Figs. 7b, 9) or head output z (Fig. 2)",
    )
    models.add_argument(
        "--subset", type=int, default=None, help="embed a seeded random subset of this many images"
    )
    models.add_argument(
        "--data-root", default=None, help="dataset location, if not where the run was trained"
    )
    add_foreign_options(parser)


def _summary_text(rec: dict) -> str:
    sv = rec["singular_values"]
    alpha = rec["alpha_req"]
    lines = [
        f"{rec['file']}" + (f" [{rec['key']}]" if rec.get("key") else ""),
        f"  rows {rec['n']:,}  dim {rec['dim']}"
        + ("  (rows L2-normalised)" if rec["normalize"] else ""),
        f"  collapsed dimensions  {rec['collapsed_dims']} of {rec['dim']}"
        f"  (sigma_k < {rec['rel_tol']:g} x sigma_1)",
        f"  RankMe                {rec['rankme']:.2f}",
        f"  entropy rank          {rec['entropy_rank']:.2f}",
        f"  alpha-ReQ             {'n/a' if alpha is None else f'{alpha:.3f}'}",
        f"  dims for 90% / 99%    {rec['dims_90']} / {rec['dims_99']}",
        f"  sigma_1 .. sigma_d    {sv[0]:.4g} .. {sv[-1]:.4g}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from dimcollapse.embeddings import open_embeddings
    from dimcollapse.errors import UsageError
    from dimcollapse.fileio import check_output_suffix
    from dimcollapse.spectrum import SpectrumAccumulator

    if not (0.0 < args.rel_tol < 1.0) or math.isnan(args.rel_tol):
        raise UsageError(f"--rel-tol must be between 0 and 1, got {args.rel_tol}")
    if args.chunk_rows < 1:
        raise UsageError(f"--chunk-rows must be at least 1, got {args.chunk_rows}")
    if args.plot is not None:
        plot = check_output_suffix(args.plot, (".png", ".pdf", ".svg"))
        if plot.exists() and not args.force:
            raise UsageError(f"{plot}: already exists; pass --force to overwrite it")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UsageError(f"--device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")

    if args.subset is not None and args.subset < 2:
        raise UsageError(f"--subset must be at least 2, got {args.subset}")
    from dimcollapse.commands._models import load_foreign_models, load_images, wants_foreign

    foreign = wants_foreign(args)
    if not args.files and not foreign:
        raise UsageError("give embeddings files, run directories, or --model with --weights")
    # Validate every file before computing anything, so bad input fails fast.
    sources: list[Any] = [_model_source(f) or open_embeddings(f, args.key) for f in args.files]
    if foreign:
        images = load_images(args, args.split, args.subset)
        sources += [
            {"foreign": model, "path": label, "images": images}
            for label, model in load_foreign_models(args, images)
        ]
    records = []
    for src in sources:
        acc = SpectrumAccumulator(normalize=args.normalize, device=device, precision=args.precision)
        if isinstance(src, dict) and "foreign" in src:  # a model trained elsewhere
            from dimcollapse.probe import extract_features

            rows, _ = extract_features(src["foreign"], src["images"], device=device)
            chunks = rows.split(args.chunk_rows)
            name, key = src["path"], f"representation, {args.dataset} {args.split}"
        elif isinstance(src, dict):  # a trained model: embed its dataset's split
            chunks = _model_rows(src, args, device).split(args.chunk_rows)
            name, key = src["path"], f"{args.space}, {args.split}"
        else:
            chunks, name, key = src.chunks(args.chunk_rows), str(src.path), src.key
        for chunk in chunks:
            acc.update(chunk)
        if acc.nonfinite:
            raise UsageError(
                f"{name}: holds {acc.nonfinite:,} NaN or infinite values; "
                "refusing (clean them, or drop those rows)"
            )
        rec = {"file": name, "key": key, **acc.summary(args.rel_tol).to_dict()}
        records.append(rec)

    for rec in records:
        print(json.dumps(rec) if args.json else _summary_text(rec), flush=True)
    if args.plot is not None:
        from dimcollapse.plots import plot_spectra

        multi = len(records) > 1
        series = [
            (
                (rec["file"] if multi else "")
                + (" " if multi else "")
                + f"({rec['collapsed_dims']} of {rec['dim']} collapsed)",
                rec["singular_values"],
            )
            for rec in records
        ]
        title = "Embedding covariance spectrum" if not multi else "Covariance spectra"
        plot_spectra(series, args.plot, rel_tol=args.rel_tol, title=title)
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def _model_source(path: str) -> dict | None:
    """The loaded checkpoint if ``path`` is a run directory or a dimcollapse checkpoint."""
    from pathlib import Path

    from dimcollapse.checkpoint import find_checkpoint, load_checkpoint
    from dimcollapse.errors import UsageError

    p = Path(path)
    if p.is_dir():
        return {"path": str(p), "checkpoint": load_checkpoint(find_checkpoint(p))}
    if p.suffix.lower() in (".pt", ".pth") and p.is_file():
        try:
            return {"path": str(p), "checkpoint": load_checkpoint(p)}
        except UsageError:
            return None  # not a dimcollapse checkpoint: read it as an embeddings file
    return None


def _model_rows(src: dict, args: argparse.Namespace, device: Any) -> Any:
    """(N, D) features of the run's ``--split`` in ``--space``."""
    from dimcollapse.model import ModelSpec, build_model
    from dimcollapse.probe import extract_features, load_run_data

    ckpt = src["checkpoint"]
    model = build_model(ModelSpec(**ckpt["model_spec"]))
    model.load_state_dict(ckpt["model"])
    dataset = load_run_data(ckpt, args.split, data_root=args.data_root, subset=args.subset)
    x, _ = extract_features(model, dataset, space=args.space, device=device)
    return x
