"""``dimcollapse reproduce``: a tiny end-to-end reproduction, its report, reuse and refusals."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import assert_usage_error

from dimcollapse.errors import UsageError
from dimcollapse.report import check_claims
from dimcollapse.reproduce import (
    METHODS,
    ReproduceSettings,
    plan_runs,
    reproduce,
    resolve_plan,
)

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
        "seed",
        "**total, this invocation**",
    ):
        assert f"| {item} |" in md, item
    assert md.count("**How to read this.**") >= 8


def test_manifest_holds_settings_and_every_result(tiny):
    out, manifest, _ = tiny
    data = json.loads((out / "reproduce.json").read_text())
    assert data["format"] == "dimcollapse-reproduce" and data["status"] == "complete"
    assert data["settings"]["epochs"] == 1 and data["settings"]["dataset"] == "digits"
    assert sorted(data["runs"]) == sorted(METHODS)
    for name, run in data["runs"].items():
        assert (out / "runs" / name / "checkpoints" / "final.pt").is_file()
        assert 0.0 <= run["probe"]["full"]["top1"] <= 1.0
        assert run["probe"]["full"]["knn_top1_k20"] is not None
        assert len(run["representation"]["singular_values"]) == run["rep_dim"]
        assert run["history"] and run["history"][-1]["epoch"] == 1
    sub = data["runs"]["directclr"]["probe"]["subvector"]
    assert sub["dim"] == data["runs"]["directclr"]["d0"]
    assert set(data["baselines"]) == {"pixels", "random"}
    assert data["baselines"]["pixels"]["probe"]["dim"] == 64  # 8x8 digits
    assert data["claims"] and all(
        set(c) == {"claim", "paper", "ours", "holds"} for c in data["claims"]
    )
    assert data["timing"]["total_wall_s"] > 0
    assert data["environment"]["torch"]


def test_rerun_with_same_settings_reuses_every_stage(tiny, cli):
    out, _, first = tiny
    finals = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/checkpoints/final.pt")}
    assert len(finals) == len(METHODS)
    t0 = time.perf_counter()
    code, _out, err = cli("reproduce", *TINY_ARGS, "--out", out)
    elapsed = time.perf_counter() - t0
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in finals} == finals  # nothing retrained
    data = json.loads((out / "reproduce.json").read_text())
    reused = set(data["timing"]["reused"])
    assert {f"run:{m}" for m in METHODS} | {"baselines", "toys"} <= reused
    assert elapsed < first


def test_a_stage_interrupted_after_pretraining_is_probed_again_not_retrained(tiny):
    out, _, _ = tiny
    stage = out / "runs" / "simclr-none" / "reproduce_stage.json"
    final = out / "runs" / "simclr-none" / "checkpoints" / "final.pt"
    mtime = final.stat().st_mtime_ns
    stage.unlink()
    data = reproduce(ReproduceSettings(out=str(out), **TINY))
    assert stage.is_file() and final.stat().st_mtime_ns == mtime
    assert "run:simclr-none" not in data["timing"]["reused"]
    assert "run:simclr-mlp" in data["timing"]["reused"]


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
    assert quick.d0_values == [] and [r.name for r in plan_runs(quick)] == list(METHODS)
    assert quick.epochs >= 1 and quick.width == 0.25 and quick.small_stem is False
    full = resolve_plan(ReproduceSettings(out=str(tmp_path), scale="full", dataset="digits"))
    assert full.width == 1.0 and full.rep_dim == 512 and full.default_d0 == 90
    assert full.d0_values == [16, 32, 64, 128, 256]
    names = [r.name for r in plan_runs(full)]
    assert names[:6] == list(METHODS)
    assert names[6:] == [f"directclr-d0-{d}" for d in (16, 32, 64, 128, 256)]
    over = resolve_plan(
        ReproduceSettings(
            out=str(tmp_path), scale="full", dataset="digits", epochs=3, subset=100, width=0.5
        )
    )
    assert (over.epochs, over.subset, over.width, over.rep_dim) == (3, 100, 0.5, 256)
    with pytest.raises(UsageError, match="unknown scale"):
        resolve_plan(ReproduceSettings(out=str(tmp_path), scale="huge"))


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


def test_claims_follow_the_numbers():
    runs = {
        "simclr-mlp": _run("simclr-mlp", 0.80, 40.0),
        "simclr-linear": _run("simclr-linear", 0.75, 35.0),
        "simclr-none": _run("simclr-none", 0.70, 10.0, collapsed=20),
        "directclr": _run("directclr", 0.77, 38.0),
        "fixed-lowrank": _run("fixed-lowrank", 0.765, 37.0),
        "diagonal": _run("diagonal", 0.70, 30.0),
    }
    runs["directclr"]["probe"]["subvector"] = {"top1": 0.6}
    manifest = {
        "runs": runs,
        "paper": {"top1": {}, "subvector_top1": 47.9},
        "baselines": {"random": {"probe": {"top1": 0.5}}},
    }
    by_claim = {c["claim"].split(" (")[0]: c["holds"] for c in check_claims(manifest)}
    assert by_claim["A projector helps: SimCLR MLP > linear > no projector"] is True
    assert by_claim["DirectCLR beats SimCLR with a linear projector"] is True
    assert by_claim["A fixed low-rank projector does about as well as DirectCLR"] is True
    assert by_claim["A trainable diagonal projector does about as well as a linear one"] is False
    assert by_claim["Sanity check"] is True
    assert all(v is not None for v in by_claim.values())


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
