"""The run directory (:mod:`dimcollapse.rundir`): a torn metrics line, and a run stopped before
its first checkpoint."""

from __future__ import annotations

import json

from conftest import assert_usage_error
from tiny_runs import TINY_TRAIN, train_options


def test_resume_after_a_torn_metrics_line_drops_it_with_a_warning(cli, tmp_path):
    out = tmp_path / "run"
    tiny = train_options(**{**TINY_TRAIN, "epochs": 1, "monitor_samples": 64, "subset": 128})
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
    tiny = train_options(**{**TINY_TRAIN, "epochs": 1, "monitor_samples": 64, "subset": 128})
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
