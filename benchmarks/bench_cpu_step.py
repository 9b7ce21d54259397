"""CPU training-step variants against today's fp32 step, as ratios measured in one run.

Times the pretraining step the trainer runs (``ContrastiveModel`` forward of two views,
symmetric InfoNCE at tau 0.1, online-probe cross-entropy, backward, LARS step) on random 28x28
one-channel views (Fashion-MNIST's shape), ResNet-18 at width 0.25 with the standard stem and a
128-d MLP projector, batch 256, one thread: the reproduction's quick and cpu scales. Variants:

* ``fp32``: today's step (the baseline of every ratio);
* ``bf16``: ``torch.autocast("cpu", torch.bfloat16)`` around the forward;
* ``channels_last``: the views and the model in channels_last, fp32;
* ``bf16+channels_last``;
* ``compile``: ``torch.compile`` of the backbone, fp32 (compile time excluded);

The variants are timed in interleaved rounds (each round runs every variant once for
``--steps`` steps), so a busy neighbour slows them alike; the ratio of medians is reported.

``--processes``: also compares 2 threads in one process against 2 single-threaded processes
running side by side (throughput of the pair against one process's), which is how
``dimcollapse reproduce`` uses a 2-core machine.

    python benchmarks/bench_cpu_step.py --rounds 5 --steps 4 --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time

import torch
import torch.nn.functional as F

from dimcollapse.config import TrainConfig
from dimcollapse.losses import info_nce
from dimcollapse.model import ModelSpec, build_model
from dimcollapse.optim import build_optimizer


def _make(variant: str, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    spec = ModelSpec(
        method="simclr-mlp",
        backbone="resnet18",
        width=0.25,
        in_channels=1,
        small_stem=False,
        num_classes=10,
        proj_out=128,
    )
    model = build_model(spec)
    cl = "channels_last" in variant
    if cl:
        model = model.to(memory_format=torch.channels_last)
    if variant == "compile":
        model.backbone = torch.compile(model.backbone)
    cfg = TrainConfig()  # the trainer's defaults; base_lr as the lr (batch 256's)
    opt = build_optimizer(
        cfg.optimizer, model, lr=cfg.base_lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
    )
    v1 = torch.randn(batch, 1, 28, 28)
    v2 = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    if cl:
        v1 = v1.contiguous(memory_format=torch.channels_last)
        v2 = v2.contiguous(memory_format=torch.channels_last)
    bf16 = "bf16" in variant

    def step() -> float:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else _null()
        with ctx:
            _r1, z1, _r2, z2, logits = model(v1, v2)
        loss = info_nce(z1.float(), z2.float(), temperature=cfg.temperature)
        loss = loss + F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    return step


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _time(step, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def variants_bench(variants, rounds: int, steps: int, batch: int) -> dict:
    torch.set_num_threads(1)
    fns = {}
    for v in variants:
        fns[v] = _make(v, batch)
        fns[v]()  # warm-up (and compilation)
        fns[v]()
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            times[v].append(_time(fns[v], steps))
    med = {v: statistics.median(t) for v, t in times.items()}
    return {
        "batch": batch,
        "threads": 1,
        "seconds_per_step_median": med,
        "pairs_per_s": {v: batch / med[v] for v in variants},
        "speedup_vs_fp32": {v: med["fp32"] / med[v] for v in variants},
    }


def _worker(args) -> float:
    threads, steps, batch, variant = args
    torch.set_num_threads(threads)
    step = _make(variant, batch)
    step()
    return steps * batch / (_time(step, steps) * steps)


def processes_bench(steps: int, batch: int, variant: str) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        one_two_threads = pool.map(_worker, [(2, steps, batch, variant)])[0]
    with ctx.Pool(2) as pool:
        pair = pool.map(_worker, [(1, steps, batch, variant)] * 2)
    return {
        "variant": variant,
        "one_process_2_threads_pairs_per_s": one_two_threads,
        "two_processes_1_thread_pairs_per_s": sum(pair),
        "processes_vs_threads": sum(pair) / one_two_threads,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--variants", default="fp32,bf16,channels_last,bf16+channels_last,compile")
    p.add_argument("--processes", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = {
        "torch": torch.__version__,
        "variants": variants_bench(args.variants.split(","), args.rounds, args.steps, args.batch),
    }
    if args.processes:
        out["processes"] = processes_bench(args.steps * 3, args.batch, "fp32")
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for v, s in out["variants"]["speedup_vs_fp32"].items():
            pps = out["variants"]["pairs_per_s"][v]
            print(f"{v:>20}: {pps:8.1f} pairs/s  x{s:.2f} vs fp32")
        if "processes" in out:
            print(json.dumps(out["processes"]))


if __name__ == "__main__":
    main()
