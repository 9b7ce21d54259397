"""One cell of the faithful-miniature pilot (docs/experiments/fashion-mnist-collapse.md, issue 19).

Pretrains one method on every Fashion-MNIST training image (labels unused) through the public
API, then measures on the *validation* split of the reproduction's probe protocol
(:mod:`dimcollapse.probe.protocol`; never on test images):

* the covariance spectra (Eq. 1) of r and z on the validation images, raw and row-normalised,
  with the collapsed counts at 1e-4 ... 1e-7 of sigma_1 and RankMe;
* the linear probe on the fixed class-balanced labelled subset, its weight decay chosen on the
  validation split (the validation accuracy is the pilot's accuracy measure).

Appends one JSON line to ``--results``. One process per core, one thread each::

    python experiments/pilot_geometry.py --tag half-z32 --stem half --proj-out 32 --seed 0 \\
        --results docs/experiments/pilot.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from pathlib import Path

import torch

THRESHOLDS = (1e-4, 1e-5, 1e-6, 1e-7)


def _spectrum(x: torch.Tensor) -> dict:
    from dimcollapse.spectrum import summarize

    out = {}
    for name, normalize in (("raw", False), ("normalized", True)):
        s = summarize(x, normalize=normalize).to_dict()
        sv = torch.tensor(s["singular_values"], dtype=torch.float64)
        out[name] = {
            "rankme": s["rankme"],
            "collapsed": {f"{t:g}": int((sv < t * sv[0]).sum()) for t in THRESHOLDS},
            "min_ratio": float(sv[-1] / sv[0]),
            "cliff_collapsed": s["collapsed_dims"],
            "dead": len(s["dead_dims"]),
            "cliff_decades": s["cliff_decades"],
            "tail_counts": s["tail_counts"],
        }
    return out


def _config(args: argparse.Namespace, out: Path):
    from dimcollapse.config import TrainConfig

    extra = {} if args.base_lr is None else {"base_lr": args.base_lr}
    if args.channels_last:
        extra["channels_last"] = True
    if args.aug_strength != 1.0:
        extra["aug_strength"] = args.aug_strength
    if args.aug_recipe != "auto":
        extra["aug_recipe"] = args.aug_recipe
    if args.crop_min is not None:
        extra["augment"] = {"crop_scale": [args.crop_min, 1.0]}
    if args.keep_epochs:
        extra["checkpoint_every"] = "0"  # last.pt only at epoch ends, so each copy is one epoch
    return TrainConfig(
        **extra,
        method=args.method,
        backbone="resnet18",
        width=args.width,
        stem=args.stem,
        small_stem=False,
        proj_out=args.proj_out,
        dataset="fashion-mnist",
        subset=args.subset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        monitor_samples=0,
        seed=args.seed,
        device="cpu",
        data_path="device",
        workers=0,
        out=str(out),
    )


class _Keeper(threading.Thread):
    """Copies the run's ``checkpoints/last.pt`` to ``KEEP/e{epoch}.pt`` at the epochs asked for,
    polling its modification time (checkpoints are written atomically, at epoch ends only)."""

    def __init__(self, run: Path, keep: Path, epochs: set[int]):
        super().__init__(daemon=True)
        self.last, self.keep, self.epochs = run / "checkpoints" / "last.pt", keep, epochs
        self.stop = threading.Event()

    def run(self) -> None:
        from dimcollapse.checkpoint import load_checkpoint

        seen = None
        while not self.stop.wait(5.0):
            try:
                mtime = self.last.stat().st_mtime_ns
                if mtime == seen:
                    continue
                seen = mtime
                tmp = self.keep / "incoming.pt"
                shutil.copyfile(self.last, tmp)
                epoch = load_checkpoint(tmp).epoch
                if epoch in self.epochs:
                    tmp.replace(self.keep / f"e{epoch}.pt")
            except (OSError, RuntimeError, ValueError):
                continue  # replaced while copied: the next poll sees the new file


def _measure(model, args: argparse.Namespace) -> dict:
    """The validation-split probe and both spectra of one frozen model."""
    from dimcollapse.data.datasets import load_dataset
    from dimcollapse.probe import extract_features
    from dimcollapse.probe.protocol import protocol_splits, tuned_linear_probe

    train_set = load_dataset("fashion-mnist", "train", can_download=False)
    _, labels = train_set.tensors()
    splits = protocol_splits(
        labels,
        labelled_per_class=args.labelled_per_class,
        val_per_class=args.val_per_class,
        seed=0,
    )
    lab_x, lab_y = extract_features(model, train_set.select(splits.labelled))
    val_x, val_y = extract_features(model, train_set.select(splits.val))
    with torch.no_grad():
        val_z = model.head(val_x).float()
    probe = tuned_linear_probe(
        (lab_x, lab_y),
        (val_x, val_y),
        (val_x, val_y),  # the pilot reports validation accuracy only
        num_classes=10,
        epochs=args.probe_epochs,
        seed=args.seed,
        knn=False,
    )
    return {
        "rep_dim": int(val_x.shape[1]),
        "emb_dim": int(val_z.shape[1]),
        "val_top1": probe["val_top1"],
        "weight_decay": probe["weight_decay"],
        "representation": _spectrum(val_x),
        "embedding": _spectrum(val_z),
    }


def _row(args: argparse.Namespace, **fields) -> dict:
    row = {
        "tag": args.tag,
        "method": args.method,
        "stem": args.stem,
        "width": args.width,
        "epochs": args.epochs,
        "subset": args.subset,
        "batch_size": args.batch_size,
        "proj_out": args.proj_out,
        "crop_min": args.crop_min,
        "channels_last": args.channels_last,
        "base_lr": args.base_lr,
        "aug_strength": args.aug_strength,
        "aug_recipe": args.aug_recipe,
        "seed": args.seed,
        **fields,
    }
    with open(args.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tag", required=True)
    p.add_argument("--method", default="simclr-mlp")
    p.add_argument("--stem", default="half")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--subset", type=int, default=None, help="pretraining images (default all)")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--proj-out", type=int, default=None)
    p.add_argument("--crop-min", type=float, default=None, help="random resized crop min scale")
    p.add_argument("--base-lr", type=float, default=None)
    p.add_argument("--aug-strength", type=float, default=1.0, help="TrainConfig.aug_strength")
    p.add_argument("--aug-recipe", default="auto", help="TrainConfig.aug_recipe: auto | paper")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labelled-per-class", type=int, default=100)
    p.add_argument("--val-per-class", type=int, default=500)
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument("--results", required=True)
    p.add_argument("--workdir", default="runs/pilot")
    p.add_argument(
        "--keep-epochs",
        type=lambda s: {int(e) for e in s.split(",")},
        default=set(),
        help="comma-separated epochs whose checkpoints are kept in WORKDIR/<run>-kept/ (a learning "
        "curve of one cosine schedule, probed later with --probe)",
    )
    p.add_argument(
        "--probe",
        nargs="+",
        default=None,
        metavar="CKPT",
        help="do not train: probe these kept checkpoints, one line each (train_s null)",
    )
    args = p.parse_args()

    torch.set_num_threads(1)
    from dimcollapse.checkpoint import load_model
    from dimcollapse.train import train

    if args.probe:
        for path in args.probe:
            model, ckpt = load_model(path)
            _row(args, at_epoch=ckpt.epoch, train_s=None, **_measure(model, args))
        return
    out = Path(args.workdir) / f"{args.tag}-{args.method}-s{args.seed}"
    shutil.rmtree(out, ignore_errors=True)
    keeper = None
    if args.keep_epochs:
        keep = Path(f"{out}-kept")
        keep.mkdir(parents=True, exist_ok=True)
        keeper = _Keeper(out, keep, args.keep_epochs)
        keeper.start()
    t0 = time.perf_counter()
    train(_config(args, out), verbose=False)
    train_s = time.perf_counter() - t0
    if keeper is not None:
        keeper.stop.set()
        keeper.join()
    model, _ckpt = load_model(out)
    _row(args, train_s=round(train_s, 1), **_measure(model, args))
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
