"""The report: the collapse measures, the claims' statistics and wording, and rendering both the
committed (old) reproduce.json and one with the probe protocol and normalised spectra."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from dimcollapse.aggregate import aggregate_seeds
from dimcollapse.errors import UsageError
from dimcollapse.manifest import FORMAT_VERSION
from dimcollapse.methods import PAPER_TOP1
from dimcollapse.report import check_claims, write_report
from dimcollapse.report.claims import SAME_MARGIN_POINTS, equivalence_margin, family_size
from dimcollapse.report.numbers import count, interval, number, signed, threshold
from dimcollapse.report.tail import counts_at, seed_counts, smallest_ratios
from dimcollapse.spectrum.metrics import COLLAPSE_THRESHOLDS
from dimcollapse.stats import holm

# the first committed cpu-scale run (issue 9's settings), kept as a file of the oldest format
OLD = Path(__file__).parents[1] / "fixtures" / "reproduce-v1-cpu-2026-11.json"
TOYS = Path(__file__).parents[2] / "docs" / "results" / "fashion-mnist-cpu" / "toys"
METHODS = ("simclr-mlp", "simclr-linear", "simclr-none", "directclr", "fixed-lowrank", "diagonal")


def _committed() -> dict:
    return json.loads(OLD.read_text())


# ---- numbers --------------------------------------------------------------------------------


def test_numbers_are_written_sensibly():
    assert count(15.333333333333334) == "15.3" and count(18.666666666666668) == "18.7"
    assert count(18.0) == "18" and count(0) == "0" and count(None) == "n/a"
    assert number(-0.004) == "0.0" and number(-0.05) == "-0.1"  # never "-0.0"
    assert signed(-0.004) == "0.0" and signed(0.8) == "+0.8" and signed(-0.7) == "-0.7"
    assert interval([-0.01, 1.2]) == " [0.0, 1.2]" and interval(None) == ""
    assert threshold(1e-5) == "1e-5" and threshold(1e-4) == "1e-4"


# ---- the collapsed tail ---------------------------------------------------------------------


def _spectrum(rng: np.random.Generator, dim: int, floor_exp: float) -> list[float]:
    """Descending covariance eigenvalues from 1 down to about 10**floor_exp."""
    return sorted(np.logspace(0, floor_exp, dim) * rng.uniform(0.5, 1.5, dim), reverse=True)


def _collapsing(rng: np.random.Generator, dim: int, floor_exp: float) -> list[float]:
    """A slope (:func:`_spectrum`) above -4, else a cliff: live values within a decade, then
    4 to 8 values near 10**floor_exp (collapsed by the cliff rule)."""
    if floor_exp > -4:
        return _spectrum(rng, dim, floor_exp)
    k = int(rng.integers(4, 9))
    live = np.logspace(0, -1, dim - k) * rng.uniform(0.8, 1.2, dim - k)
    return sorted(np.r_[live, 10.0**floor_exp * rng.uniform(0.5, 1.5, k)], reverse=True)


def test_threshold_counts_match_a_numpy_count():
    rng = np.random.default_rng(0)
    seeds = [{"representation": {"singular_values": _spectrum(rng, 64, -8 + i)}} for i in range(3)]
    run = {"seeds": seeds}
    got = seed_counts(run, "representation", COLLAPSE_THRESHOLDS)
    for row, seed in zip(got, seeds):
        sv = np.asarray(seed["representation"]["singular_values"])
        assert row == [int(np.count_nonzero(sv / sv.max() < t)) for t in COLLAPSE_THRESHOLDS]
    assert got[0][0] > got[0][-1] > 0  # a looser threshold counts more
    ratios = smallest_ratios(run, "representation")
    assert ratios == pytest.approx([min(s) / max(s) for s in
                                    (x["representation"]["singular_values"] for x in seeds)])  # fmt: skip
    # without singular values only the summary's own threshold is known
    old = {"seeds": [{"representation": {"collapsed_dims": 4, "rel_tol": 1e-5}}]}
    assert seed_counts(old, "representation", (1e-4, 1e-5)) == [[None, 4]]
    assert counts_at(old, "representation", (1e-4, 1e-5), 1e-4) is None


# ---- synthetic results ----------------------------------------------------------------------


def _seed_result(method, seed, top1, rng, *, rep_floor, emb_floor, normalized_floor=None):
    """One seed's stage result; ``*_floor``: log10 of the smallest sigma_k/sigma_1."""
    rep = {
        "dim": 32,
        "rel_tol": 1e-5,
        "rankme": 20.0 + rng.normal(),
        "collapsed_dims": 0,
        "singular_values": _collapsing(rng, 32, rep_floor),
        "dims_90": 10,
        "n": 100,
    }
    emb = {**rep, "singular_values": _collapsing(rng, 32, emb_floor), "rankme": 15.0 + rng.normal()}
    for s in (rep, emb):
        sv = np.asarray(s["singular_values"])
        s["collapsed_dims"] = int(np.sum(sv < 1e-5 * sv[0]))
    out = {
        "name": method, "method": method, "seed": seed, "group": "table1", "d0": None,
        "num_classes": 10,
        "probe": {"full": {"top1": top1, "knn_top1_k20": top1 - 0.01, "labels": 1000,
                           "weight_decay": [1e-4, 1e-3, 1e-4][seed], "val_top1": top1 + 0.01}},
        "representation": rep, "embedding": emb, "seconds": {"train": 10.0, "probe": 1.0},
    }  # fmt: skip
    out["probe"]["all_labels"] = {**out["probe"]["full"], "top1": top1 + 0.02, "labels": 55000}
    if normalized_floor is not None:
        sv = _spectrum(rng, 32, normalized_floor)
        collapsed = int(np.count_nonzero(np.asarray(sv) < 1e-5 * sv[0]))
        out["representation_normalized"] = {
            **rep,
            "singular_values": sv,
            "collapsed_dims": collapsed,
        }
        out["embedding_normalized"] = {**emb}
    return out


