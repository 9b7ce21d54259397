"""Running a reproduction: its stages as tasks (run by :mod:`~dimcollapse.reproduce.workers`,
finished stages reused), then ``reproduce.json`` and the report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from dimcollapse.aggregate import aggregate_baselines, aggregate_seeds
from dimcollapse.distributed import env_ranks
from dimcollapse.errors import UsageError
from dimcollapse.fileio import plain_data, write_json_atomic
from dimcollapse.manifest import (
    COMPLETE,
    FORMAT,
    Execution,
    Manifest,
    Paper,
    ReproduceLayout,
    Settings,
    Timing,
)
from dimcollapse.manifest.settings import BASELINES_KEY
from dimcollapse.methods import EXTRA_GROUPS, PAPER_SUBVECTOR_TOP1, PAPER_TOP1, PLANNED_GROUPS
from dimcollapse.report import draw_figures, write_report
from dimcollapse.reproduce.images import images_key
from dimcollapse.reproduce.plan import (
    Plan,
    ReproduceSettings,
    RunPlan,
    plan_runs,
    resolve_plan,
    run_names,
    semantic_config,
    train_config,
)
from dimcollapse.reproduce.stages import StageTask, log
from dimcollapse.reproduce.workers import execute_tasks
from dimcollapse.runtime import environment, resolve_device, usable_cpus
from dimcollapse.toy.images import aggregate_images


def reproduce(settings: ReproduceSettings) -> dict[str, Any]:
    """Run the whole reproduction (see :mod:`dimcollapse.reproduce`); return ``reproduce.json``'s
    data (on rank 0; ``{}`` on the other ranks under ``torchrun``)."""
    t_start = time.perf_counter()
    rank, _, world = env_ranks() or (0, 0, 1)
    main = rank == 0
    out = Path(settings.out)
    plan = resolve_plan(settings)
    check_out_dir(out, plan)
    runs = plan_runs(plan, planned_groups(settings.extras))
    device = resolve_device(settings.device)
    cpus = usable_cpus()
    jobs = _parallel_jobs(settings.jobs, len(runs), device.type == "cpu", cpus, world)
    verbose = settings.verbose and main
    manifest = _new_manifest(settings, plan, str(device), jobs, world, main)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(ReproduceLayout(out).manifest, manifest.to_dict())
    log(
        verbose,
        f"{len(runs)} pretraining runs ({len(plan.seeds)} seed(s) each) of {plan.epochs} epochs "
        f"on {plan.dataset} "
        f"({plan.subset or 'all'} images, {plan.backbone} x{plan.width}, rep_dim {plan.rep_dim}), "
        f"probes, baselines, theory lab; {device}, {jobs} parallel job(s); output in {out}",
    )
    tasks = build_tasks(plan, runs, settings, out, device, rank, verbose)
    t_stages = time.perf_counter()
    results = execute_tasks(tasks, jobs, cpus, world, device, manifest.execution)
    if not main:
        return {}
    _add_results(manifest, plan, runs, results, stages_wall=time.perf_counter() - t_stages)
    _write_report(manifest, out, t_start)
    log(
        verbose,
        f"done in {manifest.timing.total_wall_s:.0f} s: {out / 'report.md'}, {out / 'report.html'}",
    )
    return manifest.to_dict()


def planned_groups(extras: bool) -> tuple[str, ...]:
    """The method groups to train: the paper's (Table 1, the ablations), and with ``extras``
    the methods beyond it (``"extra"``: VICReg, Barlow Twins). Which groups run is no setting
    of the results: each run's stage keeps its own key, and ``reproduce.json``'s runs say
    which were trained."""
    return (*PLANNED_GROUPS, *EXTRA_GROUPS) if extras else PLANNED_GROUPS


def check_out_dir(out: Path, plan: Plan) -> dict[str, Any] | None:
    """Refuse a directory that holds anything but a reproduction of the same settings."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, not a directory; choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return None
    manifest = ReproduceLayout(out).manifest
    if not manifest.is_file():
        raise UsageError(
            f"{out} holds another report (or other files: no reproduce.json); choose another --out"
        )
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"{out} holds another report (unreadable reproduce.json); choose another --out"
        ) from None
    if data.get("format") != FORMAT:
        raise UsageError(f"{out} holds another report (not a reproduce.json); choose another --out")
    theirs, ours = data.get("settings") or {}, plain_data(plan.key())
    if theirs != ours:
        diff = [k for k in ours if theirs.get(k) != ours[k]]
        what = ", ".join(f"{k} {theirs.get(k)!r} not {ours[k]!r}" for k in diff[:3])
        raise UsageError(f"{out} holds another report ({what}); choose another --out")
    return data


def _parallel_jobs(asked: int | None, n_runs: int, cpu: bool, cpus: int, world: int) -> int:
    """Worker processes: as asked, else on a CPU one per run up to one per core, else one;
    always one under ``torchrun`` (its ranks are the parallelism)."""
    if asked is not None:
        if asked < 1:
            raise UsageError(f"jobs must be at least 1, got {asked}")
        jobs = asked
    else:
        jobs = min(n_runs, cpus) if cpu and world == 1 else 1
    return 1 if world > 1 else jobs


