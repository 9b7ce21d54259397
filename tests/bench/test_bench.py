"""`dimcollapse bench` / :func:`dimcollapse.bench.run_bench`: keys, figures, ratios, bad options."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import assert_usage_error

from dimcollapse.bench import (
    BenchSettings,
    _worker_rate,
    evaluate_goals,
    format_report,
    run_bench,
)

TINY = dict(
    device="cpu",
    width=0.0625,
    batch=8,
    steps=2,
    warmup=1,
    image_size=16,
    spectrum_rows=2000,
    spectrum_dim=32,
    threads=1,  # a shared 2-core CI machine is far faster with one thread
)
TINY_ARGS = (
    "--device", "cpu", "--width", "0.0625", "--batch", "8", "--steps", "2", "--warmup", "1",
    "--image-size", "16", "--spectrum-rows", "2000", "--spectrum-dim", "32", "--threads", "1",
)  # fmt: skip

FIGURES = (
    "backbone_pairs_per_s",
    "device_aug_pairs_per_s",
    "worker_aug_pairs_per_s",
    "device_vs_backbone",
    "device_vs_worker",
    "spectrum_seconds",
    "augment_only_pairs_per_s",
    "spectrum_accumulate_seconds",
    "spectrum_eig_seconds",
)
SETTINGS = (
    "device",
    "backbone",
    "image_size",
    "channels",
    "batch",
    "steps",
    "warmup",
    "workers",
    "width",
    "precision",
    "channels_last",
    "compile",
    "spectrum_rows",
    "spectrum_dim",
    "source_size",
    "small_stem",
    "seed",
    "threads",
)


def _check_result(res: dict) -> None:
    for key in (*FIGURES, *SETTINGS, "device_name", "torch_version", "goals"):
        assert key in res, key
    for key in FIGURES:
        assert isinstance(res[key], float) and math.isfinite(res[key]) and res[key] > 0, key
    assert res["device_vs_backbone"] == pytest.approx(
        res["device_aug_pairs_per_s"] / res["backbone_pairs_per_s"], rel=1e-12
    )
    assert res["device_vs_worker"] == pytest.approx(
        res["device_aug_pairs_per_s"] / res["worker_aug_pairs_per_s"], rel=1e-12
    )
    assert res["spectrum_seconds"] == pytest.approx(
        res["spectrum_accumulate_seconds"] + res["spectrum_eig_seconds"], rel=1e-9
    )
    assert res["torch_version"] == torch.__version__
    json.dumps(res)  # JSON-ready


def test_run_bench_tiny_cpu():
    res = run_bench(BenchSettings(**TINY, workers=0))
    _check_result(res)
    assert res["device"] == "cpu" and res["precision"] == "fp32"
    assert res["batch"] == 8 and res["steps"] == 2 and res["workers"] == 0
    assert res["spectrum_rows"] == 2000 and res["spectrum_dim"] == 32
    assert res["small_stem"] is True and res["channels_last"] is False
    assert res["scaled_down"] == []  # every CPU default was overridden
    assert all(g["met"] is None for g in res["goals"])  # goals are judged on CUDA only
    text = format_report(res)
    assert "(b) / (a)" in text and "pairs/s" in text and "H200" in text

    # the CUDA branch of the verdicts and of the report, on the same figures
    as_cuda = {**res, "device": "cuda:0", "device_vs_backbone": 0.9, "device_vs_worker": 3.0}
    goals = evaluate_goals(as_cuda)
    assert [(g["metric"], g["met"]) for g in goals] == [
        ("device_vs_backbone", True),
        ("device_vs_worker", False),
    ]
    assert not any(g["reference"] for g in goals)  # tiny settings are not the goal's
    text = format_report({**as_cuda, "goals": goals})
    assert "(b) >= 85% of (a): 0.9 -> met" in text and "(b) >= 4x (c): 3 -> NOT met" in text
    large = evaluate_goals({**as_cuda, "image_size": 224})
    assert [(g["metric"], g["minimum"]) for g in large] == [("device_vs_backbone", 0.70)]


def test_cli_json_one_channel_with_a_worker(cli):
    args = ("--workers", "1", "--channels", "1", "--stem", "half", "--json")
    code, out, err = cli("bench", *TINY_ARGS, *args)
    assert code == 0, err
    res = json.loads(out)
    _check_result(res)
    assert res["channels"] == 1 and res["workers"] == 1 and res["stem"] == "half"


def test_cpu_defaults_are_scaled_down_and_said():
    from dimcollapse.bench import CPU_DEFAULTS, resolve_settings

    s = resolve_settings({"device": "cpu"})
    assert s["batch"] == CPU_DEFAULTS["batch"] and s["width"] == CPU_DEFAULTS["width"]
    assert {"batch", "width", "spectrum_rows", "spectrum_dim"} <= set(s["scaled_down"])
    assert s["backbone"] == "resnet18" and s["image_size"] == 32


def test_worker_rate_ignores_batches_queued_before_the_clock():
    # 4 workers deliver bursts of 4 batches every second; 3 were already queued at the start.
    waits, arrivals = [], []
    t = 0.0
    for i in range(15):
        burst_start = i in (3, 7, 11)
        wait = 0.9 if burst_start else 0.001
        t += wait + 0.01
        waits.append(wait)
        arrivals.append(t)
    rate, method = _worker_rate(waits, arrivals, elapsed=t + 0.01, batch=10)
    assert method == "between dry fetches"
    assert rate == pytest.approx(8 * 10 / (arrivals[11] - arrivals[3]))
    # a step-bound loop (no dry fetches) is timed end to end
    rate, method = _worker_rate([0.001] * 10, [0.1 * i for i in range(10)], elapsed=1.0, batch=4)
    assert method == "end to end" and rate == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--batch", "1"), "--batch"),
        (("--steps", "0"), "--steps"),
        (("--warmup", "-1"), "--warmup"),
        (("--workers", "-2"), "--workers"),
        (("--width", "0"), "--width"),
        (("--channels", "2"), "--channels"),
        (("--spectrum-rows", "1"), "--spectrum-rows"),
        (("--backbone", "vgg16"), "unknown backbone"),
        (("--precision", "fp16"), "--precision"),
        (("--steps", "many"), "--steps"),
        (("--threads", "0"), "--threads"),
    ],
)
def test_bad_options_exit_2(cli, args, fragment):
    assert_usage_error(cli("bench", "--device", "cpu", *args), fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_usage_error(cli):
    assert_usage_error(cli("bench", "--device", "cuda"), "no CUDA device")


def test_unknown_setting_in_a_mapping():
    from dimcollapse.errors import UsageError

    with pytest.raises(UsageError, match="unknown bench setting"):
        run_bench({"batchsize": 8})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_augmentation_beats_cpu_workers():
    res = run_bench(
        BenchSettings(
            device="cuda",
            batch=256,
            steps=10,
            warmup=3,
            workers=2,
            spectrum_rows=100_000,
            spectrum_dim=256,
        )
    )
    _check_result(res)
    assert res["precision"] == "bf16" and res["channels_last"] is True
    assert res["device_aug_pairs_per_s"] > res["worker_aug_pairs_per_s"]
    assert all(g["met"] is not None for g in res["goals"])


def test_bench_times_the_trainers_own_step(monkeypatch):
    """The benchmark's step is train's Stepper.step (a change to one shows in the other)."""
    from dimcollapse.bench.step import build_step
    from dimcollapse.train import Stepper

    calls = []
    real = Stepper.step

    def counted(self, *args, **kwargs):
        calls.append(args[3])  # the global step number
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Stepper, "step", counted)
    settings = dict(
        seed=0, backbone="resnet18", channels=3, small_stem=True, width=0.125,
        channels_last=False, batch=8, compile=False, precision="fp32",
    )  # fmt: skip
    step, info = build_step(settings, torch.device("cpu"))
    views = torch.randn(2, 8, 3, 16, 16)
    step(views[0], views[1])
    step(views[0], views[1])
    assert calls == [1, 2] and info["head"] == "simclr-mlp" and info["rep_dim"] == 64
