"""Check a refactor against the tree it started from: every ``--help`` text, and a 2-epoch
training run of every method, bit for bit.

    python experiments/compare_trees.py OLD_SRC NEW_SRC [--methods m1,m2] [--work DIR]

OLD_SRC and NEW_SRC are ``src`` folders (e.g. of ``git worktree add /tmp/old <commit>``); each
command runs as ``python -m dimcollapse`` with that folder on PYTHONPATH, one thread. Training
runs on the digits dataset (bundled with scikit-learn, no download), 2 epochs at width 1/16,
deterministic. Prints one line per check and exits 1 when any differs: metrics.jsonl with its
timing fields removed, and every tensor of the final checkpoint's model, compared exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

TIMING = ("seconds", "time", "images_per_s", "wall", "elapsed", "step_s", "data_s", "eta")
TRAIN = [
    "--dataset", "digits", "--epochs", "2", "--width", "0.0625", "--batch-size", "64",
    "--subset", "256", "--monitor-samples", "64", "--device", "cpu", "--workers", "0",
    "--deterministic", "--quiet",
]  # fmt: skip


def _run(src: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "dimcollapse", *args], env=env, capture_output=True, text=True
    )


def _commands(src: str) -> list[str]:
    """Every command and subcommand (``toy images``), from the tree's own parser."""
    code = """
import argparse
from dimcollapse.cli import build_parser
def walk(parser, words):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                print(" ".join([*words, name]))
                walk(sub, [*words, name])
walk(build_parser(), [])
"""
    return _python(src, code).splitlines()


def _python(src: str, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return done.stdout.strip()


def _metrics(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if not any(t in k for t in TIMING)} for r in rows]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt)
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--methods", default=None, help="comma-separated (default: the old tree's)")
    parser.add_argument("--work", default="/tmp/compare-trees")
    args = parser.parse_args()
    failed = 0
    for words in ([], *(c.split() for c in _commands(args.old))):
        old, new = (_run(src, [*words, "--help"]).stdout for src in (args.old, args.new))
        same = old == new
        failed += not same
        print(f"{'same' if same else 'DIFFERS'}: dimcollapse {' '.join(words)} --help")
    methods = args.methods.split(",") if args.methods else None
    if methods is None:
        code = "from dimcollapse.methods import METHODS; print(','.join(METHODS))"
        methods = _python(args.old, code).split(",")
    for method in methods:
        runs = []
        for side, src in (("old", args.old), ("new", args.new)):
            out = Path(args.work) / side / method
            done = _run(src, ["train", "--method", method, *TRAIN, "--out", str(out)])
            if done.returncode:
                print(f"{side} {method} failed: {done.stderr.strip()[-300:]}")
            runs.append(out)
        same_metrics = _metrics(runs[0] / "metrics.jsonl") == _metrics(runs[1] / "metrics.jsonl")
        a, b = (_weights(r) for r in runs)
        same_weights = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        failed += not (same_metrics and same_weights)
        print(f"{method}: metrics {'same' if same_metrics else 'DIFFER'}, "
              f"weights {'same' if same_weights else 'DIFFER'} ({len(a)} tensors)")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
