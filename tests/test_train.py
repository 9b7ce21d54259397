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

from dimcollapse.checkpoint import load_checkpoint, load_model
from dimcollapse.config import TrainConfig
from dimcollapse.errors import UsageError
from dimcollapse.losses import info_nce
from dimcollapse.model import ModelSpec, build_model
from dimcollapse.projectors import METHODS
from dimcollapse.train import train

TINY = {
    "dataset": "digits",
    "epochs": 2,
    "batch_size": 64,
    "width": 0.125,
    "workers": 0,
    "monitor_samples": 128,
    "subset": 640,
}


def _cli_args(**settings: object) -> list[str]:
    """``TrainConfig`` settings as ``dimcollapse train`` options."""
    return [arg for k, v in settings.items() for arg in ("--" + k.replace("_", "-"), str(v))]


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
        TrainConfig(**TINY, method="fixed-lowrank", out=str(tmp_path / "a")), verbose=False
    )
    cfg = TrainConfig(**TINY, method="fixed-lowrank", out=str(tmp_path / "b"))
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


def test_help_lists_every_option_with_default(cli):
    code, out, _ = cli("train", "--help")
    assert code == 0
    for f in dataclasses.fields(TrainConfig):
        if f.name != "augment":
            assert "--" + f.name.replace("_", "-") in out, f.name
    assert "--aug-crop-scale" in out and "(default: 0.1)" in out


def test_yaml_config_and_overrides(cli, tmp_path):
    from dimcollapse.cli import build_parser
    from dimcollapse.config import config_from_args

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "method: simclr-mlp\nepochs: 7\ntemperature: 0.2\naugment:\n  flip_prob: 0.0\n"
    )
    parser = build_parser()
    args = parser.parse_args(
        ["train", "--config", str(cfg_file), "--epochs", "3", "--aug-grayscale-prob", "0.5"]
    )
    cfg = config_from_args(args)
    assert (cfg.method, cfg.epochs, cfg.temperature) == ("simclr-mlp", 3, 0.2)
    assert cfg.augment == {"flip_prob": 0.0, "grayscale_prob": 0.5}
    bad = tmp_path / "bad.yaml"
    bad.write_text("methd: directclr\n")
    assert_usage_error(cli("train", "--config", bad, "--out", tmp_path / "x"), "methd")


