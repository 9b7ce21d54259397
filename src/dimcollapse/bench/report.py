"""The readable table of a :func:`~dimcollapse.bench.run_bench` result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dimcollapse.bench.defaults import GPU_DEFAULTS
from dimcollapse.bench.goals import goal_text


def format_report(result: Mapping[str, Any]) -> str:
    """The readable table of a :func:`~dimcollapse.bench.run_bench` result."""
    lines = _setting_lines(result)
    if result["scaled_down"]:
        lines.append(_scaled_down_note(result))
    lines += _timing_lines(result)
    lines += _goal_lines(result)
    return "\n".join(lines)


def _setting_lines(result: Mapping[str, Any]) -> list[str]:
    """Device, model and data of the run."""
    r = result
    stem = {"cifar": "small stem", "imagenet": "ImageNet stem", "half": "half stem"}[
        r.get("stem") or ("cifar" if r["small_stem"] else "imagenet")
    ]
    return [
        f"dimcollapse bench on {r['device']} ({r['device_name']}), torch {r['torch_version']}",
        f"  {r['backbone']} ({stem}) width {r['width']:g}, rep {r['rep_dim']}, "
        f"head {r['head']} -> {r['embedding_dim']}, {r['loss']}, LARS",
        f"  views {r['image_size']}x{r['image_size']}x{r['channels']} from "
        f"{r['source_size']} px uint8 images, batch {r['batch']} pairs, {r['precision']}, "
        f"{r['threads']} CPU thread(s)"
        + (", channels_last" if r["channels_last"] else "")
        + (", torch.compile" if r["compile"] else ""),
    ]


def _scaled_down_note(result: Mapping[str, Any]) -> str:
    """Which settings took the CPU's smaller defaults, beside the GPU's."""

    def listed(values: Mapping[str, Any]) -> str:
        return ", ".join(
            f"{k} {values[k]:,}" if k != "width" else f"width {values[k]:g}"
            for k in result["scaled_down"]
        )

    return (
        f"  note: no GPU, settings scaled down for the CPU: {listed(result)} "
        f"(GPU defaults: {listed(GPU_DEFAULTS)})"
    )


def _timing_lines(result: Mapping[str, Any]) -> list[str]:
    """The three paths' table, their ratios and the spectrum's time."""
    r = result
    worker_label = f"(c) {r['workers']} CPU worker(s) augmentation + step"
    return [
        "",
        f"  {'path':<46}{'pairs/s':>12}{'ms/step':>10}",
        f"  {'(a) step on random tensors on the device':<46}"
        f"{r['backbone_pairs_per_s']:>12,.1f}{r['backbone_step_ms']:>10.1f}",
        f"  {'(b) device augmentation + step':<46}"
        f"{r['device_aug_pairs_per_s']:>12,.1f}{r['device_aug_step_ms']:>10.1f}",
        f"  {worker_label:<46}"
        f"{r['worker_aug_pairs_per_s']:>12,.1f}{r['worker_aug_step_ms']:>10.1f}",
        f"  {'    device augmentation alone':<46}{r['augment_only_pairs_per_s']:>12,.1f}",
        "",
        f"  (b) / (a) = {r['device_vs_backbone']:.3f}     (b) / (c) = {r['device_vs_worker']:.2f}x"
        f"     ({r['steps']} timed steps after {r['warmup']} warm-up; (c) {r['worker_steps']} "
        f"steps, rate {r['worker_rate_method']})",
        f"  spectrum of {r['spectrum_rows']:,} x {r['spectrum_dim']} float32 on {r['device']}: "
        f"{r['spectrum_seconds']:.3f} s (accumulate {r['spectrum_accumulate_seconds']:.3f} s in "
        f"chunks of {r['spectrum_chunk_rows']:,}, eigendecomposition "
        f"{r['spectrum_eig_seconds']:.3f} s)",
    ]


def _goal_lines(result: Mapping[str, Any]) -> list[str]:
    """Each goal's verdict on CUDA; elsewhere, one line saying the goals are for one H200."""
    goals = result.get("goals") or []
    if not str(result["device"]).startswith("cuda"):
        return [
            "  goals ("
            + "; ".join(goal_text(g["metric"], g["minimum"]) for g in goals)
            + ") are for one H200: run with --device cuda"
        ]
    lines = []
    for g in goals:
        verdict = "met" if g["met"] else "NOT met"
        differs = (
            ""
            if g["reference"]
            else (
                "  (goal setting: "
                + ", ".join(f"{k} {v}" for k, v in g["reference_setting"].items())
                + "; this run differs)"
            )
        )
        lines.append(
            f"  goal {goal_text(g['metric'], g['minimum'])}: {g['value']:.3g} -> {verdict}{differs}"
        )
    return lines
