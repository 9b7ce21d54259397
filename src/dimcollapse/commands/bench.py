"""Throughput of the training step and of what feeds it, and the time to compute a spectrum.

Measures pairs of views per second of (a) the training step alone on random tensors already on
the device (the ceiling: two forwards of backbone + simclr-mlp head, symmetric InfoNCE tau 0.1,
backward, LARS), (b) the step fed by augmentation on the device from uint8 images held there,
(c) the step fed by --workers CPU DataLoader processes (pinned memory, non-blocking copies), and
the seconds to get the spectrum of --spectrum-rows x --spectrum-dim random embeddings on the
device through the streaming accumulator. Warm-up steps are not timed.

Defaults on CUDA: the issue's setting (resnet18 small stem, 32x32x3, batch 1024, bf16,
channels_last, 16 workers, spectrum 1,000,000 x 2048), and the goals on one H200 are checked:
(b) >= 85% of (a) and >= 4x (c) at 32 px; at 224 px ResNet-50, (b) >= 70% of (a).
On a CPU the defaults are scaled down (width 0.25, batch 64, 2 steps, 2 workers, spectrum
100,000 x 512) so that it finishes in well under a minute; the output says so.

examples:
  dimcollapse bench
  dimcollapse bench --device cuda --json
  dimcollapse bench --device cuda --backbone resnet50 --image-size 224 --batch 256 --json
"""

from __future__ import annotations

import argparse
import json
import sys

from dimcollapse.bench.defaults import CPU_DEFAULTS, GPU_DEFAULTS, GPU_LARGE_IMAGE_BATCH
from dimcollapse.choices import STEMS
from dimcollapse.commands._options import add_device
from dimcollapse.data.augment_config import SMALL_IMAGE_MAX
from dimcollapse.options import add_json, add_seed, add_threads

HELP = "throughput: training step vs device vs CPU-worker augmentation; spectrum time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_device(parser, help="auto (CUDA if available), cuda, cuda:N or cpu")
    _add_model_and_images(parser)
    _add_steps(parser)
    _by_device(
        parser,
        "--spectrum-rows",
        int,
        "rows of random embeddings (default: {:,} GPU, {:,} CPU)".format(
            *(d["spectrum_rows"] for d in _device_defaults())
        ),
    )
    _by_device(
        parser, "--spectrum-dim", int, f"their dimension (default: {_defaults('spectrum_dim')})"
    )
    add_seed(parser, help="seeds model, data and augmentation")
    add_threads(
        parser,
        argparse.SUPPRESS,
        help="torch CPU threads for the run (default: torch's own setting)",
    )
    add_json(parser, help="print one JSON object with every figure and setting")


def _by_device(parser: argparse.ArgumentParser, flag: str, kind: type, text: str) -> None:
    """An option whose default depends on the device: left out, it is not in the namespace."""
    parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text)


def _device_defaults() -> tuple[dict, dict]:
    """(GPU defaults, CPU defaults) of ``bench.settings``: help text reads them, never retypes."""
    return GPU_DEFAULTS, CPU_DEFAULTS


def _defaults(key: str) -> str:
    """``GPU value GPU, CPU value CPU`` for one setting."""
    gpu, cpu = _device_defaults()
    return f"{gpu[key]:g} GPU, {cpu[key]:g} CPU"


def _add_model_and_images(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", default="resnet18", help="resnet18, resnet34 or resnet50")
    parser.add_argument("--image-size", type=int, default=32, help="side of the views in pixels")
    _by_device(
        parser,
        "--source-size",
        int,
        f"side of the stored uint8 images (default: the view size up to {SMALL_IMAGE_MAX} px, "
        "else size x 256/224)",
    )
    parser.add_argument("--channels", type=int, default=3, help="image channels, 1 or 3")
    parser.add_argument(
        "--stem",
        choices=STEMS,
        default=None,
        help=f"the backbone's stem (default: cifar up to {SMALL_IMAGE_MAX} px, else imagenet; "
        "half: the CPU reproduction's 3x3 stride-2 stem)",
    )


def _add_steps(parser: argparse.ArgumentParser) -> None:
    """The training step: its batch, how many are timed, the workers feeding it, the model."""
    _by_device(
        parser,
        "--batch",
        int,
        f"pairs per step (default: {GPU_DEFAULTS['batch']} GPU, {GPU_LARGE_IMAGE_BATCH} GPU "
        f"above {SMALL_IMAGE_MAX} px, {CPU_DEFAULTS['batch']} CPU)",
    )
    _by_device(parser, "--steps", int, f"timed steps per path (default: {_defaults('steps')})")
    _by_device(
        parser, "--warmup", int, f"untimed steps before each path (default: {_defaults('warmup')})"
    )
    _by_device(
        parser,
        "--workers",
        int,
        f"DataLoader processes of path (c) (default: {_defaults('workers')}; at most the cores)",
    )
    _by_device(
        parser, "--width", float, f"backbone width multiplier (default: {_defaults('width')})"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="autocast precision (auto: bf16 on CUDA, fp32 on CPU)",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="channels_last memory format (default: on for CUDA)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile backbone + head")


def run(args: argparse.Namespace) -> int:
    # torch-free --help: torch 1440 ms
    from dimcollapse.bench import BenchSettings, format_report, run_bench

    # options left out keep BenchSettings' None: the device's default
    fields = (
        "device", "backbone", "image_size", "channels", "batch", "steps", "warmup", "workers",
        "width", "precision", "channels_last", "compile", "spectrum_rows", "spectrum_dim",
        "source_size", "seed", "threads", "stem",
    )  # fmt: skip
    settings = BenchSettings(**{f: getattr(args, f) for f in fields if hasattr(args, f)})

    def log(msg: str) -> None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)

    result = run_bench(settings, log=None if args.json else log)
    print(json.dumps(result) if args.json else format_report(result), flush=True)
    return 0
