"""The paper's claims judged from paired seeds (:func:`dimcollapse.report.check_claims`), on
runs aggregated as ``reproduce`` aggregates them (:func:`dimcollapse.aggregate.aggregate_seeds`)."""

from __future__ import annotations

import pytest

from dimcollapse.aggregate import aggregate_seeds
from dimcollapse.report import check_claims
from dimcollapse.reproduce import PLANNED_METHODS


def _run(method: str, top1: float, rankme: float, collapsed: int = 0, **extra) -> dict:
    spec = {"rankme": rankme, "collapsed_dims": collapsed, "dim": 64}
    return {
        "name": method,
        "method": method,
        "group": "table1",
        "d0": None,
        "probe": {"full": {"top1": top1}},
        "representation": spec,
        "embedding": {**spec, "dim": 16},
        **extra,
    }


def _seeded(method: str, top1s, rankmes, collapsed=None, emb_collapsed=None) -> dict:
    """A run aggregated from per-seed results, as reproduce() writes it."""
    seeds = []
    for i, (t, r) in enumerate(zip(top1s, rankmes)):
        c = 0 if collapsed is None else collapsed[i]
        e = 0 if emb_collapsed is None else emb_collapsed[i]
        run = _run(method, t, r, c)
        run["embedding"]["collapsed_dims"] = e
        run["seed"] = i
        seeds.append(run)
    return aggregate_seeds(seeds)


def test_claims_are_judged_from_paired_seeds():
    runs = {
        "simclr-mlp": _seeded(
            "simclr-mlp", [0.80, 0.82, 0.81], [40, 41, 42], emb_collapsed=[9, 12, 10]
        ),
        # differences that vary by seed: equal ones in every seed (zero variance) decide
        # nothing from 3 seeds (dimcollapse.stats: the sign rule needs 6)
        "simclr-linear": _seeded("simclr-linear", [0.75, 0.765, 0.76], [35, 36, 37]),
        "simclr-none": _seeded("simclr-none", [0.70, 0.72, 0.715], [10, 12, 11], [20, 21, 19]),
        # one point above linear on average, but the paired differences change sign
        "directclr": _seeded("directclr", [0.79, 0.765, 0.78], [38, 39, 37]),
        "fixed-lowrank": _seeded("fixed-lowrank", [0.788, 0.767, 0.779], [37, 38, 36]),
        "diagonal": _seeded("diagonal", [0.70, 0.71, 0.70], [30, 31, 29]),
    }
    for i, seed in enumerate(runs["directclr"]["seeds"]):
        seed["probe"]["subvector"] = {"top1": 0.6 + 0.01 * i}
    runs["directclr"]["probe"]["subvector"] = {"top1": 0.61}
    random = {
        "probe": {"top1": 0.5},
        "seeds": [{"probe": {"top1": 0.5 + 0.01 * i}} for i in range(3)],
    }
    pixels = {"probe": {"top1": 0.9}, "seeds": [{"probe": {"top1": 0.9}} for _ in range(3)]}
    manifest = {
        "runs": runs,
        "paper": {"top1": {}, "subvector_top1": 47.9},
        "baselines": {"random": random, "pixels": pixels},
    }
    claims = check_claims(manifest)
    by_claim = {c["claim"].split(" (")[0]: c["verdict"] for c in claims}
    assert by_claim["A projector helps: SimCLR MLP > linear > no projector"] == "holds"
    assert by_claim["DirectCLR beats SimCLR with a linear projector"] == "inconclusive"
    assert by_claim["DirectCLR beats SimCLR without a projector"] == "holds"
    assert by_claim["A fixed low-rank projector does about as well as DirectCLR"] == "holds"
    assert by_claim["A trainable diagonal projector does about as well as a linear one"] == "fails"
    assert (
        by_claim["DirectCLR's r beyond r[:d0] carries information: probe on r[:d0] < on r"]
        == "holds"
    )
    assert by_claim["The embedding of SimCLR"] == "holds"
    assert (
        by_claim["Without a projector the representation collapses more than with one"] == "holds"
    )
    sanity = [c for c in claims if c["kind"] == "sanity"]
    assert [c["verdict"] for c in sanity] == ["holds", "fails"]  # random: beaten; pixels: not
    # every verdict carries the interval it was read from
    assert all(c["ci95"] is not None for c in claims)
    # a reversed ordering fails; no collapse in any seed fails the Fig. 2 claim
    runs["simclr-none"] = _seeded("simclr-none", [0.90, 0.91, 0.92], [50, 51, 52])
    runs["simclr-mlp"] = _seeded("simclr-mlp", [0.80, 0.82, 0.81], [40, 41, 42])
    by_claim = {c["claim"].split(" (")[0]: c["verdict"] for c in check_claims(manifest)}
    assert by_claim["A projector helps: SimCLR MLP > linear > no projector"] == "fails"
    # no collapse in any of 3 seeds: zero variance, too few seeds for the sign rule
    assert by_claim["The embedding of SimCLR"] == "inconclusive"
    assert (
        by_claim["Without a projector the representation collapses more than with one"]
        == "inconclusive"
    )


def test_one_seed_judges_nothing():
    runs = {m: _seeded(m, [0.8], [40]) for m in PLANNED_METHODS}
    claims = check_claims({"runs": runs, "paper": {}, "baselines": {}})
    assert claims and {c["verdict"] for c in claims} == {"inconclusive"}


def test_aggregate_keeps_every_seed_and_its_interval():
    agg = _seeded("simclr-mlp", [0.80, 0.82, 0.84], [40, 41, 45], emb_collapsed=[3, 5, 4])
    assert agg["probe"]["full"]["top1"] == pytest.approx(0.82)
    lo, hi = agg["probe"]["full"]["top1_ci95"]
    assert lo < 0.82 < hi and hi - lo == pytest.approx(2 * 4.302653 * 0.02 / 3**0.5, rel=1e-5)
    assert agg["representation"]["rankme"] == pytest.approx(42.0)
    assert agg["embedding"]["collapsed_dims"] == pytest.approx(4.0)
    assert [s["probe"]["full"]["top1"] for s in agg["seeds"]] == [0.80, 0.82, 0.84]
    assert agg["seed_values"] == [0, 1, 2]


def test_the_diagonal_heads_motion_is_reported_per_seed():
    runs = {
        m: _seeded(m, [0.70, 0.71, 0.72], [30, 31, 32])
        for m in ("simclr-mlp", "simclr-linear", "simclr-none", "diagonal")
    }
    for i, seed in enumerate(runs["diagonal"]["seeds"]):
        seed["head_weight"] = {"relative": 0.05 + 0.01 * i, "min": 0.9, "max": 1.1 + 0.01 * i}
    claims = check_claims({"runs": runs, "baselines": {}, "paper": {"top1": {}}})
    diagonal = next(c for c in claims if "diagonal" in c["claim"])
    assert any("per seed 0.050, 0.060, 0.070, entries 0.90 to 1.12" in n for n in diagonal["notes"])
