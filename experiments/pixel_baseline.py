"""The raw-pixel linear and kNN probe for the collapse study's probe sets (one JSON line).

The same probe (``dimcollapse.probe.probe_features``: standardised features, SGD, cosine
schedule) on the flattened images / 255, for the same train subset and test images the study's
cells probe, so the comparison is like for like.

    python experiments/pixel_baseline.py --subset 8000 --results docs/experiments/fmnist-study.jsonl
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subset", type=int, default=8000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--probe-epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    from dimcollapse.data.datasets import load_dataset
    from dimcollapse.probe import probe_features

    tr = load_dataset("fashion-mnist", "train", subset=args.subset, seed=args.seed)
    te = load_dataset("fashion-mnist", "test", subset=args.test_subset, seed=args.seed)
    (xtr, ytr), (xte, yte) = tr.tensors(), te.tensors()
    probe = probe_features(
        xtr.flatten(1).float() / 255,
        ytr.long(),
        xte.flatten(1).float() / 255,
        yte.long(),
        num_classes=10,
        epochs=args.probe_epochs,
        seed=args.seed,
    )
    row = {"tag": "pixels", **vars(args), "top1": probe["top1"]}
    row["knn_top1_k20"] = probe["knn_top1_k20"]
    row.pop("results")
    with open(args.results, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