def _manifest(*, normalized: bool, mlp=(0.80, 0.83, 0.81), none=(0.70, 0.715, 0.72)):
    """Every method at 3 seeds. Raw r of simclr-none has a cliff to 1e-9 (6 collapsed), its
    normalised r only 1e-3 (no collapse); the other methods' r stay above 1e-4."""
    rng = np.random.default_rng(1)
    top1 = {"simclr-mlp": mlp, "simclr-linear": (0.75, 0.765, 0.76), "simclr-none": none,
            "directclr": (0.79, 0.77, 0.78), "fixed-lowrank": (0.788, 0.768, 0.779),
            "diagonal": (0.70, 0.71, 0.70)}  # fmt: skip
    runs = {}
    for m in METHODS:
        seeds = [
            _seed_result(m, s, top1[m][s], rng, rep_floor=-9 if m == "simclr-none" else -3,
                         emb_floor=-9 if m == "simclr-mlp" else -3,
                         normalized_floor=-3 if normalized else None)
            for s in range(3)
        ]  # fmt: skip
        runs[m] = aggregate_seeds(seeds)
    settings = dict(_committed()["settings"], rep_dim=32, default_d0=8)
    if normalized:
        settings.update(
            feature_maps={"input": 28, "conv1": 14, "layer1": 14, "layer2": 7, "layer3": 4,
                          "layer4": 2},
            probe_labels=1000, val_size=5000, channels_last=True,
        )  # fmt: skip
    return {"settings": settings, "runs": runs, "baselines": {}, "paper": {"top1": PAPER_TOP1},
            "timing": {}, "toys": {}}  # fmt: skip


def _by_figure(claims):
    return {re.search(r"\((Fig\. \w+|Table 1|6\.3)\)$", c["claim"]).group(1) + str(i): c
            for i, c in enumerate(claims) if c["kind"] == "paper"}  # fmt: skip


# ---- claims ---------------------------------------------------------------------------------


def test_a_chain_shows_every_link_and_fails_on_any():
    claims = check_claims(_manifest(normalized=False))
    chain = claims[0]
    assert [t["label"] for t in chain["tests"]] == [
        "simclr-mlp > simclr-linear", "simclr-linear > simclr-none", "simclr-mlp > simclr-none"
    ]  # fmt: skip
    assert "simclr-mlp - simclr-none" in chain["ours"] and chain["verdict"] == "holds"
    # MLP below none in every seed: the chain fails on its end-to-end link alone
    reversed_ = check_claims(_manifest(normalized=False, mlp=(0.60, 0.64, 0.61)))[0]
    assert reversed_["tests"][2]["verdict"] == "fails" and reversed_["verdict"] == "fails"


