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
import contextlib
import json
from pathlib import Path
from typing import Any

from dimcollapse.choices import DEFAULT_REL_TOL, SPECTRUM_PRECISIONS
from dimcollapse.commands._models import (
    add_foreign_options,
    load_foreign_models,
    load_images,
    wants_foreign,
)
from dimcollapse.commands._options import (
    QUIET_HELP,
    add_device,
    add_force,
    add_quiet,
    add_run_data_root,
    add_space,
    add_split,
    check_rel_tol,
    refuse_data_options,
    refuse_data_options_for_run,
    refuse_overwrite,
    require_at_least,
)
from dimcollapse.errors import UsageError
from dimcollapse.fileio import check_output_file, check_output_suffix
from dimcollapse.options import OptionHolder, add_json, add_rel_tol
from dimcollapse.outlock import file_lock
from dimcollapse.plots import plot_spectra
from dimcollapse.progress import mode_for, reporting, track

HELP = "singular-value spectrum and collapse metrics of embeddings files (Eq. 1)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_file_options(parser)
    _add_run_options(
        parser.add_argument_group("trained models (FILE is a run directory or checkpoint)")
    )
    add_foreign_options(parser)


def _add_file_options(parser: argparse.ArgumentParser) -> None:
    """The files, how they are read and the metrics and outputs of their spectra."""
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="embeddings files (N x d), run directories or checkpoints",
    )
    parser.add_argument(
        "--key",
        default=None,
        help="array name inside .npz/.pt/.safetensors files (default: the only one); refused "
        "when every FILE is a .npy (no names), which a mix of files simply has no use for",
    )
    parser.add_argument(
        "--normalize",
        action="store_true",
        help="L2-normalise each row first (as the paper's spectrum.py does)",
    )
    add_rel_tol(
        parser,
        DEFAULT_REL_TOL,
        help="count the live values with sigma_k < REL_TOL * sigma_1 beside the cliff rule, "
        "and cut alpha-ReQ's fit there",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="OUT.png",
        help="write log singular value against index, all files overlaid",
    )
    add_force(parser, help="overwrite an existing --plot file")
    add_json(parser, help="print one JSON object per file, one per line")
    add_quiet(parser, help=QUIET_HELP)
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=65536,
        help="rows read and accumulated at a time (memory: chunk + d^2)",
    )
    parser.add_argument(
        "--precision",
        choices=SPECTRUM_PRECISIONS,
        default="auto",
        help="dtype of each chunk's outer product; auto: float64 (sums are always float64); "
        "float32 is about 2x faster on a CPU but puts RankMe about 0.2%% high",
    )
    add_device(parser, "cpu", help="torch device for the accumulation (cpu, cuda, cuda:1, ...)")


def _add_run_options(group: OptionHolder) -> None:
    """Which images of a trained run's dataset to embed, and where the backbone reads them."""
    add_split(group, default="test", help="which split of the run's dataset to embed")
    add_space(group, help="backbone output r (Figs. 7b, 9) or head output z (Fig. 2)")
    group.add_argument(
        "--subset", type=int, default=None, help="embed a seeded random subset of this many images"
    )
    add_run_data_root(group, help="dataset location, if not where the run was trained")


def _summary_text(rec: dict) -> str:
    sv = rec["singular_values"]
    alpha = rec["alpha_req"]
    lines = [
        f"{rec['file']}" + (f" [{rec['key']}]" if rec.get("key") else ""),
        f"  rows {rec['n']:,}  dim {rec['dim']}"
        + ("  (rows L2-normalised)" if rec["normalize"] else ""),
        f"  collapsed dimensions  {rec['collapsed_dims']} of {rec['dim']}  ({_cliff_text(rec)})",
        f"  dead coordinates      {_dead_text(rec['dead_dims'])}",
        f"  under {rec['rel_tol']:g} x sigma_1   {rec['below_rel_tol']} (live values)",
        "  tail counts           "
        + ", ".join(f"{t:g}: {c}" for t, c in zip(rec["tail_thresholds"], rec["tail_counts"])),
        f"  RankMe                {rec['rankme']:.2f}",
        f"  entropy rank          {rec['entropy_rank']:.2f}",
        f"  alpha-ReQ             {'n/a' if alpha is None else f'{alpha:.3f}'}",
        f"  dims for 90% / 99%    {rec['dims_90']} / {rec['dims_99']}",
        f"  sigma_1 .. sigma_d    {sv[0]:.4g} .. {sv[-1]:.4g}",
    ]
    return "\n".join(lines)


def _cliff_text(rec: dict) -> str:
    """Where the largest drop falls and how deep it is."""
    from dimcollapse.spectrum.metrics import CLIFF_DECADES  # torch-free --help: torch 1440 ms

    if rec.get("cliff_decades") is None:
        return "no drop to measure"
    text = (
        f"largest drop {rec['cliff_decades']:.1f} decades after value {rec['cliff_after']}; "
        f"a cliff is >= {CLIFF_DECADES:g}"
    )
    return text + f", floor {rec['floor']:.1e} x sigma_1"


def _dead_text(dead: list[int]) -> str:
    """``0`` or ``3 (indices 3, 50, 77)``, the indices cut after ten."""
    if not dead:
        return "0"
    shown = ", ".join(str(i) for i in dead[:10]) + (", ..." if len(dead) > 10 else "")
    return f"{len(dead)} (indices {shown}; constant, not counted as collapsed)"


def run(args: argparse.Namespace) -> int:
    # one spectrum per --plot file: checked (not there, or --force) and written under the lock
    with file_lock(args.plot, "--plot") if args.plot is not None else contextlib.nullcontext():
        return _spectrum(args)


