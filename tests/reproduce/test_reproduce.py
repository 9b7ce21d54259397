"""``dimcollapse reproduce``: a tiny end-to-end reproduction (its report's contents are checked in
tests/report/test_report_document.py), its plans, reuse and refusals."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from conftest import assert_usage_error
from tiny_runs import TINY_REPRODUCE, TINY_REPRODUCE_ARGS, markdown_images

from dimcollapse.backbones import feature_map_sizes, rep_dim
from dimcollapse.errors import UsageError
from dimcollapse.methods import EXTRA_GROUPS, PLANNED_GROUPS, methods_in_group
from dimcollapse.reproduce import (
    PLANNED_METHODS,
    ReproduceSettings,
    plan_runs,
    reproduce,
    resolve_plan,
    train_config,
)
from dimcollapse.reproduce.plan import SCALE_DEFAULTS


def test_manifest_holds_settings_and_every_result(tiny_reproduction):
    out, manifest, _ = tiny_reproduction
    data = json.loads((out / "reproduce.json").read_text())
    assert data["format"] == "dimcollapse-reproduce" and data["status"] == "complete"
    assert data["settings"]["epochs"] == 1 and data["settings"]["dataset"] == "digits"
    assert sorted(data["runs"]) == sorted(PLANNED_METHODS)
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
    assert set(data["baselines"]) == {"pixels", "pixels-pca", "random"}
    pca = data["baselines"]["pixels-pca"]
    assert (
        pca["probe"]["dim"] == pca["representation"]["dim"] == data["runs"]["simclr-mlp"]["rep_dim"]
    )
    # sections 4-5 on real images: every sweep's encoders at both seeds, in the report
    images = data["images"]
    assert images["seeds"] == [0, 1] and images["steps"] == 5
    assert all(len(recs) == len(images["records"][0]) >= 10 for recs in images["records"])
    assert "4b. Sections 4-5 on real images" in (out / "report.md").read_text()
    assert (out / "figures" / "image_lab.png").is_file()
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


def test_rerun_with_same_settings_reuses_every_stage(tiny_reproduction, cli):
    out, _, first = tiny_reproduction
    finals = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/seed-*/checkpoints/final.pt")}
    assert len(finals) == 2 * len(PLANNED_METHODS)
    t0 = time.perf_counter()
    code, _out, err = cli("reproduce", *TINY_REPRODUCE_ARGS, "--out", out)
    elapsed = time.perf_counter() - t0
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in finals} == finals  # nothing retrained
    data = json.loads((out / "reproduce.json").read_text())
    reused = set(data["timing"]["reused"])
    assert {f"run:{m}:{s}" for m in PLANNED_METHODS for s in (0, 1)} | {
        "baselines:0",
        "toys",
    } <= reused
    assert elapsed < first


def test_extras_train_beside_the_papers_runs_and_change_none_of_its_report(
    tiny_reproduction, cli, tmp_path
):
    """``--extras`` into a finished reproduction reuses every stage of the paper, trains the
    extra group (VICReg, Barlow Twins: their papers' 4 x rep_dim expanders), adds their section
    and figure, and leaves the paper's claims as they were."""
    out = tmp_path / "with-extras"
    shutil.copytree(tiny_reproduction[0], out)
    before = json.loads((out / "reproduce.json").read_text())
    code, _out, err = cli("reproduce", *TINY_REPRODUCE_ARGS, "--extras", "--out", out)
    assert code == 0, err
    data = json.loads((out / "reproduce.json").read_text())
    extras = [m for g in EXTRA_GROUPS for m in methods_in_group(g)]
    assert extras == ["vicreg", "barlow-twins"]
    assert list(data["runs"]) == [*before["runs"], *extras]
    assert {f"run:{m}:{s}" for m in PLANNED_METHODS for s in (0, 1)} <= set(
        data["timing"]["reused"]
    )
    for method in extras:
        run = data["runs"][method]
        assert run["group"] == "extra" and run["seed_values"] == [0, 1]
        assert len(run["embedding"]["singular_values"]) == 4 * run["rep_dim"]
    assert data["claims"] == before["claims"]
    assert "--extras" in data["command"]
    report = (out / "report.md").read_text()
    assert "## Beyond the paper: non-contrastive methods" in report
    assert "figures/extras_spectra.png" in markdown_images(report)
    assert (out / "figures" / "extras_spectra.png").is_file()


def test_a_stage_interrupted_after_pretraining_is_probed_again_not_retrained(tiny_reproduction):
    out, _, _ = tiny_reproduction
    stage = out / "runs" / "simclr-none" / "seed-0" / "reproduce_stage.json"
    final = out / "runs" / "simclr-none" / "seed-0" / "checkpoints" / "final.pt"
    mtime = final.stat().st_mtime_ns
    stage.unlink()
    data = reproduce(ReproduceSettings(out=str(out), **TINY_REPRODUCE))
    assert stage.is_file() and final.stat().st_mtime_ns == mtime
    assert "run:simclr-none:0" not in data["timing"]["reused"]
    assert "run:simclr-mlp:0" in data["timing"]["reused"]


def test_other_settings_into_the_same_directory_are_refused(tiny_reproduction, cli):
    out, _, _ = tiny_reproduction
    before = (out / "reproduce.json").read_text()
    args = [a if a != "1" else "2" for a in TINY_REPRODUCE_ARGS]  # --epochs 2
    result = cli("reproduce", *args, "--out", out)
    assert_usage_error(result, "holds another report", "choose another --out", "epochs")
    assert (out / "reproduce.json").read_text() == before


def test_a_directory_that_is_not_a_reproduction_is_refused(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = cli("reproduce", *TINY_REPRODUCE_ARGS, "--out", tmp_path)
    assert_usage_error(result, "holds another report", "choose another --out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_bad_options_are_one_line_errors(tmp_path, cli):
    assert_usage_error(
        cli("reproduce", "--dataset", "nope", "--out", tmp_path / "a"), "unknown dataset"
    )
    assert_usage_error(
        cli("reproduce", "--dataset", "digits", "--epochs", "0", "--out", tmp_path / "b"), "epochs"
    )
    # seeds past 2**32 - 1 were refused only when the first run of such a seed began
    last = ("--seed", "4294967295", "--seeds", "2")
    result = cli("reproduce", "--dataset", "digits", *last, "--out", tmp_path / "c")
    assert_usage_error(result, "the last seed", "4294967296")
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_scales_resolve_to_the_documented_runs(tmp_path):
    quick = resolve_plan(ReproduceSettings(out=str(tmp_path), dataset="digits"))
    assert quick.d0_values == [] and [r.name for r in plan_runs(quick)] == list(PLANNED_METHODS) * 4
    assert quick.epochs >= 1 and quick.width == 0.25 and quick.small_stem is False
    assert quick.seeds == [0, 1, 2, 3] and quick.proj_out == 128 == quick.rep_dim  # z = r
    assert quick.image_steps == SCALE_DEFAULTS["quick"]["image_steps"] > 0
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
    assert names[:6] == list(PLANNED_METHODS)
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
    """r averages a spatial map (layer4 at least 2x2 on Fashion-MNIST's 28 px), and Fig. 2 is
    judged on the paper's embedding of 128 (issue 23: as wide as r here, which the paper's
    claims do not forbid; the earlier 'r wider than z' premise was withdrawn)."""
    for scale in ("quick", "cpu"):
        d = SCALE_DEFAULTS[scale]
        assert feature_map_sizes(d["stem"], 28)["layer4"] >= 2
        assert d["proj_out"] == 128 <= rep_dim(d["backbone"], d["width"])


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


def test_only_the_papers_projector_heads_get_the_plans_proj_out(tmp_path):
    """The scale's proj_out is the paper's z (its projector's 128 outputs): it sets SimCLR's
    heads; VICReg's and Barlow Twins' expanders keep their papers' 4 x rep_dim (None here)."""
    quick = resolve_plan(ReproduceSettings(out=str(tmp_path), dataset="digits"))
    proj_out = {
        r.method: train_config(quick, r, tmp_path / r.name, "cpu", cpu=True).proj_out
        for r in plan_runs(quick, (*PLANNED_GROUPS, *EXTRA_GROUPS))
    }
    want = SCALE_DEFAULTS["quick"]["proj_out"]
    extras = [m for g in EXTRA_GROUPS for m in methods_in_group(g)]
    assert proj_out == {
        m: want if m in ("simclr-mlp", "simclr-linear") else None
        for m in (*PLANNED_METHODS, *extras)
    }


def test_the_cpu_scale_alone_turns_channels_last_on_for_the_cpu(tmp_path):
    """The committed quick results ran with the training default (off on a CPU); the cpu scale
    asks for channels_last, and every run's TrainConfig gets the plan's choice."""
    for scale, want in (("quick", None), ("cpu", True), ("full", None)):
        plan = resolve_plan(ReproduceSettings(out=str(tmp_path), scale=scale, dataset="digits"))
        assert plan.channels_last is want and plan.key()["channels_last"] is want
        configs = [train_config(plan, r, tmp_path, "cpu", cpu=True) for r in plan_runs(plan)]
        assert {c.channels_last for c in configs} == {want}


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


def test_report_files_live_under_out(tiny_reproduction):
    out, _, _ = tiny_reproduction
    for name in ("report.md", "report.html", "reproduce.json"):
        assert (out / name).is_file()
    assert not list(Path(out).glob("**/*.tmp*"))


def test_full_scale_sweeps_d0_in_parallel_workers(tmp_path):
    """The full scale's extra runs (the d0 sweep), through the parallel worker path."""
    out = tmp_path / "full"
    settings = ReproduceSettings(out=str(out), scale="full", **{**TINY_REPRODUCE, "jobs": 2})
    data = reproduce(settings)
    rep_dim = data["settings"]["rep_dim"]
    sweep = [d for d in (rep_dim // k for k in (32, 16, 8, 4, 2))]
    assert data["settings"]["d0_values"] == sweep
    for d0 in sweep:
        if d0 != data["settings"]["default_d0"]:
            assert f"directclr-d0-{d0}" in data["runs"]
    assert data["execution"]["jobs"] == 2
    md = (out / "report.md").read_text()
    assert (
        "figures/d0_sweep.png" in markdown_images(md) and (out / "figures/d0_sweep.png").is_file()
    )
    assert "Skipped at this scale" not in md
    assert "--scale full" in md and "--d0-sweep" not in md
    html = (out / "report.html").read_text()
    assert html.count('<img src="data:image/png;base64,') == len(markdown_images(md))


def test_the_pca_pixel_baseline_projects_on_the_leading_principal_directions():
    """The dimension-matched pixel bar: the top-k eigenvectors of the training pixels'
    covariance, checked against NumPy's SVD of the centred rows (up to each vector's sign)."""
    import numpy as np
    import torch

    from dimcollapse.reproduce.baselines import pca_projection

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20)) * np.linspace(3.0, 0.1, 20)
    mean, comps = pca_projection(torch.from_numpy(x).float(), 5)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(mean.numpy(), x.mean(axis=0), atol=1e-5)
    assert np.allclose(np.abs(comps.numpy().T @ vt[:5].T), np.eye(5), atol=1e-4)