def test_holm_is_applied_over_the_paper_claims_tests():
    claims = check_claims(_manifest(normalized=False))
    family = [t for c in claims if c["kind"] == "paper" for t in c["tests"]]
    assert family_size(claims) == len([t for t in family if t["p"] is not None])
    assert [t["p_holm"] for t in family] == holm([t["p"] for t in family])
    for c in claims:
        assert c["verdict_holm"] in ("holds", "fails", "inconclusive")
        # the adjustment only ever withdraws a decision
        assert c["verdict_holm"] in (c["verdict"], "inconclusive")


def test_the_margin_of_about_the_same_is_fixed_from_the_papers_rows():
    # the paper's "same" rows differ by 0.4 and 0.9 points, its smallest ordering by 1.6
    assert 0.9 <= SAME_MARGIN_POINTS < 1.6
    manifest = _manifest(normalized=False)
    margin = equivalence_margin(manifest)
    gap = np.mean([80 - 70, 83 - 71.5, 81 - 72])
    assert margin["gap"] == pytest.approx(gap) and margin["margin"] == SAME_MARGIN_POINTS
    # no positive gap: the margin does not move with the run
    flat = _manifest(normalized=False, mlp=(0.70, 0.70, 0.72), none=(0.71, 0.72, 0.73))
    assert equivalence_margin(flat)["margin"] == SAME_MARGIN_POINTS
    same = [c for c in check_claims(flat) if "about as well" in c["claim"]]
    assert same and all(c["tests"] and "margin +-1.00" in c["ours"] for c in same)


def test_collapse_is_judged_on_the_normalised_tail_when_recorded():
    raw = _by_figure(check_claims(_manifest(normalized=False)))
    fig7b = next(c for k, c in raw.items() if k.startswith("Fig. 7b"))
    # raw r of simclr-none has a cliff to 1e-9 in every seed, the MLP's a slope to 1e-3
    assert fig7b["verdict"] == "holds" and "r (raw)" in fig7b["ours"]
    normalized = _by_figure(check_claims(_manifest(normalized=True)))
    fig7b = next(c for k, c in normalized.items() if k.startswith("Fig. 7b"))
    assert "r (row-normalised)" in fig7b["ours"]
    # the normalised r never collapses: the effect does not appear, and is not called a reversal
    assert "the effect does not appear" in fig7b["ours"]
    assert "smallest sigma_k/sigma_1" in fig7b["ours"] and "opposite" not in fig7b["ours"]
    assert fig7b["verdict"] == "inconclusive"  # 0 vs 0 in 3 seeds: zero variance
    assert any("RankMe" in n and "does not decide" in n for n in fig7b["notes"])
    fig9c = next(c for k, c in normalized.items() if k.startswith("Fig. 9c"))
    assert any("shares its simclr-none runs" in n for n in fig7b["notes"] + fig9c["notes"])
    fig2 = next(c for k, c in normalized.items() if k.startswith("Fig. 2"))
    # z of the MLP has a cliff of 8 decades in every seed: judged by the rule, it holds
    assert "by the cliff rule" in fig2["ours"] and fig2["verdict"] == "holds"
    assert any(n.startswith("secondary") for n in fig2["notes"])


def test_a_zero_variance_comparison_does_not_decide_from_three_seeds():
    manifest = _committed()
    # every method the same accuracy in every seed: differences with zero variance
    for run in manifest["runs"].values():
        for seed in run["seeds"]:
            seed["probe"]["full"]["top1"] = run["probe"]["full"]["top1"]
    claims = check_claims(manifest)
    ordered = [c for c in claims if c["kind"] == "paper" and "Table 1" in c["claim"]]
    for c in ordered:
        assert all(t["rule"] == "sign" for t in c["tests"])
        assert c["verdict"] == "inconclusive"


# ---- rendering ------------------------------------------------------------------------------


