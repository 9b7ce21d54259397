"""Tables of the pilot's lines (``experiments/pilot_geometry.py``), and paired comparisons.

Groups lines by cell (tag, method, and for kept checkpoints of one schedule the epoch probed),
prints each cell's validation top-1 per seed and the collapsed counts of r and z (row-normalised)
at 1e-4 ... 1e-7, then, for each ``--compare A B``, the paired differences A - B across seeds
with their 95% t interval and the report's verdict (:mod:`dimcollapse.stats`, the rule the
reproduction's claims use): for the validation top-1 and for r's collapsed count at each
threshold.

    python experiments/summarize_pilot.py docs/experiments/pilot-epochs.jsonl \\
        --compare half-z32-e8/simclr-none half-z32-e8/simclr-mlp
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

THRESHOLDS = ("0.0001", "1e-05", "1e-06", "1e-07")


def cell_name(row: dict) -> str:
    name = f"{row['tag']}/{row['method']}"
    return name if row.get("at_epoch") is None else f"{name}@{row['at_epoch']}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lines", nargs="+")
    p.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"))
    args = p.parse_args()

    from dimcollapse.stats import interval95, judge_greater, mean, paired_differences

    cells: dict[str, dict[int, dict]] = defaultdict(dict)
    for path in args.lines:
        for text in Path(path).read_text().splitlines():
            if text.strip():
                row = json.loads(text)
                cells[cell_name(row)][row["seed"]] = row
    for name, seeds in cells.items():
        rows = [seeds[s] for s in sorted(seeds)]
        top1 = [100 * r["val_top1"] for r in rows]
        r_counts = [
            [r["representation"]["normalized"]["collapsed"][t] for t in THRESHOLDS] for r in rows
        ]
        z_counts = [
            [r["embedding"]["normalized"]["collapsed"][t] for t in THRESHOLDS] for r in rows
        ]
        rankme = mean([r["representation"]["normalized"]["rankme"] for r in rows])
        print(
            f"{name}: seeds {sorted(seeds)}, val top-1 {' / '.join(f'{v:.1f}' for v in top1)} "
            f"(mean {mean(top1):.2f}); r (of {rows[0]['rep_dim']}) below 1e-4..1e-7 per seed "
            f"{r_counts}, RankMe {rankme:.1f}; z (of {rows[0]['emb_dim']}) {z_counts}"
        )
    for a, b in args.compare:
        common = sorted(set(cells[a]) & set(cells[b]))
        if len(common) < 2:
            raise SystemExit(f"error: {a} and {b} share fewer than 2 seeds")
        pairs = [(cells[a][s], cells[b][s]) for s in common]
        print(f"\n{a} - {b} (seeds {common}):")
        measures = [("val top-1", lambda r: 100 * r["val_top1"])]
        measures += [
            (
                f"r collapsed at {t}",
                lambda r, t=t: r["representation"]["normalized"]["collapsed"][t],
            )
            for t in THRESHOLDS
        ]
        for label, get in measures:
            d = paired_differences([get(x) for x, _ in pairs], [get(y) for _, y in pairs])
            lo_hi = interval95(d)
            ci = "n/a" if lo_hi is None else f"[{lo_hi[0]:+.2f}, {lo_hi[1]:+.2f}]"
            verdict = judge_greater(d)
            each = [round(x, 2) for x in d]
            print(f"  {label}: per seed {each}, mean {mean(d):+.2f} {ci}, A > B: {verdict.verdict}")


if __name__ == "__main__":
    main()
