"""Figures of the collapse study: last-epoch spectra of chosen cells (from their spectra.jsonl).

    python experiments/plot_study.py --out docs/experiments/figures/embedding_spectra.png \\
        --space embedding runs/study/base-simclr-mlp-s0 runs/study/out128-simclr-mlp-s0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories (each with spectra.jsonl)")
    p.add_argument("--space", choices=("embedding", "representation"), default="embedding")
    p.add_argument("--title", default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dimcollapse.plots import draw_spectra
    from dimcollapse.spectrum import DEFAULT_REL_TOL

    series = []
    for run in args.runs:
        lines = Path(run, "spectra.jsonl").read_text().splitlines()
        last = json.loads(lines[-1])
        sv = last[args.space]
        collapsed = sum(1 for s in sv if s < DEFAULT_REL_TOL * sv[0])
        label = f"{Path(run).name} (epoch {last['epoch']}, {collapsed}/{len(sv)} collapsed)"
        series.append((label, sv))
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    title = args.title or f"{args.space} spectra, held-out images, last epoch"
    draw_spectra(ax, series, rel_tol=DEFAULT_REL_TOL, title=title)
    ax.legend(fontsize="x-small", loc="lower left")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
