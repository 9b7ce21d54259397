"""Figure of the study's Fig. 2 question: the embedding z's collapsed dimensions against the
threshold, per cell (projector output width, epochs), from ``pilot_geometry.py`` lines.

Each cell: the mean count over its seeds (line) and each seed (dots), row-normalised spectra of
the covariance (Eq. 1) on the validation images, at 1e-4 ... 1e-7 of the largest value. Kept
checkpoints of a longer schedule (``at_epoch``) are left out.

    python experiments/plot_embedding_width.py docs/experiments/pilot.jsonl \\
        docs/experiments/pilot-epochs.jsonl docs/experiments/pilot-zwidth.jsonl \\
        --out docs/experiments/figures/embedding_width.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

THRESHOLDS = ("0.0001", "1e-05", "1e-06", "1e-07")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lines", nargs="+", help="pilot_geometry.py JSON-lines files")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    from dimcollapse.plots import pyplot, save_figure

    cells: dict[tuple[int, int, int], list[list[int]]] = defaultdict(list)
    for path in args.lines:
        for text in Path(path).read_text().splitlines():
            row = json.loads(text) if text.strip() else None
            if (
                row is None
                or row["method"] != "simclr-mlp"
                or row.get("at_epoch") is not None
                or row.get("crop_min") is not None
                or row["batch_size"] != 256
            ):
                continue
            counts = row["embedding"]["normalized"]["collapsed"]
            cells[(row["emb_dim"], row["rep_dim"], row["epochs"])].append(
                [counts[t] for t in THRESHOLDS]
            )
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = [float(t) for t in THRESHOLDS]
    widths = sorted({(w, r) for w, r, _ in cells})
    for (width, rep, epochs), seeds in sorted(cells.items()):
        colour = f"C{widths.index((width, rep))}"
        style, marker = {1: ("--", "o"), 3: ("-.", "s")}.get(epochs, ("-", "^"))
        means = [sum(s[j] for s in seeds) / len(seeds) for j in range(len(xs))]
        label = f"z {width} (r {rep}), {epochs} epoch{'s' * (epochs > 1)}, {len(seeds)} seeds"
        ax.plot(xs, means, style, color=colour, marker=marker, label=label)
        for s in seeds:
            ax.plot(xs, s, ".", color=colour, alpha=0.5)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("threshold (fraction of sigma_1)")
    ax.set_ylabel("collapsed dimensions of z (row-normalised)")
    ax.set_title("Fig. 2 analogue: the embedding's collapsed tail by projector width", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