def _new_manifest(
    settings: ReproduceSettings, plan: Plan, device: str, jobs: int, world: int, main: bool
) -> Manifest:
    """``reproduce.json`` before any stage has run (status ``running``)."""
    return Manifest(
        settings=Settings(plain_data(plan.key())),
        command=settings.command_line(),
        argv=sys.argv,
        execution=Execution(device=device, jobs=jobs, threads_per_job=None, world_size=world),
        environment=environment() if main else {},
    )


def build_tasks(
    plan: Plan,
    runs: list[RunPlan],
    settings: ReproduceSettings,
    out: Path,
    device: Any,
    rank: int,
    verbose: bool,
) -> list[StageTask]:
    """Every stage as a picklable task: one per pretraining run, then (rank 0) toys, baselines."""
    tasks = [_pretraining_task(plan, run, settings, out, device, rank, verbose) for run in runs]
    if rank == 0:
        tasks.append(_toys_task(plan, out, verbose))
        if plan.image_steps:
            tasks += [_images_task(plan, seed, out, verbose) for seed in plan.seeds]
        tasks += [_baselines_task(plan, seed, out, device, verbose) for seed in plan.seeds]
    return tasks


def _images_task(plan: Plan, seed: int, out: Path, verbose: bool) -> StageTask:
    return StageTask(
        kind="images",
        task_id=f"images:{seed}",
        directory=str(ReproduceLayout(out).images(seed)),
        key=images_key(plan, seed),
        seed=seed,
        plan=plan,
        verbose=verbose,
    )


def _toys_task(plan: Plan, out: Path, verbose: bool) -> StageTask:
    return StageTask(
        kind="toys",
        task_id="toys",
        directory=str(ReproduceLayout(out).toys),
        key={"steps": plan.toy_steps, "seed": plan.seed},
        seed=plan.seed,
        plan=plan,
        verbose=verbose,
    )


def _baselines_task(plan: Plan, seed: int, out: Path, device: Any, verbose: bool) -> StageTask:
    key = {k: getattr(plan, k) for k in BASELINES_KEY}
    key["seed"] = seed
    return StageTask(
        kind="baselines",
        task_id=f"baselines:{seed}",
        directory=str(ReproduceLayout(out).baselines(seed)),
        key=key,
        seed=seed,
        plan=plan,
        verbose=verbose,
        device=str(device),
    )


def _pretraining_task(
    plan: Plan,
    run: RunPlan,
    settings: ReproduceSettings,
    out: Path,
    device: Any,
    rank: int,
    verbose: bool,
) -> StageTask:
    # the device as asked ("auto", "cuda"): under torchrun each rank picks its own GPU
    config = train_config(plan, run, run.directory(out), settings.device, device.type == "cpu")
    probe = {
        "epochs": plan.probe_epochs,
        "test_subset": plan.test_subset,
        "seed": run.seed,
        "protocol": {
            k: getattr(plan, k)
            for k in ("labelled_per_class", "val_per_class", "all_labels_row", "seed")
        },
    }
    return StageTask(
        kind="run",
        task_id=run.task_id,
        directory=str(run.directory(out)),
        key={"train": semantic_config(config.to_dict()), "probe": probe},
        seed=run.seed,
        plan=plan,
        verbose=verbose,
        run=run,
        config=config,
        device=str(device),
        rank=rank,
    )


def _add_results(
    manifest: Manifest,
    plan: Plan,
    runs: list[RunPlan],
    results: dict[str, dict[str, Any]],
    stages_wall: float,
) -> None:
    """Per-seed stage results -> the manifest's runs and baselines (means and intervals), the
    theory lab, the paper's numbers and the stages' timing."""
    run_results = {
        name: aggregate_seeds([results[r.task_id] for r in runs if r.name == name])
        for name in run_names(runs)
    }
    baselines = aggregate_baselines([results[f"baselines:{s}"] for s in plan.seeds])
    manifest.runs = run_results
    manifest.baselines = {k: v for k, v in baselines.items() if isinstance(v, dict)}
    manifest.toys = results["toys"]

    manifest.images = aggregate_images(
        [results[f"images:{s}"] for s in plan.seeds if f"images:{s}" in results], plan.image_steps
    )
    manifest.paper = Paper(top1=PAPER_TOP1, subvector_top1=PAPER_SUBVECTOR_TOP1)
    manifest.timing = Timing(
        pretraining_s=sum(r["seconds"]["train"] for r in run_results.values()),
        probes_s=sum(r["seconds"]["probe"] for r in run_results.values()),
        baselines_s=baselines.get("seconds"),
        toys_s=results["toys"].get("seconds"),
        stages_wall_s=stages_wall,
        reused=sorted(k for k, v in results.items() if v.get("reused")),
    )
    manifest.status = COMPLETE


def _write_report(manifest: Manifest, out: Path, t_start: float) -> None:
    """Write the report and the final ``reproduce.json`` (with the claims and total time)."""
    t_report = time.perf_counter()
    timing = manifest.timing
    # the figures are the report's cost; its text, written once, states the final times
    draw_figures(manifest, out)
    timing.report_s = time.perf_counter() - t_report
    timing.total_wall_s = time.perf_counter() - t_start
    manifest.claims = write_report(manifest, out, figures=False)
    write_json_atomic(ReproduceLayout(out).manifest, manifest.to_dict())
