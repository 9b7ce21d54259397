"""The cliff rule (issue 23): collapsed dimensions are the values past a drop of at least
CLIFF_DECADES orders between neighbours (or under the input's numerical floor), with dead
coordinates set apart; checked on the three synthetic files of the issue, through the API, the
CLI and the monitor, against spectra computed independently with NumPy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dimcollapse.monitor import CollapseMonitor
from dimcollapse.spectrum import summarize
from dimcollapse.spectrum.metrics import (
    CLIFF_DECADES,
    cliff_collapse,
    dead_coordinates,
    numerical_floor,
    tail_counts,
)

N, D = 3000, 128


def _rotation(seed: int, d: int = D) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def _with_variances(variances: np.ndarray, seed: int) -> np.ndarray:
    """(N, D) rows whose covariance has these eigenvalues, in a random basis."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, variances.size)) * np.sqrt(variances)) @ _rotation(seed + 1).T


def smooth_decay() -> np.ndarray:
    """A smooth decay over 8 orders of magnitude: no cliff."""
    return _with_variances(np.logspace(0, -8, D), 0)


def rank_100() -> np.ndarray:
    """Rank 100 of 128, the other 28 directions at 1e-12 of the largest."""
    return _with_variances(np.r_[np.logspace(0, -1, 100), np.full(28, 1e-12)], 2)


def three_constant() -> np.ndarray:
    """Healthy rows with 3 constant coordinates."""
    z = np.random.default_rng(4).standard_normal((N, D))
    z[:, [5, 60, 127]] = [0.0, 0.7, -3.0]
    return z


CASES = {"smooth": (smooth_decay, 0, []), "rank100": (rank_100, 28, [])}
CASES["dead3"] = (three_constant, 0, [5, 60, 127])


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_synthetic_files_by_the_api(name, dtype):
    make, collapsed, dead = CASES[name]
    s = summarize(make().astype(dtype))
    assert s.collapsed_dims == collapsed and s.dead_dims == dead
    if name == "rank100":
        assert s.cliff_after == 100 and s.cliff_decades > 10
    else:
        assert s.cliff_decades < 1.0
    # the independent reference: NumPy's float64 covariance of the same rows
    ref = np.linalg.eigvalsh(np.cov(make().astype(dtype).astype(np.float64).T, bias=True))[::-1]
    assert cliff_collapse(ref, dead=len(dead)).collapsed == collapsed


def test_smooth_decay_still_counts_under_thresholds():
    """The threshold table is what moves with the threshold; the cliff rule does not."""
    s = summarize(smooth_decay())
    assert s.tail_counts[0] > s.tail_counts[2] > 0 and s.collapsed_dims == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_synthetic_files_by_the_cli(tmp_path, name):
    make, collapsed, dead = CASES[name]
    path = tmp_path / f"{name}.npy"
    np.save(path, make().astype(np.float32))
    out = subprocess.run(
        [sys.executable, "-m", "dimcollapse", "spectrum", str(path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rec = json.loads(out.stdout)
    assert rec["collapsed_dims"] == collapsed and rec["dead_dims"] == dead
    text = subprocess.run(
        [sys.executable, "-m", "dimcollapse", "spectrum", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"collapsed dimensions  {collapsed} of {D}" in text
    assert f"dead coordinates      {len(dead)}" in text


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_monitor_gives_the_same(name):
    make, collapsed, dead = CASES[name]
    z = torch.from_numpy(make().astype(np.float32))
    mon = CollapseMonitor()
    for chunk in z.split(512):
        mon.update("z", chunk)
    got = mon.compute()["z"]
    assert got["collapsed_dims"] == collapsed and got["dead_dims"] == dead


def test_a_cliff_is_a_drop_of_at_least_the_set_decades():
    below = 10.0 ** -(CLIFF_DECADES - 0.1)
    above = 10.0 ** -(CLIFF_DECADES + 0.1)
    assert cliff_collapse([1.0, 0.9, 0.8 * below, 0.7 * below]).collapsed == 0
    got = cliff_collapse([1.0, 0.9, 0.8 * above, 0.7 * above])
    assert got.collapsed == 2 and got.drop_after == 2
    # the first cliff from the top decides, however deep the later ones
    assert cliff_collapse([1.0, 1e-4, 1e-5, 1e-15]).collapsed == 3


def test_floor_and_dead_are_set_apart():
    sv = [1.0, 0.5, 0.2, 1e-14, 0.0]
    assert cliff_collapse(sv, dead=1).collapsed == 1  # the zero is the dead coordinate's
    assert cliff_collapse([1.0, 0.5, 0.4, 0.3], floor=0.35).collapsed == 1
    assert cliff_collapse([0.0, 0.0]).collapsed == 2
    assert tail_counts([1.0, 1e-5 / 2, 0.0], dead=1) == [1, 1, 0, 0, 0, 0, 0]
    # unit rows in float32 with sigma_1 = 1/100: the floor is eps^2 * 1 / 0.01
    assert numerical_floor(2.0**-23, 1.0, 0.01) == pytest.approx(2.0**-46 * 100)
    var, m2 = np.array([1.0, 0.0, 1e-20, 1e-3]), np.array([1.0, 0.0, 1.0, 1.0])
    assert dead_coordinates(var, m2) == [1, 2]
