"""Contrastive pretraining with collapse monitoring (section 6 of Jing et al. 2022).

Methods (Table 1 and section 6.3): simclr-mlp (2-layer projector), simclr-linear, simclr-none
(loss on the full representation), directclr (InfoNCE on r[:d0], no trainable projector),
fixed-lowrank (fixed random projection with d0 unit singular values), diagonal (trainable
diagonal projector). Each epoch writes the representation and embedding spectra's RankMe and
collapsed dimensions, and the online linear probe's accuracy, to OUT/metrics.jsonl.

Settings: defaults, then --config FILE.yaml (same field names), then options typed here.
--data-root is refused for digits and --test-file for any dataset but npz (never ignored).

Divergence stops the run with one error: line (exit status 2), never a warning: a non-finite
loss or gradient (see --max-bad-steps), a finite blow-up (the contrastive or online-probe loss
above 1000x its first value) or a held-out representation that is no longer finite. The last
good checkpoint is kept; a run that fails before its first checkpoint leaves nothing behind.

examples:
  dimcollapse train --method directclr --epochs 10 --width 0.25 --subset 5000 --out runs/dclr
  dimcollapse train --out runs/dclr --resume --epochs 20
  torchrun --nproc_per_node=4 -m dimcollapse train --method simclr-mlp --out runs/mlp
"""

from __future__ import annotations

import argparse

from dimcollapse.commands._options import refuse_data_options

HELP = "contrastive pretraining: SimCLR variants, DirectCLR, projector ablations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dimcollapse.config import add_config_arguments

    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE.yaml",
        help="YAML file of settings (command-line options override it)",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dimcollapse.config import layered_config

    # resuming: the run's saved settings, then --config's, then the options typed here
    cfg, saved = layered_config(args)
    refuse_data_options(cfg.dataset, cfg.data_root, cfg.test_file)
    from dimcollapse.train import train

    train(cfg, verbose=not args.quiet, saved=saved)
    return 0
