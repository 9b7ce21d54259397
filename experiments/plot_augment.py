"""Figure of the augmentation-strength sweep (issue 23, docs/experiments/pilot-augment.jsonl):
validation top-1, RankMe of z and r, and the collapsed counts of z (cliff rule; under 1e-4 and
1e-6) against the augmentation's strength, each seed a point, the mean a line; the paper's
recipe at strength 1 beside.

    python experiments/plot_augment.py docs/experiments/pilot-augment.jsonl \\
        docs/experiments/figures/augment_strength.png
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

from dimcollapse.plots import pyplot, save_figure

PANELS = (
    ("validation top-1 (%)", lambda r: 100 * r["val_top1"]),
    ("RankMe (row-normalised)", None),
    ("collapsed dims of z (row-normalised)", None),
)


def main(path: str, out: str) -> None:
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    auto: dict[float, list[dict]] = defaultdict(list)
    paper = [r for r in rows if r["aug_recipe"] == "paper"]
    for r in rows:
        if r["aug_recipe"] == "auto":
            auto[float(r["aug_strength"])].append(r)
    xs = sorted(auto)
    fig, axes = pyplot().subplots(1, 3, figsize=(15, 4.4))

    def draw(ax, get, label, style="o-", color=None):
        means = [sum(get(r) for r in auto[x]) / len(auto[x]) for x in xs]
        line = ax.plot(xs, means, style, label=label, color=color)[0]
        for x in xs:
            ax.plot([x] * len(auto[x]), [get(r) for r in auto[x]], ".", color=line.get_color())
        if paper:
            ax.plot([1.0] * len(paper), [get(r) for r in paper], "x", color=line.get_color(),
                    label=f"{label}, paper's recipe")  # fmt: skip

    draw(axes[0], lambda r: 100 * r["val_top1"], "simclr-mlp")
    draw(axes[1], lambda r: r["embedding"]["normalized"]["rankme"], "z")
    draw(axes[1], lambda r: r["representation"]["normalized"]["rankme"], "r")
    draw(axes[2], lambda r: r["embedding"]["normalized"]["cliff_collapsed"], "cliff rule")
    draw(axes[2], lambda r: r["embedding"]["normalized"]["tail_counts"][0], "under 1e-4", "s--")
    draw(axes[2], lambda r: r["embedding"]["normalized"]["tail_counts"][2], "under 1e-6", "^--")
    for ax, (title, _) in zip(axes, PANELS):
        ax.set_xlabel("augmentation strength (1 = the 28 px recipe)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    fig.suptitle("simclr-mlp, 2 epochs of 8,000 Fashion-MNIST images, z = r = 128, 3 seeds "
                 "(validation split): Theorem 1 on a ResNet?")  # fmt: skip
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
