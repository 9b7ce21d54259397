"""The spectrum of a large embeddings file: streamed accumulator against the paper code's route.

On one float32 ``.npy`` file of N x d embeddings (default 1,000,000 x 512, about 2 GB; created
in a temporary directory, or at ``--path`` if that file does not exist yet), times

* ``read``: one pass over the file, ``open_embeddings(path).chunks()`` summing every chunk;
* ``stream-auto``: the same chunks through :class:`SpectrumAccumulator` (precision ``auto``:
  float64 outer products and sums, the default since RankMe needs them), then its singular values;
* ``stream-float32``: the same with float32 products (faster; RankMe about 0.2% off);
* ``numpy``: the paper code's route, ``np.load`` then ``np.cov(z.T)`` then ``np.linalg.svd``;

each in its own subprocess, and reports for each its seconds (timed inside the subprocess, after
its imports), its peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``) and its
peak *anonymous* memory (sampled from ``/proc/self/status`` every 5 ms). ``ru_maxrss`` counts the
file's pages that a memory map touched (clean page cache the kernel can drop at any time), so the
anonymous peak is the honest measure of what a route allocates. Two idle subprocesses (NumPy
alone; torch + dimcollapse) give the baseline each route starts from.

The file is read once before the routes (untimed), so every route sees a warm page cache; cold
reads depend on the disk. Goals: the streamed spectrum is faster than the NumPy route, takes at
most 2x one read of the file, and its peak memory above the idle interpreter is O(d^2) plus one
chunk (checked as <= 5 float64 chunks + 16 float64 d x d matrices, independent of N).

    python benchmarks/bench_spectrum.py                      # 1,000,000 x 512 in a temp dir
    python benchmarks/bench_spectrum.py --rows 200000 --json
    python benchmarks/bench_spectrum.py --path /data/emb.npy --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROUTES = ("idle-numpy", "idle-torch", "read", "stream-auto", "stream-float32", "numpy")
_GEN_ROWS = 65536


# ----------------------------------------------------------------------------------------------
# child side: one route per process


class _PeakSampler:
    """Samples this process's anonymous and total resident memory every ``interval`` seconds."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak_anon = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> tuple[int, int]:
        """(RssAnon, VmRSS) in bytes, from /proc/self/status (0 where unavailable)."""
        anon = rss = 0
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        anon = int(line.split()[1]) * 1024
                    elif line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) * 1024
        except OSError:
            pass
        return anon, rss

    def _sample(self) -> None:
        anon, rss = self.read()
        self.peak_anon = max(self.peak_anon, anon)
        self.peak_rss = max(self.peak_rss, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> _PeakSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _child(route: str, path: str, chunk_rows: int, device: str, out: str) -> None:
    """Run one route and write ``{seconds, peak_anon, ...}`` to ``out`` (JSON)."""
    if route != "idle-numpy" and route != "numpy":
        import torch

        from dimcollapse.embeddings import open_embeddings
        from dimcollapse.spectrum import SpectrumAccumulator

        threads = os.environ.get("BENCH_SPECTRUM_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
    sv = None
    with _PeakSampler() as sampler:
        start = time.perf_counter()
        if route == "read":
            src = open_embeddings(path)
            total = 0.0
            for chunk in src.chunks(chunk_rows):
                total += float(chunk.sum())
        elif route in ("stream-auto", "stream-float32"):
            precision = "auto" if route == "stream-auto" else "float32"
            acc = SpectrumAccumulator(device=device, precision=precision)
            for chunk in open_embeddings(path).chunks(chunk_rows):
                acc.update(chunk)
            sv = acc.singular_values()
        elif route == "numpy":
            # the paper code's spectrum.py: np.cov of the embeddings, then a full SVD
            z = np.load(path)
            c = np.cov(z.T)
            _u, s, _vh = np.linalg.svd(c)
            sv = s * (z.shape[0] - 1) / z.shape[0]  # np.cov divides by N-1, Eq. 1 by N
        seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "route": route,
        "seconds": seconds if not route.startswith("idle") else 0.0,
        "peak_anon_bytes": sampler.peak_anon,
        "peak_rss_sampled_bytes": sampler.peak_rss,
    }
    if sv is not None:
        np.save(out + ".sv.npy", np.asarray(sv, dtype=np.float64))
        result["singular_values"] = out + ".sv.npy"
    Path(out).write_text(json.dumps(result))


# ----------------------------------------------------------------------------------------------
# parent side


def _make_file(path: Path, rows: int, dim: int, seed: int = 0) -> None:
    """Write a rows x dim float32 .npy with a power-law spectrum and dim/8 collapsed directions."""
    rng = np.random.default_rng(seed)
    scale = np.arange(1, dim + 1, dtype=np.float64) ** -0.5
    scale[dim - dim // 8 :] *= 1e-4
    scale = scale.astype(np.float32)
    tmp = path.with_name(path.name + ".part.npy")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, _GEN_ROWS):
        n = min(_GEN_ROWS, rows - start)
        arr[start : start + n] = rng.standard_normal((n, dim), dtype=np.float32) * scale
    arr.flush()
    del arr
    os.replace(tmp, path)


def _warm_read(path: Path) -> float:
    """Read the whole file once (untimed by the routes); return the seconds it took."""
    start = time.perf_counter()
    buf = bytearray(64 << 20)
    with open(path, "rb", buffering=0) as fh:
        while fh.readinto(buf):
            pass
    return time.perf_counter() - start


def _run_route(
    route: str, path: Path, chunk_rows: int, device: str, workdir: Path, threads: int | None
) -> dict[str, Any]:
    out = workdir / f"{route}.json"
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env["BENCH_SPECTRUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--route", route, "--path", str(path)]
    cmd += ["--chunk-rows", str(chunk_rows), "--device", device, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env)
    _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"route {route} failed with exit status {proc.returncode}")
    rec = json.loads(out.read_text())
    # ru_maxrss is in KiB on Linux
    rec["maxrss_bytes"] = usage.ru_maxrss * 1024
    return rec