def test_the_committed_old_reproduce_json_still_renders(tmp_path):
    manifest = _committed()
    shutil.copytree(TOYS, tmp_path / "toys")  # the theory lab's figures
    claims = write_report(manifest, tmp_path, figures=False)
    text = (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.html").is_file() and len(claims) == 12
    assert "predates the probe protocol" in text and "Not recorded by this run" in text
    assert "feature map after each stage" not in text and "memory format" not in text
    assert "after Holm" in text and "at 95% per claim" in text
    assert "sum of 3 seeds" in text
    for bad in ("15.333333333333334", "18.666666666666668", "-0.0 [", "opposite"):
        assert bad not in text
    # Figs. 7b and 9c: no seed of simclr-none collapses at 1e-5 in the committed run
    fig7b = next(c for c in claims if "(Fig. 7b)" in c["claim"])
    assert "the effect does not appear" in fig7b["ours"] and fig7b["verdict"] != "fails"


def test_a_reproduce_json_with_the_new_fields_renders_them(tmp_path):
    manifest = _manifest(normalized=True)
    baseline_seeds = [copy.deepcopy(manifest["runs"]["simclr-none"]["seeds"][i]) for i in range(3)]
    for b in baseline_seeds:
        b["probe_all_labels"] = b["probe"]["all_labels"]
        b["probe"] = b["probe"]["full"]
        b["seconds"] = 1.0
        for key in ("embedding", "embedding_normalized", "history"):
            b.pop(key, None)
    from dimcollapse.aggregate import aggregate_baselines

    manifest["baselines"] = aggregate_baselines(
        [{"pixels": {**b, "name": "raw pixels"}, "seconds": 1.0} for b in baseline_seeds]
    )
    assert "probe_all_labels" in manifest["baselines"]["pixels"]
    assert "representation_normalized" in manifest["baselines"]["pixels"]
    # aggregate records the thresholds the tail was counted at, and keeps each seed's choice
    rep = manifest["runs"]["simclr-none"]["representation"]
    assert rep["collapse_thresholds"] == list(COLLAPSE_THRESHOLDS) and len(rep["collapsed_at"]) == 4
    full = manifest["runs"]["simclr-mlp"]["probe"]["full"]
    assert full["weight_decay"] is None and full["weight_decay_per_seed"] == [1e-4, 1e-3, 1e-4]
    write_report(manifest, tmp_path, figures=True)
    text = (tmp_path / "report.md").read_text()
    assert "linear top-1, 1,000 labels" in text and "linear top-1, all labels" in text
    assert "input 28, conv1 14, layer1 14, layer2 7, layer3 4, layer4 2" in text
    assert "0.0001, 0.001, 0.0001" in text  # the chosen weight decay per seed
    assert "5,000 training images" in text and "Not recorded by this run" not in text
    assert "r (row-normalised)" in text
    assert "| pretraining memory format | channels_last (asked for, on the CPU too) |" in text
    assert (tmp_path / "figures" / "collapsed_tail.png").stat().st_size > 0


def test_the_report_refuses_a_newer_version(tmp_path):
    from dimcollapse.report import write_report

    data = {**json.loads(OLD.read_text()), "version": FORMAT_VERSION + 1}
    with pytest.raises(UsageError, match="version 2, newer"):
        write_report(data, tmp_path, figures=False)
    assert not (tmp_path / "report.md").exists()


def test_only_fashion_mnist_points_to_its_study_when_pixels_lead(tmp_path):
    from dimcollapse.report.write import build_document

    texts = {}
    for dataset in ("fashion-mnist", "cifar10"):
        manifest = _committed()  # the raw pixels lead the best backbone in it
        manifest["settings"]["dataset"] = dataset
        doc = build_document(manifest, tmp_path, {}, check_claims(manifest))
        texts[dataset] = doc.markdown()
    assert "No pretrained backbone beats" in texts["cifar10"]
    assert "fashion-mnist-collapse.md" in texts["fashion-mnist"]
    assert "linearly separable" in texts["fashion-mnist"]
    assert "fashion-mnist-collapse.md" not in texts["cifar10"]
    assert "linearly separable" not in texts["cifar10"]


def test_spectrum_figures_plot_the_spectrum_the_claims_read():
    from dimcollapse.report.spectrum_figures import _spectrum_series, _vectors_text

    run = _manifest(normalized=True)["runs"]["simclr-none"]
    text, values = _spectrum_series(run, "representation")
    assert values == run["representation_normalized"]["singular_values"]
    assert values != run["representation"]["singular_values"]
    assert f"RankMe {run['representation_normalized']['rankme']:.1f}" in text
    assert _vectors_text([run], "representation") == "row-normalised vectors"
    raw = _manifest(normalized=False)["runs"]["simclr-none"]
    assert _spectrum_series(raw, "representation")[1] == raw["representation"]["singular_values"]
    assert _vectors_text([raw], "representation") == "raw vectors"
    assert _vectors_text([run, raw], "representation") == "row-normalised vectors where recorded"