def _spectrum(args: argparse.Namespace) -> int:
    """Check the options, measure every source's spectrum, print them, plot them."""
    device = _check_options(args)
    sources = _open_sources(args)
    with reporting(mode_for(args.quiet or args.json)):
        records = [_spectrum_record(source, args, device) for source in sources]
    for rec in records:
        print(json.dumps(rec) if args.json else _summary_text(rec), flush=True)
    if args.plot is not None:
        _plot(records, args)
    return 0


def _check_options(args: argparse.Namespace) -> Any:
    """Refuse bad options before anything is read; return the torch device."""
    import torch  # torch-free --help: torch 1440 ms

    check_rel_tol(args.rel_tol)
    require_at_least(args, "chunk_rows", 1)
    if args.plot is not None:
        plot = check_output_suffix(args.plot, (".png", ".pdf", ".svg"))
        refuse_overwrite([plot], args.force, "pass --force to overwrite it")
        check_output_file(plot, "--plot")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise UsageError(f"--device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    require_at_least(args, "subset", 2)
    return device


def _open_sources(args: argparse.Namespace) -> list[Any]:
    """Every FILE opened (embeddings) or loaded (runs), then the foreign models with their images.

    Every file is validated before anything is computed, so bad input fails fast."""
    from dimcollapse.embeddings import open_embeddings  # torch-free --help: torch 1440 ms

    foreign = wants_foreign(args)
    if not args.files and not foreign:
        raise UsageError("give embeddings files, run directories, or --model with --weights")
    sources: list[Any] = [_model_source(f) or open_embeddings(f, args.key) for f in args.files]
    _refuse_options_that_do_not_apply(args, sources, foreign)
    if foreign:
        images = load_images(args, args.split, args.subset)
        sources += [
            {"foreign": model, "path": label, "images": images}
            for label, model in load_foreign_models(args, images)
        ]
    return sources


#: Embeddings files that hold named arrays, so that ``--key`` picks one.
KEYED_SUFFIXES = (".npz", ".pt", ".pth", ".safetensors")


def _refuse_options_that_do_not_apply(
    args: argparse.Namespace, sources: list, foreign: bool
) -> None:
    """Options no source uses are refused, not ignored: ``--key`` when every file is a .npy
    (one array, no names); the run options (``--data-root``, ``--subset``) when there is no run
    or ``--model``; ``--data-root`` on a digits run; ``--test-file`` without an npz --model."""
    runs = [s["checkpoint"] for s in sources if isinstance(s, dict)]
    files = [s for s in sources if not isinstance(s, dict)]
    if (
        args.key is not None
        and files
        and not runs
        and not any(f.path.suffix.lower() in KEYED_SUFFIXES for f in files)
    ):
        raise UsageError(
            f"--key {args.key!r} does not apply: {files[0].path} is a .npy file (one array, no "
            "names); drop it"
        )
    if not runs and not foreign:
        for option, value in (("--data-root", args.data_root), ("--subset", args.subset)):
            if value is not None:
                raise UsageError(
                    f"{option} applies to run directories, checkpoints and --model, not to "
                    "embeddings files; drop it"
                )
    for ckpt in runs:
        refuse_data_options_for_run(ckpt, args.data_root, None)
    if foreign:
        refuse_data_options(args.dataset, args.data_root, args.test_file)
    elif args.test_file is not None:
        raise UsageError("--test-file applies to --model's --dataset npz; drop it")


def _spectrum_record(source: Any, args: argparse.Namespace, device: Any) -> dict:
    """Stream one source's rows through the accumulator; its name, key and metrics."""
    from dimcollapse.spectrum import SpectrumAccumulator  # torch-free --help: torch 1440 ms

    acc = SpectrumAccumulator(normalize=args.normalize, device=device, precision=args.precision)
    if isinstance(source, dict) and "foreign" in source:  # a model trained elsewhere
        from dimcollapse.probe import extract_features  # torch-free --help: torch 1440 ms

        rows, _ = extract_features(
            source["foreign"], source["images"], device=device, label=source["path"]
        )
        chunks = rows.split(args.chunk_rows)
        name, key = source["path"], f"representation, {args.dataset} {args.split}"
    elif isinstance(source, dict):  # a trained model: embed its dataset's split
        chunks = _model_rows(source, args, device).split(args.chunk_rows)
        name, key = source["path"], f"{args.space}, {args.split}"
    else:
        name, key = str(source.path), source.key
        total = -(-source.n // args.chunk_rows)  # progress by chunk: shown for a large file
        chunks = track(
            source.chunks(args.chunk_rows),
            f"spectrum of {name}: {source.n:,} x {source.dim}",
            total,
        )
    for chunk in chunks:
        acc.update(chunk)
    if acc.nonfinite:
        raise UsageError(
            f"{name}: holds {acc.nonfinite:,} NaN or infinite values; "
            "refusing (clean them, or drop those rows)"
        )
    return {"file": name, "key": key, **acc.summary(args.rel_tol).to_dict()}


def _plot(records: list[dict], args: argparse.Namespace) -> None:
    """All spectra overlaid in ``--plot``; a legend names the files when there are several."""
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


def _model_source(path: str) -> dict | None:
    """The loaded checkpoint if ``path`` is a run directory or a dimcollapse checkpoint."""
    # torch-free --help: torch 1440 ms
    from dimcollapse.checkpoint import find_checkpoint, load_checkpoint

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
    # torch-free --help: torch 1440 ms
    from dimcollapse.probe import extract_features, load_run_data

    ckpt = src["checkpoint"]
    model = ckpt.build_model()
    dataset = load_run_data(ckpt, args.split, data_root=args.data_root, subset=args.subset)
    x, _ = extract_features(model, dataset, space=args.space, device=device, label=src["path"])
    return x