def _mb(n: float) -> float:
    return n / (1 << 20)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="rows of the file to create")
    p.add_argument("--dim", type=int, default=512, help="columns of the file to create")
    p.add_argument("--path", default=None, help="the .npy to use (created if missing, then kept)")
    p.add_argument("--chunk-rows", type=int, default=65536, help="rows per streamed chunk")
    p.add_argument("--device", default="cpu", help="device of the accumulator (cpu, cuda)")
    p.add_argument("--threads", type=int, default=None, help="BLAS and torch threads per route")
    p.add_argument("--skip-numpy", action="store_true", help="leave out the NumPy route")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--make", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--route", choices=ROUTES, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.make:
        _make_file(Path(args.path), args.rows, args.dim)
        return 0
    if args.route:
        _child(args.route, args.path, args.chunk_rows, args.device, args.out)
        return 0
    if args.rows < 2 or args.dim < 1 or args.chunk_rows < 1:
        p.error("--rows must be >= 2, --dim and --chunk-rows >= 1")

    workdir = Path(tempfile.mkdtemp(prefix="bench_spectrum_"))
    try:
        path = Path(args.path) if args.path else workdir / "embeddings.npy"
        if not path.exists():
            print(f"creating {path} ({args.rows:,} x {args.dim} float32)", file=sys.stderr)
            # in a child: on Linux a child's ru_maxrss starts from the parent's peak (vfork +
            # exec), so this process must never hold much memory itself
            cmd = [sys.executable, __file__, "--make", "--path", str(path)]
            subprocess.run(cmd + ["--rows", str(args.rows), "--dim", str(args.dim)], check=True)
        shape = np.load(path, mmap_mode="r").shape
        if len(shape) != 2:
            p.error(f"{path} is not a 2-D array: shape {shape}")
        rows, dim = shape
        file_bytes = path.stat().st_size
        warm_seconds = _warm_read(path)

        routes = [r for r in ROUTES if not (args.skip_numpy and r == "numpy")]
        recs: dict[str, dict[str, Any]] = {}
        for route in routes:
            print(f"route {route} ...", file=sys.stderr, flush=True)
            recs[route] = _run_route(
                route, path, args.chunk_rows, args.device, workdir, args.threads
            )
        result = _summarise(recs, rows, dim, args, file_bytes, warm_seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(_table(result), flush=True)
    return 0


def _summarise(
    recs: dict[str, dict[str, Any]],
    rows: int,
    dim: int,
    args: argparse.Namespace,
    file_bytes: int,
    warm_seconds: float,
) -> dict[str, Any]:
    import platform

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    try:
        from dimcollapse.bench import cpu_model

        cpu = cpu_model()
    except ImportError:  # pragma: no cover
        cpu = platform.processor()

    idle = {"numpy": recs["idle-numpy"], "torch": recs["idle-torch"]}
    routes = {}
    for name, rec in recs.items():
        if name.startswith("idle"):
            continue
        base = idle["numpy" if name == "numpy" else "torch"]
        routes[name] = {
            "seconds": rec["seconds"],
            "maxrss_mb": _mb(rec["maxrss_bytes"]),
            "peak_anon_mb": _mb(rec["peak_anon_bytes"]),
            "peak_anon_above_idle_mb": _mb(rec["peak_anon_bytes"] - base["peak_anon_bytes"]),
        }
    sv = {n: np.load(r["singular_values"]) for n, r in recs.items() if "singular_values" in r}
    agreement = {}
    ref = sv.get("stream-auto")  # float64 products
    if ref is not None:
        for name, values in sv.items():
            if name != "stream-auto":
                agreement[name] = float(np.max(np.abs(values - ref)) / ref[0])

    chunk_bytes64 = args.chunk_rows * dim * 8
    mem_bound_mb = _mb(5 * chunk_bytes64 + 16 * dim * dim * 8)
    auto = routes["stream-auto"]
    read = routes["read"]
    res: dict[str, Any] = {
        "rows": rows,
        "dim": dim,
        "file_mb": _mb(file_bytes),
        "chunk_rows": args.chunk_rows,
        "device": args.device,
        "threads": args.threads,
        "warm_read_seconds": warm_seconds,
        "page_cache": "warm (the file was read once before the routes)",
        "routes": routes,
        "idle_anon_mb": {k: _mb(v["peak_anon_bytes"]) for k, v in idle.items()},
        "idle_maxrss_mb": {k: _mb(v["maxrss_bytes"]) for k, v in idle.items()},
        "stream_over_read": auto["seconds"] / read["seconds"],
        "stream_float32_over_read": routes["stream-float32"]["seconds"] / read["seconds"],
        "max_abs_sv_diff_over_sigma1_vs_float64": agreement,
        "memory_bound_mb": mem_bound_mb,
        "cpu": cpu,
        "torch_version": torch_version,
        "numpy_version": np.__version__,
    }
    goals = {
        "within_2x_of_read": auto["seconds"] <= 2 * read["seconds"],
        "memory_o_d2_plus_chunk": auto["peak_anon_above_idle_mb"] <= mem_bound_mb,
    }
    if "numpy" in routes:
        res["numpy_over_stream"] = routes["numpy"]["seconds"] / auto["seconds"]
        res["numpy_over_stream_float32"] = (
            routes["numpy"]["seconds"] / routes["stream-float32"]["seconds"]
        )
        goals["faster_than_numpy"] = auto["seconds"] < routes["numpy"]["seconds"]
    res["goals"] = goals
    return res


def _table(r: dict[str, Any]) -> str:
    lines = [
        f"spectrum of {r['rows']:,} x {r['dim']} float32 ({r['file_mb']:,.0f} MB .npy), chunks of "
        f"{r['chunk_rows']:,} rows, accumulator on {r['device']}; {r['page_cache']}",
        f"machine: {r['cpu']}; torch {r['torch_version']}, numpy {r['numpy_version']}"
        + (f"; {r['threads']} thread(s) per route" if r["threads"] else ""),
        "",
        f"  {'route':<18}{'seconds':>10}{'maxrss MB':>12}{'peak anon MB':>14}{'above idle':>12}",
    ]
    for name, rec in r["routes"].items():
        lines.append(
            f"  {name:<18}{rec['seconds']:>10.2f}{rec['maxrss_mb']:>12,.0f}"
            f"{rec['peak_anon_mb']:>14,.0f}{rec['peak_anon_above_idle_mb']:>12,.0f}"
        )
    idle = r["idle_anon_mb"]
    lines += [
        f"  (idle interpreters: anon {idle['numpy']:,.0f} MB with NumPy, {idle['torch']:,.0f} MB "
        "with torch + dimcollapse; maxrss counts the file pages a memory map touched)",
        "",
        f"  stream-auto / read       = {r['stream_over_read']:.2f}   (goal <= 2)",
        f"  stream-float32 / read    = {r['stream_float32_over_read']:.2f}",
    ]
    if "numpy_over_stream" in r:
        lines += [
            f"  numpy / stream-auto      = {r['numpy_over_stream']:.2f}x  (goal > 1)",
            f"  numpy / stream-float32   = {r['numpy_over_stream_float32']:.2f}x",
        ]
    lines.append(
        f"  stream-auto memory above idle: {r['routes']['stream-auto']['peak_anon_above_idle_mb']:,.0f}"
        f" MB (goal <= {r['memory_bound_mb']:,.0f} MB = 5 float64 chunks + 16 d x d float64)"
    )
    for name, diff in r["max_abs_sv_diff_over_sigma1_vs_float64"].items():
        lines.append(f"  max |sv - sv(stream-auto, float64)| / sigma_1, {name}: {diff:.2e}")
    lines.append(
        "  goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in r["goals"].items())
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
