"""Figure of the study's longer runs: validation accuracy and the spectra's tails against epochs.

Reads lines written by ``experiments/pilot_geometry.py`` (validation split only):

* separate runs (no ``at_epoch``): one point per seed at the run's length, a line through the
  means, per method;
* the kept checkpoints of one long schedule (``at_epoch``, ``--probe``) and its final line: a
  dashed line, since each point is mid-way through one cosine schedule (its learning rate was
  still high there), not a run that ended at that epoch;
* the pixel probe's validation accuracy (``pilot-pixels.jsonl``, tag ``pixels-labelled``).

Right panel: how many singular values of the covariance (Eq. 1, row-normalised) fall below
1e-5 of the largest (the report's threshold), for r and for z, against the same epochs.

    python experiments/plot_learning_curve.py docs/experiments/pilot-epochs.jsonl \\
        docs/experiments/pilot-long.jsonl --pixels docs/experiments/pilot-pixels.jsonl \\
        --out docs/experiments/figures/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

THRESHOLD = 1e-5  # the report's threshold; the lines hold 1e-4 ... 1e-7 too


def _lines(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        rows += [json.loads(t) for t in Path(path).read_text().splitlines() if t.strip()]
    return rows


def _key(row: dict) -> str:
    z = "" if row.get("proj_out") is None else f", z {row['proj_out']}"
    return f"{row['method']}{z}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lines", nargs="+", help="pilot_geometry.py JSON-lines files")
    p.add_argument("--pixels", required=True, help="pilot_pixels.py JSON-lines file")
    p.add_argument("--tags", default=None, help="comma-separated tags to keep (default: all)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dimcollapse.plots import save_figure

    rows = _lines(args.lines)
    if args.tags:
        keep = set(args.tags.split(","))
        rows = [r for r in rows if r["tag"].split("-e")[0] in keep or r["tag"] in keep]
    pixels = [r for r in _lines([args.pixels]) if r["tag"] == "pixels-labelled"]

    fig, (acc, tail) = plt.subplots(1, 2, figsize=(11, 4.2))
    separate: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    schedules: dict[tuple[str, int, int], list[dict]] = defaultdict(list)
    for r in rows:
        epoch = r.get("at_epoch") or r["epochs"]
        if r.get("at_epoch") is not None or r["epochs"] > 8:
            schedules[(_key(r), r["epochs"], r["seed"])].append({**r, "_epoch": epoch})
        else:
            separate[_key(r)][epoch].append(r)
    for i, (key, by_epoch) in enumerate(sorted(separate.items())):
        colour = f"C{i}"
        epochs = sorted(by_epoch)
        means = [sum(r["val_top1"] for r in by_epoch[e]) / len(by_epoch[e]) for e in epochs]
        acc.plot(epochs, [100 * m for m in means], "-", color=colour, label=f"{key}: own runs")
        for e in epochs:
            acc.plot(
                [e] * len(by_epoch[e]),
                [100 * r["val_top1"] for r in by_epoch[e]],
                ".",
                color=colour,
            )
            for r in by_epoch[e]:
                _tail_points(tail, e, r, colour)
    for j, ((key, total, seed), pts) in enumerate(sorted(schedules.items())):
        colour = f"C{len(separate) + j}"
        pts.sort(key=lambda r: r["_epoch"])
        acc.plot(
            [r["_epoch"] for r in pts],
            [100 * r["val_top1"] for r in pts],
            "o--",
            color=colour,
            label=f"{key}: one {total}-epoch schedule, seed {seed}",
        )
        for r in pts:
            _tail_points(tail, r["_epoch"], r, colour)
    for r in pixels:
        acc.axhline(100 * r["val_top1"], color="k", lw=1, ls=":", label="raw pixels")
    acc.set_xscale("log", base=2)
    acc.minorticks_off()
    acc.set_xlabel("pretraining epochs (all 60,000 images)")
    acc.set_ylabel("validation top-1 % (1,000 labels, tuned weight decay)")
    acc.legend(fontsize=7)
    acc.grid(alpha=0.3)
    ticks = sorted({r.get("at_epoch") or r["epochs"] for r in rows})
    for ax in (acc, tail):
        ax.set_xticks(ticks, [str(t) for t in ticks])
    tail.set_xscale("log", base=2)
    tail.minorticks_off()
    tail.set_xticks(ticks, [str(t) for t in ticks])
    tail.set_xlabel("pretraining epochs")
    tail.set_ylabel(f"dimensions below {THRESHOLD:g} x sigma_1 (row-normalised)")
    tail.set_title("o: r (representation), x: z (embedding, MLP projector)", fontsize=8)
    tail.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, args.out)


def _tail_points(ax, epoch: int, row: dict, colour: str) -> None:
    key = f"{THRESHOLD:g}"
    ax.plot(epoch, row["representation"]["normalized"]["collapsed"][key], "o", color=colour, ms=4)
    if row["method"] != "simclr-none":  # without a projector z is r
        ax.plot(epoch, row["embedding"]["normalized"]["collapsed"][key], "x", color=colour, ms=6)


if __name__ == "__main__":
    main()
