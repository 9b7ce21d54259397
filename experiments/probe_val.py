"""Validation accuracy of trained runs under the reproduction's probe protocol, never touching
the test images (for comparing training settings).

    python experiments/probe_val.py RUN [RUN ...] [--labelled-per-class 100]
        [--val-per-class 200] [--epochs 30] [--seed 0]

For each run directory: the protocol's splits of its dataset's training images
(:func:`dimcollapse.probe.protocol.protocol_splits`, the quick scale's sizes by default), the
frozen representation r of the labelled and validation images, and the linear probe trained
on the labelled ones with each weight decay of the protocol's grid; prints the best validation
top-1 (the number the protocol chooses by) as one JSON line per run.
"""

from __future__ import annotations

import argparse
import json

import torch

from dimcollapse.checkpoint import load_model
from dimcollapse.probe import extract_features, load_run_data
from dimcollapse.probe.protocol import protocol_splits, tuned_linear_probe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--labelled-per-class", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        model, ckpt = load_model(run)
        train = load_run_data(ckpt, "train")
        splits = protocol_splits(
            train.labels(),
            labelled_per_class=args.labelled_per_class,
            val_per_class=args.val_per_class,
            seed=args.seed,
        )
        x_lab, y_lab = extract_features(model, train.select(splits.labelled))
        x_val, y_val = extract_features(model, train.select(splits.val))
        result = tuned_linear_probe(
            (x_lab, y_lab),
            (x_val, y_val),
            (x_val, y_val),  # the protocol wants a test set; only the validation score is read
            num_classes=int(train.num_classes),
            epochs=args.epochs,
            seed=args.seed,
            knn=False,
        )
        print(
            json.dumps({"run": run, "val_top1": result["val_top1"], "wd": result["weight_decay"]})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
