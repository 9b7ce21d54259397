"""Summarise docs/experiments/pilot-augment.jsonl (issue 23): per cell (tag) the validation
top-1 and the collapse of z and r (row-normalised, the paper's measure; cliff rule, dead
coordinates, counts under 1e-4 / 1e-6), mean over seeds with each seed; then the paired
differences the study's rules read: paper - auto recipe, and strength 1.5 - 0.5.

    python experiments/summarize_augment.py docs/experiments/pilot-augment.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

from dimcollapse.stats import judge_greater, mean, paired_differences


def _cells(path: str) -> dict[str, dict[int, dict]]:
    cells: dict[str, dict[int, dict]] = defaultdict(dict)
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            cells[row["tag"]][int(row["seed"])] = row
    return cells


def _values(rows: dict[int, dict], get) -> list[float]:
    return [float(get(rows[s])) for s in sorted(rows)]


FIELDS = {
    "val top-1 (%)": lambda r: 100 * r["val_top1"],
    "z cliff": lambda r: r["embedding"]["normalized"]["cliff_collapsed"],
    "z dead": lambda r: r["embedding"]["normalized"]["dead"],
    "z <1e-4": lambda r: r["embedding"]["normalized"]["tail_counts"][0],
    "z <1e-6": lambda r: r["embedding"]["normalized"]["tail_counts"][2],
    "z RankMe": lambda r: r["embedding"]["normalized"]["rankme"],
    "r cliff": lambda r: r["representation"]["normalized"]["cliff_collapsed"],
    "r dead": lambda r: r["representation"]["normalized"]["dead"],
    "r <1e-4": lambda r: r["representation"]["normalized"]["tail_counts"][0],
    "r RankMe": lambda r: r["representation"]["normalized"]["rankme"],
}


def main(path: str) -> None:
    cells = _cells(path)
    print("| cell | seeds | " + " | ".join(FIELDS) + " |")
    print("|---" * (len(FIELDS) + 2) + "|")
    for tag in sorted(cells):
        rows = cells[tag]
        parts = []
        for get in FIELDS.values():
            vals = _values(rows, get)
            parts.append(f"{mean(vals):.2f} ({', '.join(f'{v:g}' for v in vals)})")
        print(f"| {tag} | {len(rows)} | " + " | ".join(parts) + " |")
    for a, b in (("aug-paper-s1", "aug-auto-s1"), ("aug-auto-s1.5", "aug-auto-s0.5")):
        if a not in cells or b not in cells or sorted(cells[a]) != sorted(cells[b]):
            continue
        for name in ("val top-1 (%)", "z cliff", "z <1e-4", "r <1e-4", "z RankMe", "r RankMe"):
            get = FIELDS[name]
            diffs = paired_differences(_values(cells[a], get), _values(cells[b], get))
            j = judge_greater(diffs)
            ci = "" if j.ci95 is None else f" [{j.ci95[0]:+.2f}, {j.ci95[1]:+.2f}]"
            print(f"{a} - {b}, {name}: {mean(diffs):+.2f}{ci} (per seed {diffs})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/experiments/pilot-augment.jsonl")
