"""`dimcollapse spectrum`: every file format, the JSON fields, the plot, and every bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from conftest import assert_usage_error
from safetensors.numpy import save_file

from dimcollapse.spectrum import covariance_spectrum

FIELDS = (
    "file",
    "n",
    "dim",
    "singular_values",
    "collapsed_dims",
    "rel_tol",
    "rankme",
    "entropy_rank",
    "alpha_req",
    "dims_90",
    "dims_99",
)


@pytest.fixture
def z():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(300, 6)) @ rng.normal(size=(6, 16))).astype(np.float32)


def _write_all(tmp_path, z):
    paths = {}
    np.save(tmp_path / "a.npy", z)
    paths["npy"] = [str(tmp_path / "a.npy")]
    np.savez(tmp_path / "b.npz", emb=z)
    paths["npz"] = [str(tmp_path / "b.npz")]
    torch.save(torch.from_numpy(z), tmp_path / "c.pt")
    paths["pt"] = [str(tmp_path / "c.pt")]
    torch.save({"z": torch.from_numpy(z), "y": torch.zeros(3)}, tmp_path / "d.pth")
    paths["pth-dict"] = [str(tmp_path / "d.pth"), "--key", "z"]
    save_file({"emb": z, "other": np.zeros((2, 2), np.float32)}, str(tmp_path / "e.safetensors"))
    paths["safetensors"] = [str(tmp_path / "e.safetensors"), "--key", "emb"]
    return paths


def test_every_format_gives_the_same_spectrum(cli, tmp_path, z):
    expected = covariance_spectrum(z)
    for fmt, args in _write_all(tmp_path, z).items():
        code, out, err = cli("spectrum", *args, "--json", "--chunk-rows", "64")
        assert code == 0, (fmt, err)
        rec = json.loads(out.strip())
        for field in FIELDS:
            assert field in rec, (fmt, field)
        assert rec["n"] == 300 and rec["dim"] == 16 and rec["collapsed_dims"] == 10
        np.testing.assert_allclose(
            rec["singular_values"], expected, rtol=1e-5, atol=1e-6 * expected[0]
        )


def test_text_summary_and_overlaid_plot(cli, tmp_path, z):
    np.save(tmp_path / "a.npy", z)
    np.save(tmp_path / "b.npy", np.random.default_rng(1).normal(size=(100, 16)))
    plot = tmp_path / "spec.png"
    code, out, err = cli("spectrum", tmp_path / "a.npy", tmp_path / "b.npy", "--plot", plot)
    assert code == 0, err
    assert "collapsed dimensions  10 of 16" in out and "RankMe" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = plot.read_bytes()
    assert_usage_error(cli("spectrum", tmp_path / "b.npy", "--plot", plot), "--force")
    assert plot.read_bytes() == before
    assert cli("spectrum", tmp_path / "b.npy", "--plot", plot, "--force")[0] == 0
    assert plot.read_bytes() != before
    code, out, _ = cli("spectrum", tmp_path / "a.npy", tmp_path / "b.npy", "--json")
    assert [json.loads(line)["file"] for line in out.splitlines()] == [
        str(tmp_path / "a.npy"),
        str(tmp_path / "b.npy"),
    ]


def _write_bad_inputs(tmp_path, z):
    np.save(tmp_path / "ok.npy", z)
    np.save(tmp_path / "three.npy", np.zeros((4, 3, 2), np.float32))
    np.save(tmp_path / "one.npy", np.zeros((1, 3), np.float32))
    bad = z.copy()
    bad[0, 0] = np.nan
    bad[5, 2] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    np.savez(tmp_path / "multi.npz", a=z, b=z)
    (tmp_path / "x.csv").write_text("1,2\n")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"obj": object()}, fh)


#: The arguments ({tmp}: the test's tmp_path, where the bad inputs are written) and what the
#: error line must say.
BAD_INPUTS = [
    pytest.param(("{tmp}/missing.npy",), "no such file", id="missing-file"),
    pytest.param(("{tmp}/x.csv",), "unknown format", id="csv-file"),
    pytest.param(("{tmp}/three.npy",), "2-D", id="3d-array"),
    pytest.param(("{tmp}/one.npy",), "at least 2 rows", id="one-row"),
    pytest.param(("{tmp}/nan.npy",), "2 NaN or infinite", id="nan-and-inf"),
    pytest.param(("{tmp}/multi.npz",), "keys: a, b", id="npz-several-arrays-no-key"),
    pytest.param(("{tmp}/multi.npz", "--key", "c"), "keys there are: a, b", id="npz-unknown-key"),
    pytest.param(("{tmp}/junk.npy",), "npy", id="junk-npy"),
    pytest.param(("{tmp}/evil.pt",), "unpickling", id="pickle-with-an-object"),
    pytest.param(("{tmp}/ok.npy", "--rel-tol", "2"), "--rel-tol", id="rel-tol-above-one"),
    pytest.param(("{tmp}/ok.npy", "{tmp}/missing.npy"), "no such file", id="second-file-missing"),
]


@pytest.mark.parametrize("args, fragment", BAD_INPUTS)
def test_bad_inputs_give_one_error_line_and_no_plot(cli, tmp_path, z, args, fragment):
    plot = tmp_path / "out.png"
    _write_bad_inputs(tmp_path, z)
    args = tuple(a.format(tmp=tmp_path) for a in args)
    assert_usage_error(cli("spectrum", *args, "--plot", plot), fragment)
    assert not plot.exists(), args
    assert not list(tmp_path.glob(".out.png*")), "temporary plot left behind"


def test_unknown_option_is_one_error_line(cli):
    assert_usage_error(cli("spectrum", "x.npy", "--bogus"), "unrecognized")


def test_spectrum_of_a_trained_run(cli, tmp_path):
    from dimcollapse.config import TrainConfig
    from dimcollapse.train import train

    run = tmp_path / "run"
    train(
        TrainConfig(
            dataset="digits",
            method="directclr",
            epochs=1,
            batch_size=64,
            width=0.125,
            workers=0,
            monitor_samples=64,
            subset=256,
            out=str(run),
        ),
        verbose=False,
    )
    code, out, err = cli("spectrum", run, "--json", "--subset", "200")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["n"] == 200 and rec["dim"] == 64 and rec["key"] == "representation, test"
    code, out, err = cli(
        "spectrum",
        run / "checkpoints" / "final.pt",
        "--space",
        "embedding",
        "--json",
        "--subset",
        "200",
    )
    assert code == 0, err
    assert json.loads(out)["dim"] == 11  # directclr: z = r[:d0], d0 = round(360/2048 * 64)


def test_misleading_messages_say_what_is_really_wrong(cli, tmp_path):
    from conftest import assert_usage_error

    text = tmp_path / "notes.npy"
    text.write_text("hello\n")
    assert_usage_error(cli("spectrum", text), "not a .npy file")
    junk = tmp_path / "junk.pt"
    junk.write_text("hi\n")
    assert_usage_error(cli("probe", junk), "not a dimcollapse checkpoint", "not a PyTorch file")
    evil = tmp_path / "evil.pt"
    torch.save({"a": _Opaque()}, evil)
    result = cli("probe", evil)
    assert_usage_error(result, "not a dimcollapse checkpoint", "unpickling")
    assert "Weights only load failed" not in result[2]


class _Opaque:
    """Unpickling this needs arbitrary code: refused."""


def test_a_width_too_large_for_memory_is_refused_before_allocating(cli, tmp_path):
    from conftest import assert_usage_error

    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((3, 400_000), dtype=np.float32))  # 4.8 MB on disk, 4.7 TiB of sums
    assert_usage_error(cli("spectrum", wide), "400,000 columns", "GiB")