def test_bad_training_input(cli, tmp_path):
    out = tmp_path / "run"
    tiny = _cli_args(**{**TINY, "epochs": 1, "monitor_samples": 64, "subset": 128})
    cases = [
        (["--method", "simclr"], "unknown method"),
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--backbone", "vgg"], "unknown backbone"),
        (["--d0", "0"], "d0"),
        (["--d0", "100000"], "d0"),
        (["--batch-size", "1"], "batch size"),
        (["--aug-flip-prob", "2"], "probabilities"),
    ]
    for extra, fragment in cases:
        assert_usage_error(cli("train", *tiny, *extra, "--out", out), fragment)
        assert not out.exists(), extra
    missing = tmp_path / "nowhere"
    assert_usage_error(
        cli("train", *tiny[2:], "--dataset", "mnist", "--data-root", missing, "--out", out),
        str(missing),
    )
    assert not out.exists()
    # A finished run is never overwritten; resuming it as another method is refused.
    code, _, err = cli("train", *tiny, "--out", out, "--quiet")
    assert code == 0, err
    before = (out / "checkpoints" / "final.pt").read_bytes()
    assert_usage_error(cli("train", *tiny, "--out", out), "already holds another run")
    assert_usage_error(
        cli("train", "--out", out, "--resume", "--method", "simclr-mlp"), "cannot resume"
    )
    assert (out / "checkpoints" / "final.pt").read_bytes() == before
    assert_usage_error(
        cli("train", *tiny, "--out", tmp_path / "fresh", "--resume"), "nothing to resume"
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
        *_cli_args(**{**TINY, "subset": 512, "method": "directclr", "device": "cpu"}),
        "--quiet",
    ]
    single = train(
        TrainConfig(
            **{
                **TINY,
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
            **{**TINY, "method": "simclr-mlp", "device": "cuda", "out": str(tmp_path / "gpu")}
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
    tiny = _cli_args(**{**TINY, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--aug-flip-prob", "0", "--out", out, "--quiet")[0] == 0
    code, _, err = cli("train", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert code == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())["config"]
    assert saved["epochs"] == 2 and saved["dataset"] == "digits"
    assert saved["augment"]["flip_prob"] == 0.0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/*.yaml")))
def test_shipped_configs_are_valid(path):
    from dimcollapse.config import load_yaml

    cfg = TrainConfig.from_dict(load_yaml(path))
    cfg.validate()
    assert cfg.method in METHODS and cfg.temperature == 0.1


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


@pytest.mark.parametrize(
    "yaml_text, key, expected",
    [
        ('epochs: "lots"\n', "epochs", "an integer"),
        ("batch_size: [1, 2]\n", "batch_size", "an integer"),
        ('width: "wide"\n', "width", "a number"),
        ("compile: 3\n", "compile", "true or false"),
        ("epochs: true\n", "epochs", "an integer"),
    ],
)
def test_yaml_values_of_the_wrong_type_are_one_line_errors(tmp_path, cli, yaml_text, key, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "run"
    result = cli("train", "--config", config, "--dataset", "digits", "--out", out)
    assert_usage_error(result, f"setting {key}", expected)
    assert not out.exists()


def test_yaml_accepts_an_integer_for_a_float_setting():
    cfg = TrainConfig.from_dict({"base_lr": 1, "width": 1, "d0": None})
    assert cfg.base_lr == 1 and cfg.width == 1


def test_resume_after_a_torn_metrics_line_drops_it_with_a_warning(cli, tmp_path):
    out = tmp_path / "run"
    tiny = _cli_args(**{**TINY, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--out", out, "--quiet")[0] == 0
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write('{"epoch": 2, "loss": 1.')  # a crash during the append
    code, _, err = cli("train", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert code == 0, err
    assert "torn last line" in err
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_a_run_stopped_before_its_first_checkpoint_is_no_dead_end(cli, tmp_path):
    """Killed in epoch 1 (config.yaml written, no checkpoint): a fresh start says to --resume,
    and --resume starts it again in place; orphan temporary files are cleaned up."""
    import yaml

    out = tmp_path / "run"
    tiny = _cli_args(**{**TINY, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--out", out, "--quiet")[0] == 0
    # what a kill before the first save leaves: the run files, no checkpoint, a torn temp file
    for p in (out / "checkpoints").iterdir():
        p.unlink()
    (out / "checkpoints" / ".last.pt.abc123.tmp.pt").write_bytes(b"")
    assert_usage_error(cli("train", *tiny, "--out", out), "before its first checkpoint", "--resume")
    code, _, err = cli("train", "--out", out, "--resume", "--quiet")
    assert code == 0, err
    assert "starting it again from its first step" in err
    assert (out / "checkpoints" / "final.pt").is_file()
    assert not list((out / "checkpoints").glob(".*.tmp*"))
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1]
    assert yaml.safe_load((out / "config.yaml").read_text())["config"]["dataset"] == "digits"


def test_out_pointing_at_a_file_says_so(cli, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    assert_usage_error(cli("train", "--dataset", "digits", "--out", target), "is a file")
    assert target.read_text() == "mine\n"


def test_a_diverging_fp32_run_stops_with_advice_that_fits_its_precision(cli, tmp_path):
    tiny = _cli_args(**{**TINY, "epochs": 1, "monitor_samples": 64, "subset": 128})
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
    tiny = _cli_args(**{**TINY, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--out", out, "--quiet")[0] == 0
    before = {p.name: p.read_bytes() for p in (out, out / "checkpoints") for p in p.iterdir()
              if p.is_file()}  # fmt: skip
    for option, value in (
        ("--optimizer", "sgd"),
        ("--base-lr", "1e20"),
        ("--batch-size", "32"),
        ("--aug-flip-prob", "0"),
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

    settings = {**TINY, "epochs": 3, "subset": 1280, "monitor_samples": 64}
    args = [*_cli_args(**settings), "--deterministic", "true", "--quiet"]
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


def test_resume_with_a_config_file_keeps_the_runs_settings_it_does_not_name(cli, tmp_path):
    """--config on a resume overrides only what it names (here the allowed epochs); every
    other setting stays the run's, not the default (width 0.125, not 1.0)."""
    out = tmp_path / "run"
    tiny = _cli_args(**{**TINY, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--out", out, "--quiet")[0] == 0
    config = tmp_path / "more.yaml"
    config.write_text("epochs: 2\n")
    code, _, err = cli("train", "--out", out, "--resume", "--config", config, "--quiet")
    assert code == 0, err
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_resume_settings_are_layered_in_one_pass_each_file_read_once(tmp_path, monkeypatch):
    """The run's saved settings, then --config, then the typed options (the augmentation
    too, key by key); config.yaml and the YAML file are read once each, and checkpoint_every
    is parsed once however often the configuration is checked."""
    import yaml

    from dimcollapse import config as config_module
    from dimcollapse.cli import build_parser

    out = tmp_path / "run"
    out.mkdir()
    run = TrainConfig(**{**TINY, "out": str(out), "method": "simclr-mlp", "temperature": 0.2})
    recipe = {"flip_prob": 0.5, "grayscale_prob": 0.2, "crop_scale": [0.2, 1.0]}
    saved = {**run.to_dict(), "augment": recipe}
    (out / "config.yaml").write_text(yaml.safe_dump({"config": saved, "run": {}}))
    given = tmp_path / "c.yaml"
    given.write_text("temperature: 0.3\naugment:\n  grayscale_prob: 0.0\n")
    reads, parses = [], []
    load_yaml, parse = config_module.load_yaml, config_module.parse_checkpoint_every
    monkeypatch.setattr(config_module, "load_yaml", lambda p: reads.append(p) or load_yaml(p))
    monkeypatch.setattr(
        config_module, "parse_checkpoint_every", lambda t: parses.append(t) or parse(t)
    )
    args = build_parser().parse_args(
        ["train", "--out", str(out), "--resume", "--config", str(given), "--epochs", "3",
         "--aug-flip-prob", "0.1", "--checkpoint-every", "7"]
    )  # fmt: skip
    cfg, got = config_module.layered_config(args)
    assert sorted(map(str, reads)) == sorted([str(out / "config.yaml"), str(given)])
    assert got == saved
    # typed > the file > the run's > the defaults
    assert (cfg.epochs, cfg.temperature, cfg.method, cfg.width) == (3, 0.3, "simclr-mlp", 0.125)
    assert cfg.augment == {"grayscale_prob": 0.0, "flip_prob": 0.1, "crop_scale": [0.2, 1.0]}
    cfg.validate()
    assert cfg.checkpoint_interval == (7, 0.0) and parses == ["7"]
    # without --resume the run's settings are not read
    reads.clear()
    plain = build_parser().parse_args(["train", "--out", str(out), "--config", str(given)])
    cfg, got = config_module.layered_config(plain)
    assert got is None and reads == [str(given)] and cfg.width == 1.0
