"""How soon the command line answers, against what torch alone costs to import.

Each route is a fresh process, timed from start to exit, in rounds that run every route once in
turn (so a busy neighbour slows all alike); the medians and their ratios to a bare
``python -c 'import torch'`` are what to compare:

* ``import-torch``: ``python -c 'import torch'``, the unit;
* ``python``: ``python -c pass``, the interpreter alone;
* ``probe-help``: ``dimcollapse probe --help`` (goal: within 1 s on quiet cores, and well under
  ``import-torch``: building the parser imports no torch);
* ``spectrum``: a first ``dimcollapse spectrum`` of a small .npy file (``--rows`` x ``--dim``):
  what a user waits for an answer, torch's import included.

    python benchmarks/bench_cli_start.py                # 7 rounds, a 1,000 x 64 file
    python benchmarks/bench_cli_start.py --rounds 15 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(argv: list[str]) -> float:
    """Seconds from start to exit of one process; it must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    return seconds


def _routes(npy: Path) -> dict[str, list[str]]:
    python = sys.executable
    script = str(Path(python).parent / "dimcollapse")
    return {
        "python": [python, "-c", "pass"],
        "import-torch": [python, "-c", "import torch"],
        "probe-help": [script, "probe", "--help"],
        "spectrum": [script, "spectrum", str(npy), "--json"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="times each route runs")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the spectrum's file")
    parser.add_argument("--dim", type=int, default=64, help="columns of the spectrum's file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "emb.npy"
        rng = np.random.default_rng(0)
        np.save(npy, rng.normal(size=(args.rows, args.dim)).astype(np.float32))
        routes = _routes(npy)
        for argv in routes.values():  # warm the page cache and Python's bytecode caches
            _time(argv)
        times: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(args.rounds):
            for name, argv in routes.items():
                times[name].append(_time(argv))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    unit = medians["import-torch"]
    result = {
        "rounds": args.rounds,
        "file": f"{args.rows} x {args.dim} float32 .npy",
        "cpus": os.cpu_count(),
        "load_1min": os.getloadavg()[0],
        "median_s": {k: round(v, 3) for k, v in medians.items()},
        "range_s": {k: [round(min(ts), 3), round(max(ts), 3)] for k, ts in times.items()},
        "over_import_torch": {k: round(v / unit, 3) for k, v in medians.items()},
        "probe_help_within_1s": medians["probe-help"] <= 1.0,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.rounds} rounds; load {result['load_1min']:.2f}; spectrum of {result['file']}")
    print(f"{'route':<14}{'median s':>10}{'min-max s':>16}{'/ import torch':>16}")
    for name in routes:
        lo, hi = result["range_s"][name]
        print(
            f"{name:<14}{medians[name]:>10.3f}{f'{lo:.2f}-{hi:.2f}':>16}"
            f"{medians[name] / unit:>16.2f}"
        )
    print(
        f"probe --help within 1 s: {'met' if result['probe_help_within_1s'] else 'NOT met'} "
        f"({medians['probe-help']:.2f} s)"
    )


if __name__ == "__main__":
    main()
