"""One cell of the Fashion-MNIST collapse study (docs/experiments/fashion-mnist-collapse.md).

Pretrains one method with the given settings through the public API (``dimcollapse.train``),
then measures what the reproduction report judges: the covariance spectra (Eq. 1) of the
representation r and the embedding z on held-out test images, and the offline linear and kNN
probes of r. Appends one JSON line to ``--results``.

Example::

    python experiments/collapse_study.py --tag out128 --method simclr-mlp --proj-out 128 \\
        --epochs 10 --subset 8000 --width 0.25 --results docs/experiments/fmnist-study.jsonl

One process per core, one thread each (``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tag", required=True)
    p.add_argument("--method", default="simclr-mlp")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--subset", type=int, default=8000)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--small-stem", choices=("on", "off"), default="off")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--proj-out", type=int, default=None)
    p.add_argument("--proj-hidden", type=int, default=None)
    p.add_argument("--crop-min", type=float, default=None, help="random resized crop min scale")
    p.add_argument("--base-lr", type=float, default=None)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--channels-last", choices=("on", "off"), default="off")
    p.add_argument("--keep", action="store_true", help="keep the checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--probe-train", type=int, default=None, help="probe train images (default: subset)"
    )
    p.add_argument("--probe-epochs", type=int, default=30)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--results", required=True)
    p.add_argument("--workdir", default="runs/study")
    args = p.parse_args()

    torch.set_num_threads(1)
    from dimcollapse.checkpoint import load_model
    from dimcollapse.config import TrainConfig
    from dimcollapse.probe import extract_features, load_run_data, probe_features
    from dimcollapse.spectrum import summarize
    from dimcollapse.train import train

    out = Path(args.workdir) / f"{args.tag}-{args.method}-s{args.seed}"
    if out.exists():
        shutil.rmtree(out)
    augment = {} if args.crop_min is None else {"crop_scale": [args.crop_min, 1.0]}
    extra = {} if args.base_lr is None else {"base_lr": args.base_lr}
    cfg = TrainConfig(
        method=args.method,
        dataset="fashion-mnist",
        subset=args.subset,
        width=args.width,
        small_stem=args.small_stem == "on",
        epochs=args.epochs,
        batch_size=args.batch_size,
        proj_out=args.proj_out,
        proj_hidden=args.proj_hidden,
        augment=augment,
        precision=args.precision,
        channels_last=args.channels_last == "on",
        seed=args.seed,
        device="cpu",
        data_path="device",
        workers=0,
        monitor_samples=1000,
        out=str(out),
        **extra,
    )
    t0 = time.perf_counter()
    train(cfg, verbose=False)
    train_s = time.perf_counter() - t0
    model, ckpt = load_model(out)
    probe_train = args.probe_train or args.subset
    tr = load_run_data(ckpt, "train", subset=probe_train, seed=0)
    te = load_run_data(ckpt, "test", subset=args.test_subset, seed=0)
    trx, try_ = extract_features(model, tr)
    tex, tey = extract_features(model, te)
    probe = probe_features(
        trx, try_, tex, tey, num_classes=10, epochs=args.probe_epochs, seed=0, device="cpu"
    )
    with torch.no_grad():
        z = model.head(tex).float()
    rep, emb = summarize(tex).to_dict(), summarize(z).to_dict()
    keep = ("dim", "collapsed_dims", "rankme", "entropy_rank", "dims_90", "dims_99")
    row = {
        "tag": args.tag,
        **{k: v for k, v in vars(args).items() if k not in ("results", "workdir", "tag", "keep")},
        "train_s": round(train_s, 1),
        "top1": probe["top1"],
        "knn_top1_k20": probe["knn_top1_k20"],
        "rep": {k: rep[k] for k in keep},
        "emb": {k: emb[k] for k in keep},
        "emb_log10_sv_last": [
            round(float(torch.tensor(s).clamp_min(1e-30).log10()), 2)
            for s in emb["singular_values"][-5:]
        ],
    }
    with open(args.results, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    if not args.keep:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


if __name__ == "__main__":
    main()
