"""Print the collapse study's results (a JSON-lines file) as a Markdown table.

python experiments/summarize_study.py docs/experiments/fmnist-study.jsonl
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    with open(sys.argv[1]) as fh:
        rows = [json.loads(ln) for ln in fh if ln.strip()]
    print(
        "| cell | method | epochs | subset | width | proj out | other | seed | train s "
        "| linear top-1 | kNN k=20 | emb collapsed | emb RankMe | rep collapsed | rep RankMe |"
    )
    print("|" + "---|" * 15)
    for r in rows:
        if r["tag"] == "pixels":
            print(
                f"| raw pixels | - | - | {r['subset']} | - | - | test {r['test_subset']} | "
                f"{r['seed']} | - | {100 * r['top1']:.1f} | {100 * r['knn_top1_k20']:.1f} "
                "| - | - | - | - |"
            )
            continue
        other = []
        for key, label in (
            ("crop_min", "crop min"),
            ("base_lr", "base lr"),
            ("batch_size", "batch"),
            ("channels_last", "channels_last"),
            ("small_stem", "small stem"),
        ):
            value = r.get(key)
            default = {"batch_size": 256, "channels_last": "off", "small_stem": "off"}.get(key)
            if value is not None and value != default:
                other.append(f"{label} {value}")
        e, p = r["emb"], r["rep"]
        projected = r["method"] in ("simclr-mlp", "simclr-linear")
        proj = (r["proj_out"] or "rep/16") if projected else "-"
        print(
            f"| {r['tag']} | {r['method']} | {r['epochs']} | {r['subset']} | {r['width']} | "
            f"{proj} | {', '.join(other) or '-'} | {r['seed']} | "
            f"{r['train_s']:.0f} | {100 * r['top1']:.1f} | {100 * r['knn_top1_k20']:.1f} | "
            f"{e['collapsed_dims']}/{e['dim']} | {e['rankme']:.1f} | "
            f"{p['collapsed_dims']}/{p['dim']} | {p['rankme']:.1f} |"
        )


if __name__ == "__main__":
    main()
