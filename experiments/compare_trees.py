"""Check a refactor against the tree it started from: every ``--help`` text, a 2-epoch
training run of every method, bit for bit, and (``--reproduce``) a tiny reproduction.

    python experiments/compare_trees.py OLD_SRC NEW_SRC [--methods m1,m2] [--reproduce] [--work DIR]

OLD_SRC and NEW_SRC are ``src`` folders (e.g. of ``git worktree add /tmp/old <commit>``); each
command runs as ``python -m dimcollapse`` with that folder on PYTHONPATH, one thread. Training
runs on the digits dataset (bundled with scikit-learn, no download), 2 epochs at width 1/16,
deterministic. Prints one line per check and exits 1 when any differs: metrics.jsonl with its
timing fields removed, and every tensor of the final checkpoint's model, compared exactly.
``--reproduce`` runs ``dimcollapse reproduce`` on digits at a tiny size (1 seed) in both trees
and compares ``reproduce.json`` without what says when, where or how fast (timings, paths, the
machine, the command): every result, baseline, image-lab record and claim, exactly.
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
REPRODUCE = [
    "reproduce", "--dataset", "digits", "--epochs", "1", "--subset", "128", "--width", "0.0625",
    "--batch-size", "64", "--monitor-samples", "64", "--probe-epochs", "2", "--test-subset", "100",
    "--toy-steps", "20", "--image-steps", "5", "--seeds", "1", "--jobs", "1", "--quiet",
]  # fmt: skip
#: reproduce.json's fields that say when, where or how fast, not what was found.
VOLATILE = ("timing", "environment", "execution", "command", "argv", "run_dir", "run_dirs")
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


def _results(data: object) -> object:
    """``reproduce.json``'s data without its :data:`VOLATILE` and timing fields."""
    if isinstance(data, dict):
        return {
            k: _results(v)
            for k, v in data.items()
            if k not in VOLATILE and not any(t in k for t in TIMING)
        }
    if isinstance(data, list):
        return [_results(v) for v in data]
    return data


def _compare_reproductions(old: str, new: str, work: Path) -> bool:
    found = []
    for side, src in (("old", old), ("new", new)):
        out = work / side / "reproduce"
        done = _run(src, [*REPRODUCE, "--out", str(out)])
        if done.returncode:
            print(f"{side} reproduce failed: {done.stderr.strip()[-300:]}")
        found.append(_results(json.loads((out / "reproduce.json").read_text())))
    same = found[0] == found[1]
    print(f"tiny reproduction: results {'same' if same else 'DIFFER'}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--methods", default=None, help="comma-separated (default: the old tree's)")
    parser.add_argument("--reproduce", action="store_true", help="also a tiny reproduction")
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
    if args.reproduce:
        failed += not _compare_reproductions(args.old, args.new, Path(args.work))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
