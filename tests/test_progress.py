"""What commands show while the user waits (dimcollapse.progress): a bar on a terminal, one line
per stage elsewhere, nothing under --json or --quiet."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tiny_runs import train_options

from dimcollapse.progress import mode_for, reporting, track


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_mode_follows_the_stream_and_the_flags():
    assert mode_for(quiet=False, stream=_Terminal()) == "bar"
    assert mode_for(quiet=False, stream=io.StringIO()) == "lines"
    assert mode_for(quiet=True, stream=_Terminal()) == "quiet"


def test_a_stage_is_shown_once_it_has_run_a_while(capsys, monkeypatch):
    import time

    import dimcollapse.progress

    assert list(track(range(3), "quick", mode="lines")) == [0, 1, 2]
    assert capsys.readouterr().err == ""  # over within DELAY_S: nothing said
    monkeypatch.setattr(dimcollapse.progress, "DELAY_S", 0.05)
    for _ in track(range(2), "one slow item", mode="lines"):
        time.sleep(0.3)  # said by the timer, during the first item
        assert capsys.readouterr().err == "one slow item ...\n"
        break
    assert list(track((time.sleep(0.02) or i for i in range(10)), "slow", mode="lines"))
    assert capsys.readouterr().err == "slow ...\n"  # once


def test_each_mode_shows_its_own_progress(capsys, monkeypatch):
    import dimcollapse.progress

    monkeypatch.setattr(dimcollapse.progress, "DELAY_S", 0)
    assert list(track(range(3), "counting", total=3, mode="lines")) == [0, 1, 2]
    assert capsys.readouterr().err == "counting ...\n"  # one line, once
    assert list(track(range(3), "counting", mode="quiet")) == [0, 1, 2]
    assert list(track(range(3), "counting")) == [0, 1, 2]  # outside a command: quiet
    assert list(track([], "nothing", mode="lines")) == []  # nothing to do: nothing said
    assert capsys.readouterr().err == ""
    with reporting("bar"):
        assert list(track(range(3), "counting", total=3)) == [0, 1, 2]
    assert "counting" in capsys.readouterr().err  # tqdm's bar
    with pytest.raises(ValueError, match="progress mode"), reporting("loud"):
        pass


def test_a_large_file_says_it_is_streamed_unless_json_or_quiet(cli, tmp_path, monkeypatch):
    import dimcollapse.progress

    emb = tmp_path / "e.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(100, 4)).astype(np.float32))
    code, out, err = cli("spectrum", emb, "--chunk-rows", "10")
    assert code == 0 and err == ""  # done within DELAY_S
    monkeypatch.setattr(dimcollapse.progress, "DELAY_S", 0)
    code, out, err = cli("spectrum", emb, "--chunk-rows", "10")
    assert code == 0 and "collapsed dimensions" in out
    assert err.splitlines() == [f"spectrum of {emb}: 100 x 4 ..."]
    for flag in ("--json", "--quiet"):
        code, out, err = cli("spectrum", emb, "--chunk-rows", "10", flag)
        assert code == 0 and out and err == "", flag


def test_embed_and_probe_say_each_stage(cli, tmp_path, monkeypatch):
    import dimcollapse.progress

    monkeypatch.setattr(dimcollapse.progress, "DELAY_S", 0)  # tiny stages: say them all
    run = tmp_path / "run"
    tiny = dict(dataset="digits", epochs=1, subset=128, width=0.0625, batch_size=64)
    code, _, err = cli(
        "train", *train_options(**tiny, workers=0, monitor_samples=0), "--out", run, "--quiet"
    )
    assert code == 0, err
    code, _, err = cli("embed", run, "--split", "test", "--out", tmp_path / "r.npy")
    assert code == 0, err
    assert err.splitlines() == [f"embedding 359 images with {run} ..."]  # digits: 20% of 1,797
    probe = ("probe", run, "--epochs", "2", "--train-subset", "100", "--test-subset", "50")
    code, _, err = cli(*probe)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith("embedding 100 images with ") and lines[0].endswith("(train) ...")
    assert lines[1].startswith("embedding 50 images with ") and lines[1].endswith("(test) ...")
    assert lines[2].startswith("linear probe: 2 epochs on ")
    assert lines[3] == "kNN probe: 50 test images against 100 train images ..."
    assert len(lines) == 4
    for flag in ("--json", "--quiet"):
        code, out, err = cli(*probe, flag)
        assert code == 0 and out and err == "", (flag, err)
