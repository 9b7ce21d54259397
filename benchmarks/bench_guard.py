"""What the divergence guard costs per training step: the trainer's own step (``train.Stepper``)
with :class:`~dimcollapse.train.DivergenceGuard` against the same step with a guard that checks
nothing, in one process, in alternating blocks (so a busy neighbour slows both alike).

The guard adds, per step and without a host sync: ``isfinite`` of the two losses, one fused
``torch._foreach_norm`` over every gradient, and a few scalar ``where``s. The ratio
``guarded / unguarded`` is the number to watch (goal: at most 1.03 on the CPU).

    python benchmarks/bench_guard.py                 # CPU, ResNet-18 width 0.25, 32 px, batch 64
    python benchmarks/bench_guard.py --device cuda --width 1 --batch 256 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from dimcollapse.config import TrainConfig
from dimcollapse.model import ModelSpec, build_model
from dimcollapse.optim import build_optimization
from dimcollapse.train import DivergenceGuard, EpochTally, Stepper, build_stepper


class _NoGuard(DivergenceGuard):
    """The baseline: every step is good, nothing is checked."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._good = torch.zeros((), dtype=torch.bool, device=self.first_step.device)

    def inspect(self, loss: torch.Tensor, probe_loss: torch.Tensor, step: int) -> torch.Tensor:
        return self._good

    def skip_step(self, bad: torch.Tensor) -> bool:
        return False


def _stepper(args: argparse.Namespace, guarded: bool, device: torch.device) -> Stepper:
    spec = ModelSpec(
        method="simclr-mlp",
        backbone="resnet18",
        width=args.width,
        in_channels=3,
        small_stem=True,
        num_classes=10,
    )
    torch.manual_seed(0)
    model = build_model(spec).to(device)
    cfg = TrainConfig(batch_size=args.batch)
    optimization = build_optimization(
        model, cfg, total_steps=10**6, warmup_steps=0, precision="fp32", device=device
    )
    guard_type = DivergenceGuard if guarded else _NoGuard
    guard = guard_type(model, "fp32", 0, device)
    return build_stepper(
        model, optimization, guard, cfg, precision="fp32", device=device, channels_last=False
    )


def _time_block(stepper: Stepper, batch: tuple, steps: int, device: torch.device) -> float:
    tally = EpochTally.zero(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for i in range(steps):
        stepper.step(*batch, i + 1, tally)
    float(tally.loss_sum)  # wait for the device
    return (time.perf_counter() - t0) / steps


def _time_inspect(guard: DivergenceGuard, device: torch.device, repeats: int = 200) -> float:
    """Seconds per ``guard.inspect`` on the gradients the last step left: the guard's own cost,
    free of the step's noise."""
    loss = torch.ones((), device=device)
    for _ in range(3):
        guard.inspect(loss, loss, 1)
    t0 = time.perf_counter()
    for i in range(repeats):
        guard.inspect(loss, loss, i)
    int(guard.first_step)  # wait for the device
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks of each")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    batch = (
        torch.randn(shape, generator=g).to(device),
        torch.randn(shape, generator=g).to(device),
        torch.randint(0, 10, (args.batch,), generator=g).to(device),
    )
    steppers = {"guarded": _stepper(args, True, device), "unguarded": _stepper(args, False, device)}
    for s in steppers.values():
        _time_block(s, batch, 2, device)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(args.blocks):
        for name, s in steppers.items():
            seconds[name].append(_time_block(s, batch, args.steps, device))
    ratios = [a / b for a, b in zip(seconds["guarded"], seconds["unguarded"])]
    inspect_s = _time_inspect(steppers["guarded"].guard, device)
    result = {
        "device": str(device),
        "settings": vars(args),
        "step_s_median": {k: statistics.median(v) for k, v in seconds.items()},
        "ratio_median": statistics.median(ratios),
        "ratio_per_block": ratios,
        "inspect_alone_s": inspect_s,
        "inspect_over_step": inspect_s / statistics.median(seconds["unguarded"]),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    med = result["step_s_median"]
    print(
        f"{device}: step {med['guarded'] * 1e3:.1f} ms guarded, {med['unguarded'] * 1e3:.1f} ms "
        f"unguarded; guarded / unguarded = {result['ratio_median']:.3f} (median of "
        f"{args.blocks} paired blocks: {', '.join(f'{r:.3f}' for r in ratios)}); the guard's "
        f"checks alone {inspect_s * 1e3:.2f} ms = {result['inspect_over_step']:.2%} of a step"
    )


if __name__ == "__main__":
    main()
