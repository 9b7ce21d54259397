"""``dimcollapse reproduce``: a tiny end-to-end reproduction, its report, reuse and refusals."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import assert_usage_error

from dimcollapse.aggregate import aggregate_seeds
from dimcollapse.backbones import feature_map_sizes, rep_dim
from dimcollapse.errors import UsageError
from dimcollapse.report import check_claims
from dimcollapse.reproduce import (
    METHODS,
    ReproduceSettings,
    plan_runs,
    reproduce,
    resolve_plan,
    train_config,
)
from dimcollapse.reproduce.plan import SCALE_DEFAULTS

#: A reproduction that takes seconds: 8x8 digits, one epoch, a tiny network, 2 probe epochs.
TINY = dict(
    dataset="digits",
    epochs=1,
    subset=128,
    width=0.0625,
    batch_size=64,
    monitor_samples=64,
    probe_epochs=2,
    test_subset=100,
    toy_steps=20,
    seeds=2,
    jobs=1,
    verbose=False,
)
#: The same settings on the command line (hidden options for the knobs).
TINY_ARGS = [
    "--dataset",
    "digits",
    "--epochs",
    "1",
    "--subset",
    "128",
    "--width",
    "0.0625",
    "--batch-size",
    "64",
    "--monitor-samples",
    "64",
    "--probe-epochs",
    "2",
    "--test-subset",
    "100",
    "--toy-steps",
    "20",
    "--seeds",
    "2",
    "--jobs",
    "1",
    "--quiet",
]

HEADINGS = (
    "# Reproduction report",
    "## 1. Setup",
    "## 2. Table 1 analogue",
    "### The paper's claims, checked",
    "## 3. Dimensional collapse of the embedding (Fig. 2)",
    "## 4. Theory lab",
    "## 5. A projector keeps the representation from collapsing (Fig. 7b)",
    "## 6. DirectCLR against the SimCLR variants (Fig. 9)",
    "## 7. DirectCLR's sub-vector size d0",
    "## 8. Over training",
    "## 9. Wall time",
)
FIGURES = (
    "figures/fig2_embedding_spectrum.png",
    "figures/fig7b_representation_spectra.png",
    "figures/fig9_representation_spectra.png",
    "figures/ablation_representation_spectra.png",
    "figures/training_curves.png",
    "figures/accuracy.png",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce") / "report"
    t0 = time.perf_counter()
    manifest = reproduce(ReproduceSettings(out=str(out), **TINY))
    return out, manifest, time.perf_counter() - t0


def _md_images(md: str) -> list[str]:
    return re.findall(r"!\[(?:\\.|[^\]\\])*\]\(([^)]+)\)", md)


def test_report_has_every_section_table_row_and_figure(tiny):
    out, manifest, _ = tiny
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for heading in HEADINGS:
        assert heading in md, heading
    # the Table 1 analogue: every method, DirectCLR's sub-vector probe, both baselines
    for method in METHODS:
        assert f"| `{method}` |" in md, method
    assert "| `directclr` (probe on r[:" in md
    assert "| `pixels` | baseline: raw pixels |" in md
    assert "| `random` | baseline: random backbone |" in md
    for value in ("66.5", "61.1", "51.5", "62.7", "62.3", "60.2", "47.9"):
        assert f"| {value} |" in md, value
    # figures: every one drawn, referenced by the Markdown, embedded in the HTML
    images = _md_images(md)
    for fig in FIGURES:
        assert fig in images, fig
    for rel in images:
        assert rel.endswith(".png") and (out / rel).is_file(), rel
    assert html.count('<img src="data:image/png;base64,') == len(images)
    assert 'src="figures/' not in html and "<script" not in html  # self-contained
    # the quick scale says the sweep was skipped; the setup names the command and versions
    assert "Skipped at this scale" in md
    assert "dimcollapse reproduce --scale quick --dataset digits" in md
    for item in (
        "torch / torchvision",
        "python",
        "CPU",
        "GPU",
        "seeds",
        "**total, this invocation**",
    ):
        assert f"| {item} |" in md, item
    assert md.count("**How to read this.**") >= 8
    # the verdict count up top, how it was computed, intervals in the table and the claims
    assert re.search(r"\*\*The paper's \d+ claims here: [^*]*(hold|fail|inconclusive)", md)
    assert "paired differences" in md and "95% Student-t interval" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| `simclr-mlp` |"))
    assert re.search(r"\d+\.\d \[-?\d+\.\d, \d+\.\d\]", row), row
    assert any(v in md for v in ("| holds |", "| **fails** |", "| inconclusive |"))


def test_manifest_holds_settings_and_every_result(tiny):
    out, manifest, _ = tiny
    data = json.loads((out / "reproduce.json").read_text())
    assert data["format"] == "dimcollapse-reproduce" and data["status"] == "complete"
    assert data["settings"]["epochs"] == 1 and data["settings"]["dataset"] == "digits"
    assert sorted(data["runs"]) == sorted(METHODS)
    for name, run in data["runs"].items():
        for seed in (0, 1):
            assert (out / "runs" / name / f"seed-{seed}" / "checkpoints" / "final.pt").is_file()
        assert run["seed_values"] == [0, 1] and [s["seed"] for s in run["seeds"]] == [0, 1]
        per_seed = [s["probe"]["full"]["top1"] for s in run["seeds"]]
        assert run["probe"]["full"]["top1"] == pytest.approx(sum(per_seed) / 2)
        lo, hi = run["probe"]["full"]["top1_ci95"]
        assert lo <= run["probe"]["full"]["top1"] <= hi
        for key in ("knn_top1_k20_ci95",):
            assert len(run["probe"]["full"][key]) == 2
        assert len(run["representation"]["rankme_ci95"]) == 2
        assert 0.0 <= run["probe"]["full"]["top1"] <= 1.0
        assert run["probe"]["full"]["knn_top1_k20"] is not None
        assert len(run["representation"]["singular_values"]) == run["rep_dim"]
        assert run["history"] and run["history"][-1]["epoch"] == 1
    sub = data["runs"]["directclr"]["probe"]["subvector"]
    assert sub["dim"] == data["runs"]["directclr"]["d0"]
    assert set(data["baselines"]) == {"pixels", "random"}
    assert data["baselines"]["pixels"]["probe"]["dim"] == 64  # 8x8 digits
    keys = {"id", "claim", "paper", "ours", "verdict", "verdict_holm", "ci95", "holds", "kind"}
    keys |= {"notes", "runs", "tests"}
    assert data["claims"] and all(set(c) == keys for c in data["claims"])
    verdicts = ("holds", "fails", "inconclusive")
    assert all(c["verdict"] in verdicts for c in data["claims"])
    assert all(c["verdict_holm"] in verdicts for c in data["claims"] if c["kind"] == "paper")
    assert all(c["ci95"] is not None for c in data["claims"])  # two seeds: intervals
    assert data["timing"]["total_wall_s"] > 0
    assert data["environment"]["torch"]


def test_rerun_with_same_settings_reuses_every_stage(tiny, cli):
    out, _, first = tiny
    finals = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed-*/checkpoints/final.pt")}
    assert len(finals) == 2 * len(METHODS)
    t0 = time.perf_counter()
    code, _out, err = cli("reproduce", *TINY_ARGS, "--out", out)
    elapsed = time.perf_counter() - t0
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in finals} == finals  # nothing retrained
    data = json.loads((out / "reproduce.json").read_text())
    reused = set(data["timing"]["reused"])
    assert {f"run:{m}:{s}" for m in METHODS for s in (0, 1)} | {"baselines:0", "toys"} <= reused
    assert elapsed < first


def test_a_stage_interrupted_after_pretraining_is_probed_again_not_retrained(tiny):
    out, _, _ = tiny
    stage = out / "runs" / "simclr-none" / "seed-0" / "reproduce_stage.json"
    final = out / "runs" / "simclr-none" / "seed-0" / "checkpoints" / "final.pt"
    mtime = final.stat().st_mtime_ns
    stage.unlink()
    data = reproduce(ReproduceSettings(out=str(out), **TINY))
    assert stage.is_file() and final.stat().st_mtime_ns == mtime
    assert "run:simclr-none:0" not in data["timing"]["reused"]
    assert "run:simclr-mlp:0" in data["timing"]["reused"]


def test_other_settings_into_the_same_directory_are_refused(tiny, cli):
    out, _, _ = tiny
    before = (out / "reproduce.json").read_text()
    args = [a if a != "1" else "2" for a in TINY_ARGS]  # --epochs 2
    result = cli("reproduce", *args, "--out", out)
    assert_usage_error(result, "holds another report", "choose another --out", "epochs")
    assert (out / "reproduce.json").read_text() == before


def test_a_directory_that_is_not_a_reproduction_is_refused(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = cli("reproduce", *TINY_ARGS, "--out", tmp_path)
    assert_usage_error(result, "holds another report", "choose another --out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_bad_options_are_one_line_errors(tmp_path, cli):
    assert_usage_error(
        cli("reproduce", "--dataset", "nope", "--out", tmp_path / "a"), "unknown dataset"
    )
    assert_usage_error(
        cli("reproduce", "--dataset", "digits", "--epochs", "0", "--out", tmp_path / "b"), "epochs"
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_scales_resolve_to_the_documented_runs(tmp_path):
    quick = resolve_plan(ReproduceSettings(out=str(tmp_path), dataset="digits"))
    assert quick.d0_values == [] and [r.name for r in plan_runs(quick)] == list(METHODS) * 3
    assert quick.epochs >= 1 and quick.width == 0.25 and quick.small_stem is False
    assert quick.seeds == [0, 1, 2] and quick.proj_out == SCALE_DEFAULTS["quick"]["proj_out"]
    cpu = resolve_plan(ReproduceSettings(out=str(tmp_path), scale="cpu", dataset="digits"))
    assert len(cpu.seeds) >= 3 and cpu.d0_values == [] and cpu.subset is None
    assert len(plan_runs(cpu)) == 6 * len(cpu.seeds)
    full = resolve_plan(ReproduceSettings(out=str(tmp_path), scale="full", dataset="digits"))
    assert full.width == 1.0 and full.rep_dim == 512 and full.default_d0 == 90
    assert full.d0_values == [16, 32, 64, 128, 256]
    assert full.seeds == [0, 1, 2] and full.proj_out == 128
    runs = plan_runs(full)
    assert [r.seed for r in runs] == [0] * 11 + [1] * 11 + [2] * 11  # seed-major
    names = [r.name for r in runs if r.seed == 0]
    assert names[:6] == list(METHODS)
    assert names[6:] == [f"directclr-d0-{d}" for d in (16, 32, 64, 128, 256)]
    assert len({r.task_id for r in runs}) == len(runs)
    five = resolve_plan(ReproduceSettings(out=str(tmp_path), dataset="digits", seeds=5, seed=7))
    assert five.seeds == [7, 8, 9, 10, 11]
    with pytest.raises(UsageError, match="seeds"):
        resolve_plan(ReproduceSettings(out=str(tmp_path), dataset="digits", seeds=0))
    over = resolve_plan(
        ReproduceSettings(
            out=str(tmp_path), scale="full", dataset="digits", epochs=3, subset=100, width=0.5
        )
    )
    assert (over.epochs, over.subset, over.width, over.rep_dim) == (3, 100, 0.5, 256)
    with pytest.raises(UsageError, match="unknown scale"):
        resolve_plan(ReproduceSettings(out=str(tmp_path), scale="huge"))


def test_cpu_scales_have_the_papers_geometry_at_28px():
    """r averages a spatial map (layer4 at least 2x2 on Fashion-MNIST's 28 px), and r is wider
    than the embedding wherever Fig. 7b is judged (the paper: 2048 against 128)."""
    for scale in ("quick", "cpu"):
        d = SCALE_DEFAULTS[scale]
        assert feature_map_sizes(d["stem"], 28)["layer4"] >= 2
        assert rep_dim(d["backbone"], d["width"]) > d["proj_out"]


def test_plan_records_geometry_and_protocol(tmp_path):
    plan = resolve_plan(ReproduceSettings(out=str(tmp_path), scale="cpu", dataset="digits"))
    assert plan.feature_maps == feature_map_sizes(plan.stem, 8)
    key = plan.key()
    assert key["feature_maps"]["input"] == 8 and key["stem"] == "half"
    # digits' training split has 136 images in its rarest class: a split takes at most a third
    assert plan.labelled_per_class == 45 and plan.val_per_class == 45


def test_reproduce_refuses_a_subset_larger_than_the_dataset_as_train_does(tmp_path, cli):
    result = cli("reproduce", "--dataset", "digits", "--subset", "100000000", "--out", tmp_path)
    assert_usage_error(result, "subset must be between 1 and 1438")
    assert not any(tmp_path.iterdir())


def test_only_the_projector_heads_get_the_plans_proj_out(tmp_path):
    quick = resolve_plan(ReproduceSettings(out=str(tmp_path), dataset="digits"))
    proj_out = {
        r.method: train_config(quick, r, tmp_path / r.name, "cpu", cpu=True).proj_out
        for r in plan_runs(quick)
    }
    want = SCALE_DEFAULTS["quick"]["proj_out"]
    assert proj_out == {m: want if m in ("simclr-mlp", "simclr-linear") else None for m in METHODS}


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
    runs = {m: _seeded(m, [0.8], [40]) for m in METHODS}
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


def test_help_lists_the_options(cli):
    code, out, _ = cli("reproduce", "--help")
    assert code == 0
    for flag in (
        "--scale",
        "--dataset",
        "--data-root",
        "--epochs",
        "--subset",
        "--width",
        "--device",
        "--seed",
        "--out",
    ):
        assert flag in out
    assert "--toy-steps" not in out  # testing knobs stay hidden


def test_report_files_live_under_out(tiny):
    out, _, _ = tiny
    for name in ("report.md", "report.html", "reproduce.json"):
        assert (out / name).is_file()
    assert not list(Path(out).glob("**/*.tmp*"))


def test_full_scale_sweeps_d0_in_parallel_workers(tmp_path):
    """The full scale's extra runs (the d0 sweep), through the parallel worker path."""
    out = tmp_path / "full"
    settings = ReproduceSettings(out=str(out), scale="full", **{**TINY, "jobs": 2})
    data = reproduce(settings)
    rep_dim = data["settings"]["rep_dim"]
    sweep = [d for d in (rep_dim // k for k in (32, 16, 8, 4, 2))]
    assert data["settings"]["d0_values"] == sweep
    for d0 in sweep:
        if d0 != data["settings"]["default_d0"]:
            assert f"directclr-d0-{d0}" in data["runs"]
    assert data["execution"]["jobs"] == 2
    md = (out / "report.md").read_text()
    assert "figures/d0_sweep.png" in _md_images(md) and (out / "figures/d0_sweep.png").is_file()
    assert "Skipped at this scale" not in md
    assert "--scale full" in md and "--d0-sweep" not in md
    html = (out / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(_md_images(md))
