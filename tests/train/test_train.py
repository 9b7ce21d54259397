"""Pretraining: every method learns, resume is exact, config plumbing, and bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_usage_error
from tiny_runs import TINY_TRAIN, train_options

from dimcollapse.checkpoint import load_checkpoint, load_model
from dimcollapse.config import TrainConfig
from dimcollapse.errors import UsageError
from dimcollapse.losses import info_nce
from dimcollapse.model import ModelSpec, build_model
from dimcollapse.projectors import METHODS
from dimcollapse.train import train

METRIC_KEYS = (
    "epoch",
    "step",
    "loss",
    "lr",
    "representation_rankme",
    "representation_collapsed_dims",
    "embedding_rankme",
    "embedding_collapsed_dims",
    "online_probe_top1",
    "images_per_s",
)


@pytest.mark.parametrize("method", METHODS)
def test_a_few_steps_lower_the_loss(method):
    torch.manual_seed(0)
    model = build_model(
        ModelSpec(
            method=method,
            backbone="resnet18",
            width=0.125,
            in_channels=1,
            small_stem=True,
            num_classes=10,
        )
    )
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(32, 1, 16, 16, generator=g)
    v1 = x + 0.05 * torch.randn(x.shape, generator=g)
    v2 = x + 0.05 * torch.randn(x.shape, generator=g)
    losses = []
    for _ in range(8):
        _, z1, _, z2, _ = model(v1, v2)
        loss = info_nce(z1, z2, temperature=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.05, losses


def test_run_directory_metrics_and_exact_resume(tmp_path):
    straight = train(
        TrainConfig(**TINY_TRAIN, method="fixed-lowrank", out=str(tmp_path / "a")), verbose=False
    )
    cfg = TrainConfig(**TINY_TRAIN, method="fixed-lowrank", out=str(tmp_path / "b"))
    train(cfg, verbose=False, stop_after=1)
    assert not (tmp_path / "b" / "checkpoints" / "final.pt").exists()
    resumed = train(dataclasses.replace(cfg, resume=True), verbose=False)

    run = tmp_path / "a"
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "spectra.jsonl",
        "checkpoints/last.pt",
        "checkpoints/final.pt",
    ):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    for key in METRIC_KEYS:
        assert key in lines[-1], key
    assert 0 <= lines[-1]["online_probe_top1"] <= 1
    assert lines[-1]["representation_rankme"] >= 1

    # Bit-identical weights, optimiser state and metrics after stop + resume (CPU, deterministic).
    a = load_checkpoint(run / "checkpoints" / "final.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "final.pt")
    assert a.step == b.step == 2 * (640 // 64)
    for key, tensor in a.model.items():
        assert torch.equal(tensor, b.model[key]), key
    assert a.optimizer["state"].keys() == b.optimizer["state"].keys()
    for idx, st in a.optimizer["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b.optimizer["state"][idx][k]), (idx, k)
    assert straight.metrics[-1]["loss"] == resumed.metrics[-1]["loss"]
    resumed_lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in resumed_lines] == [1, 2]

    # The fixed projection is in the checkpoint, unchanged by training, and reloads.
    model, ckpt = load_model(run)
    assert torch.equal(model.head.projection, a.model["head.projection"])
    assert ckpt.model_spec["method"] == "fixed-lowrank"


#: Tiny one-epoch training options, for the runs that are refused or finished in a moment.
TINY_OPTIONS = train_options(**{**TINY_TRAIN, "epochs": 1, "monitor_samples": 64, "subset": 128})


@pytest.mark.parametrize(
    "extra, fragment",
    [
        pytest.param(["--method", "simclr"], "unknown method", id="method-unknown"),
        pytest.param(["--dataset", "imagenet"], "unknown dataset", id="dataset-unknown"),
        pytest.param(["--backbone", "vgg"], "unknown backbone", id="backbone-unknown"),
        pytest.param(["--d0", "0"], "d0", id="d0-zero"),
        pytest.param(["--d0", "100000"], "d0", id="d0-too-large"),
        pytest.param(["--batch-size", "1"], "batch size", id="batch-size-one"),
        pytest.param(["--aug-flip-prob", "2"], "probabilities", id="flip-prob-above-one"),
    ],
)
def test_bad_training_input(cli, tmp_path, extra, fragment):
    out = tmp_path / "run"
    assert_usage_error(cli("train", *TINY_OPTIONS, *extra, "--out", out), fragment)
    assert not out.exists(), extra


def test_a_missing_data_root_is_named(cli, tmp_path):
    out = tmp_path / "run"
    missing = tmp_path / "nowhere"
    assert_usage_error(
        cli("train", *TINY_OPTIONS[2:], "--dataset", "mnist", "--data-root", missing, "--out", out),
        str(missing),
    )
    assert not out.exists()


def test_a_finished_run_is_never_overwritten_nor_resumed_as_another_method(cli, tmp_path):
    out = tmp_path / "run"
    # A finished run is never overwritten; resuming it as another method is refused.
    code, _, err = cli("train", *TINY_OPTIONS, "--out", out, "--quiet")
    assert code == 0, err
    before = (out / "checkpoints" / "final.pt").read_bytes()
    assert_usage_error(cli("train", *TINY_OPTIONS, "--out", out), "already holds another run")
    assert_usage_error(
        cli("train", "--out", out, "--resume", "--method", "simclr-mlp"), "cannot resume"
    )
    assert (out / "checkpoints" / "final.pt").read_bytes() == before
    assert_usage_error(
        cli("train", *TINY_OPTIONS, "--out", tmp_path / "fresh", "--resume"), "nothing to resume"
    )


def test_torchrun_two_processes_match_one(tmp_path):
    """2 gloo processes with global batch 64 against 1 process with batch 64.

    Exact equality is not expected: without SyncBN (GPU only) each process normalises its
    BatchNorm over its own 32 images, and each process draws its own augmentations. The same
    global batches are seen and the loss is the same function of them (tests/test_losses.py
    checks the gathered loss and gradients exactly), so the per-epoch losses must agree within
    a few percent and both runs must learn. Only rank 0 writes.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [
        *train_options(**{**TINY_TRAIN, "subset": 512, "method": "directclr", "device": "cpu"}),
        "--quiet",
    ]
    single = train(
        TrainConfig(
            **{
                **TINY_TRAIN,
                "subset": 512,
                "method": "directclr",
                "device": "cpu",
                "out": str(tmp_path / "one"),
            }
        ),
        verbose=False,
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free local port, so parallel CI jobs cannot collide
        "--nproc_per_node=2",
        "-m",
        "dimcollapse",
        "train",
        *args,
        "--out",
        str(tmp_path / "two"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(ln) for ln in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [ln["epoch"] for ln in lines] == [1, 2]
    assert lines[-1]["step"] == single.metrics[-1]["step"]  # same global batches per epoch
    ckpt = load_checkpoint(tmp_path / "two" / "checkpoints" / "final.pt")
    assert ckpt.data["world_size"] == 2
    for a, b in zip(lines, single.metrics):
        assert abs(a["loss"] - b["loss"]) / b["loss"] < 0.05, (a["loss"], b["loss"])
    assert (
        lines[-1]["loss"] < lines[0]["loss"]
        and single.metrics[-1]["loss"] < single.metrics[0]["loss"]
    )
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in Path(tmp_path / "one").iterdir()
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_training_uses_device_path_bf16(tmp_path):
    result = train(
        TrainConfig(
            **{**TINY_TRAIN, "method": "simclr-mlp", "device": "cuda", "out": str(tmp_path / "gpu")}
        ),
        verbose=False,
    )
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.data["data_path"] == "device" and ckpt.data["precision"] == "bf16"
    assert result.metrics[-1]["loss"] < result.metrics[0]["loss"]


def test_npz_without_test_file_monitors_on_train_images(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        images=rng.integers(0, 256, (192, 12, 12), dtype=np.uint8),
        labels=rng.integers(0, 3, 192),
    )
    cfg = TrainConfig(
        dataset="npz",
        data_root=str(tmp_path / "d.npz"),
        epochs=1,
        batch_size=64,
        width=0.125,
        workers=0,
        monitor_samples=100,
        online_probe=False,
        out=str(tmp_path / "run"),
    )
    result = train(cfg, verbose=False)
    assert load_checkpoint(result.checkpoint).data["monitor_split"] == "train"
    assert result.metrics[-1]["representation_dim"] == 64


def test_cli_resume_keeps_the_runs_settings(cli, tmp_path):
    import yaml

    out = tmp_path / "run"
    tiny = train_options(**{**TINY_TRAIN, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--aug-flip-prob", "0", "--out", out, "--quiet")[0] == 0
    code, _, err = cli("train", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert code == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())["config"]
    assert saved["epochs"] == 2 and saved["dataset"] == "digits"
    assert saved["augment"]["flip_prob"] == 0.0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_sync_bn_defaults_on_for_cuda_only_and_the_setting_wins():
    from dimcollapse.train import use_sync_bn

    assert use_sync_bn(None, torch.device("cuda")) is True
    assert use_sync_bn(None, torch.device("cpu")) is False
    assert use_sync_bn(False, torch.device("cuda")) is False
    assert use_sync_bn(True, torch.device("cpu")) is True


def test_diagonal_init_reaches_the_model_from_the_config(tmp_path):
    from dimcollapse.data.datasets import load_dataset
    from dimcollapse.model import build_model
    from dimcollapse.train import model_spec

    data = load_dataset("digits", "train")
    for init in ("ones", "random"):
        cfg = TrainConfig(method="diagonal", dataset="digits", width=0.0625, diagonal_init=init)
        cfg.validate()
        head = build_model(model_spec(cfg, data, data.image_size)).head
        assert head.init == init
        assert torch.equal(head.weight.detach(), torch.ones_like(head.weight)) == (init == "ones")
    with pytest.raises(UsageError, match="diagonal_init"):
        TrainConfig(method="diagonal", diagonal_init="zeros").validate()


def test_out_pointing_at_a_file_says_so(cli, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    assert_usage_error(cli("train", "--dataset", "digits", "--out", target), "is a file")
    assert target.read_text() == "mine\n"


def test_a_diverging_fp32_run_stops_with_advice_that_fits_its_precision(cli, tmp_path):
    tiny = train_options(**{**TINY_TRAIN, "epochs": 1, "monitor_samples": 64, "subset": 128})
    result = cli(
        "train", *tiny, "--base-lr", "1e30", "--log-every", "1", "--precision", "fp32",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert_usage_error(result, "loss became", "at step", "lower the learning rate")
    assert "fp32" not in result[2]  # the run already was fp32
    assert "no checkpoint was saved yet" in result[2]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no NaN line


def test_resume_rules_refuse_changed_settings_before_writing_and_apply_the_rest(cli, tmp_path):
    import yaml

    out = tmp_path / "run"
    tiny = train_options(**{**TINY_TRAIN, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--out", out, "--quiet")[0] == 0
    before = {p.name: p.read_bytes() for p in (out, out / "checkpoints") for p in p.iterdir()
              if p.is_file()}  # fmt: skip
    for option, value in (
        ("--optimizer", "sgd"),
        ("--base-lr", "1e20"),
        ("--batch-size", "32"),
        ("--aug-flip-prob", "0.5"),  # digits: no flips (mirror=False)
        ("--method", "simclr-mlp"),
    ):
        result = cli("train", "--out", out, "--resume", option, value, "--epochs", "2")
        assert_usage_error(result, "cannot resume")
        assert option.lstrip("-").replace("aug-", "").replace("-", "_") in result[2]
        after = {p.name: p.read_bytes() for p in (out, out / "checkpoints") for p in p.iterdir()
                 if p.is_file()}  # fmt: skip
        assert after == before, option  # nothing written
    code, _, err = cli(
        "train", "--out", out, "--resume", "--epochs", "2", "--log-every", "3", "--quiet"
    )
    assert code == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())["config"]
    assert saved["epochs"] == 2 and saved["log_every"] == 3


def test_sigterm_stops_with_one_line_and_the_resume_is_bit_identical(tmp_path):
    """A scheduler's SIGTERM during epoch 2: exit 143 with one 'error:' line saying how to
    resume; the resumed run ends with the same weights as an uninterrupted one."""
    import signal
    import time

    settings = {**TINY_TRAIN, "epochs": 3, "subset": 1280, "monitor_samples": 64}
    args = [*train_options(**settings), "--deterministic", "true", "--quiet"]
    cmd = [sys.executable, "-m", "dimcollapse", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(
        [*cmd, "--out", str(stopped)], stderr=subprocess.PIPE, text=True, env=env
    )
    metrics = stopped / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and metrics.read_text().strip():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.fail("the run finished before the signal; make the epochs longer")
    assert proc.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: terminated (SIGTERM)"), err
    assert "--resume" in lines[0] and "Traceback" not in err
    assert "saved checkpoints/last.pt at" in lines[0]  # the step it reached, not lost
    resumed = subprocess.run(
        [*cmd, "--out", str(stopped), "--resume"], capture_output=True, text=True, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole"
    done = subprocess.run([*cmd, "--out", str(whole)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    a = load_checkpoint(stopped / "checkpoints" / "final.pt")
    b = load_checkpoint(whole / "checkpoints" / "final.pt")
    for key, tensor in a.model.items():
        assert torch.equal(tensor, b.model[key]), key
    rows = [json.loads(ln) for ln in (stopped / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
