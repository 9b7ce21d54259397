"""Contrastive pretraining with collapse monitoring (section 6 of Jing et al. 2022).

Methods (Table 1 and section 6.3): simclr-mlp (2-layer projector), simclr-linear, simclr-none
(loss on the full representation), directclr (InfoNCE on r[:d0], no trainable projector),
fixed-lowrank (fixed random projection with d0 unit singular values), diagonal (trainable
diagonal projector). Beyond the paper: vicreg and barlow-twins (VICReg's and Barlow Twins'
losses on a trainable 3-layer expander). A loss's options: --method-option NAME=VALUE. Each
epoch writes the representation and embedding spectra's RankMe and collapsed dimensions, and
the online linear probe's accuracy, to OUT/metrics.jsonl.

Settings: defaults, then --config FILE.yaml (same field names), then options typed here.
--data-root is refused for digits and --test-file for any dataset but npz (never ignored).

Divergence stops the run with one error: line (exit status 2), never a warning: a non-finite
loss or gradient (see --max-bad-steps), a finite blow-up (the contrastive or online-probe loss
above 1000x its first value) or a held-out representation that is no longer finite. The last
good checkpoint is kept; a run that fails before its first checkpoint leaves nothing behind.

examples:
  dimcollapse train --method directclr --epochs 10 --width 0.25 --subset 5000 --out runs/dclr
  dimcollapse train --out runs/dclr --resume --epochs 20
  dimcollapse train --method barlow-twins --method-option lambd=0.01 --out runs/bt
  torchrun --nproc_per_node=4 -m dimcollapse train --method simclr-mlp --out runs/mlp
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from dimcollapse.commands._options import refuse_data_options
from dimcollapse.config import TrainConfig, base_type, layered_config, yaml_scalar
from dimcollapse.data.augment_config import SMALL_IMAGE_MAX, AugmentConfig
from dimcollapse.data.formats import FORMATS
from dimcollapse.methods import METHODS, RECIPES, Option
from dimcollapse.rundir import RunLayout

HELP = (
    "contrastive pretraining: SimCLR variants, DirectCLR, projector ablations; VICReg, Barlow Twins"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE.yaml",
        help="YAML file of settings (command-line options override it)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    _add_config_arguments(parser)
    parser.add_argument(
        "--method-option",
        dest="method_options",
        type=_method_option,
        action="append",
        default=argparse.SUPPRESS,
        metavar="NAME=VALUE",
        help="one of the method's loss options (repeat for more; over method_options of "
        f"--config). Options and defaults: {_method_options_text()}",
    )


def run(args: argparse.Namespace) -> int:
    # resuming: the run's saved settings, then --config's, then the options typed here
    cfg, saved = layered_config(args)
    refuse_data_options(cfg.dataset, cfg.data_root, cfg.test_file)
    from dimcollapse.train import train  # torch-free --help: torch 1440 ms

    train(cfg, verbose=not args.quiet, saved=saved)
    return 0


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _method_option(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` -> (name, value), the value read as a YAML scalar (``25``, ``5e-3``,
    ``ntxent``), as it would be under ``method_options:`` in a ``--config`` file."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), yaml_scalar(value.strip())


def _method_options_text() -> str:
    """Each loss's options and defaults, the methods that share the loss named together."""
    by_loss: dict[str, list[str]] = {}
    for name, recipe in RECIPES.items():
        by_loss.setdefault(recipe.loss, []).append(name)
    parts = []
    for names in by_loss.values():
        listed = ", ".join(_option_text(o) for o in RECIPES[names[0]].options)
        parts.append(f"{', '.join(names)}: {listed or 'none'}")
    return "; ".join(parts)


def _option_text(option: Option) -> str:
    default = f"{option.default:g}" if isinstance(option.default, float) else option.default
    also = f", or --{option.field}" if option.field else ""
    return f"{option.name} ({default}{also})"


def _help_facts() -> dict[str, str]:
    """What ``{name}`` stands for in a field's help: facts owned by other modules."""
    dirs = [f"{f.name} defaults to {f.default_dir}" for f in FORMATS.values() if f.default_dir]
    return {
        "small_image_max": str(SMALL_IMAGE_MAX),
        "methods": " | ".join(METHODS),
        "datasets": " | ".join(FORMATS),
        "default_dirs": "; ".join(dirs),
        "last_checkpoint": RunLayout.LAST,
    }


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--FIELD`` for every TrainConfig field and ``--aug-FIELD`` for AugmentConfig's.

    Defaults are shown from the dataclasses but the parsed value is None unless given, so that a
    YAML file's values are overridden only by options actually typed.
    """
    facts = _help_facts()
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        # mappings: typed as --aug-FIELD and --method-option NAME=VALUE (below)
        if f.name in ("augment", "method_options"):
            continue
        tp, _ = base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        # the facts belong to other modules, so the field's text names them, filled in here
        helptext = f.metadata["help"].format_map(facts)
        if not (default is None and "default:" in helptext):
            helptext += f" (default: {default})"
        if tp is bool:
            parser.add_argument(
                flag,
                type=_parse_bool,
                nargs="?",
                const=True,
                default=argparse.SUPPRESS,
                metavar="BOOL",
                help=helptext,
            )
        else:
            parser.add_argument(flag, type=tp, default=argparse.SUPPRESS, help=helptext)
    aug_hints = typing.get_type_hints(AugmentConfig)
    for f in dataclasses.fields(AugmentConfig):
        tp, _ = base_type(aug_hints[f.name])
        flag = "--aug-" + f.name.replace("_", "-")
        default = "the dataset's size" if f.name == "image_size" else f.default
        if f.name in ("blur_prob", "solarize_prob"):
            default = f"{default} above {SMALL_IMAGE_MAX} px, off at {SMALL_IMAGE_MAX} px or less"
        helptext = f"augmentation: {f.name} (default: {default})"
        if typing.get_origin(tp) is tuple:
            parser.add_argument(
                flag,
                type=float,
                nargs=len(typing.get_args(tp)),
                default=argparse.SUPPRESS,
                help=helptext,
            )
        else:
            parser.add_argument(flag, type=tp, default=argparse.SUPPRESS, help=helptext)
