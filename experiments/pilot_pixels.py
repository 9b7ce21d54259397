"""The raw-pixel row of the faithful-miniature pilot, on the validation split of the probe
protocol (:mod:`dimcollapse.probe.protocol`): a linear probe on the flattened pixels of the
fixed class-balanced labelled subset (and of all training labels), weight decay chosen on the
validation split; appends one JSON line per row to ``--results``.

    python experiments/pilot_pixels.py --results docs/experiments/pilot.jsonl
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labelled-per-class", type=int, default=100)
    p.add_argument("--val-per-class", type=int, default=500)
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument("--all-labels", action="store_true", help="also the all-labels row")
    p.add_argument("--results", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    from dimcollapse.data.datasets import load_dataset
    from dimcollapse.probe.protocol import protocol_splits, tuned_linear_probe

    images, labels = load_dataset("fashion-mnist", "train", can_download=False).tensors()
    x = images.flatten(1).float() / 255.0
    splits = protocol_splits(
        labels,
        labelled_per_class=args.labelled_per_class,
        val_per_class=args.val_per_class,
        seed=0,
    )
    val = (x[splits.val], labels[splits.val])
    rows = {"labelled": splits.labelled}
    if args.all_labels:
        rows["all_labels"] = splits.all_labels
    for name, idx in rows.items():
        probe = tuned_linear_probe(
            (x[idx], labels[idx]), val, val, num_classes=10, epochs=args.probe_epochs, knn=False
        )
        row = {
            "tag": f"pixels-{name}",
            "method": "raw pixels",
            "labels": int(idx.numel()),
            "val_top1": probe["val_top1"],
            "weight_decay": probe["weight_decay"],
            "val_by_weight_decay": probe["val_by_weight_decay"],
        }
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row))


if __name__ == "__main__":
    main()
