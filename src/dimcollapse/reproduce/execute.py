"""Running a reproduction: its stages as tasks, run in this process or in a pool of worker
processes (finished stages reused), then ``reproduce.json`` and the report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dimcollapse.errors import UsageError
from dimcollapse.fileio import plain_data, write_json_atomic
from dimcollapse.methods import PAPER_SUBVECTOR_TOP1, PAPER_TOP1
from dimcollapse.reproduce.baselines import stage_baselines
from dimcollapse.reproduce.manifest import (
    COMPLETE,
    FORMAT,
    Execution,
    Manifest,
    Paper,
    ReproduceLayout,
    Settings,
    Timing,
)
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
from dimcollapse.reproduce.run_stage import stage_run
from dimcollapse.reproduce.stages import StageTask, finished_result, log
from dimcollapse.reproduce.toys import stage_toys

#: The settings a seed's baselines depend on (its key, with that seed).
_BASELINES_KEY_FIELDS = (
    "dataset",
    "data_root",
    "subset",
    "test_subset",
    "probe_epochs",
    "seed",
    "backbone",
    "width",
    "small_stem",
    "stem",
    "labelled_per_class",
    "val_per_class",
    "all_labels_row",
)


def reproduce(settings: ReproduceSettings) -> dict[str, Any]:
    """Run the whole reproduction (see :mod:`dimcollapse.reproduce`); return ``reproduce.json``'s
    data (on rank 0; ``{}`` on the other ranks under ``torchrun``)."""
    from dimcollapse.distributed import env_ranks
    from dimcollapse.runtime import resolve_device, usable_cpus

    t_start = time.perf_counter()
    rank, _, world = env_ranks() or (0, 0, 1)
    main = rank == 0
    out = Path(settings.out)
    plan = resolve_plan(settings)
    check_out_dir(out, plan)
    runs = plan_runs(plan)
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
    from dimcollapse.runtime import environment

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
        tasks += [_baselines_task(plan, seed, out, device, verbose) for seed in plan.seeds]
    return tasks


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
    key = {k: plan.key()[k] for k in _BASELINES_KEY_FIELDS}
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


def run_stage(task: StageTask) -> dict[str, Any]:
    """Run one stage, here or in a worker process, with its number of torch threads."""
    from dimcollapse.runtime import torch_threads

    workers = {"run": stage_run, "baselines": stage_baselines, "toys": stage_toys}
    with torch_threads(task.threads):
        return workers[task.kind](task)


def execute_tasks(
    tasks: list[StageTask],
    jobs: int,
    cpus: int,
    world: int,
    device: Any,
    execution: Execution,
) -> dict[str, dict[str, Any]]:
    """Run the unfinished tasks (reusing finished stages) in ``jobs`` processes or in this one;
    records the jobs and threads used in ``execution``; returns results by task id."""
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for task in tasks:  # finished stages are read here, without starting a worker
        done = finished_result(task)
        if done is not None:
            results[task.task_id] = {**done, "reused": True}
        else:
            pending.append(task)
    jobs = min(jobs, max(1, len(pending)))
    threads = max(1, cpus // jobs) if jobs > 1 else None
    execution.jobs, execution.threads_per_job = jobs, threads
    pending = [dataclasses.replace(t, threads=threads, train_verbose=jobs == 1) for t in pending]
    if jobs == 1:
        with _one_process_group(world, device.type):
            for task in pending:
                results[task.task_id] = run_stage(task)
    else:
        _run_parallel(pending, jobs, results)
    return results


@contextlib.contextmanager
def _one_process_group(world: int, device_type: str) -> Iterator[None]:
    """Under ``torchrun``: one process group for all the runs, not one per run.

    Joining the group again for each run is unreliable when the ranks arrive at different times
    (rank 0 probes between runs while the others go on): the rendezvous store still holds the
    previous group's addresses and gloo/NCCL connect to stale ports. So the group is created
    once here; :func:`dimcollapse.train.train` uses a group it finds and leaves it alone, and the
    runs meet in ``train``'s own barriers. In a single process this does nothing.
    """
    if world <= 1:
        yield
        return
    from dimcollapse import distributed

    distributed.setup_from_env("cuda" if device_type == "cuda" else "cpu")
    try:
        yield
    finally:
        distributed.cleanup()


def _run_parallel(tasks: list[StageTask], jobs: int, results: dict[str, Any]) -> None:
    """Run ``tasks`` in ``jobs`` spawned worker processes; the first failure cancels the rest.

    Signals are this process's to handle: the workers ignore SIGINT and SIGTERM outside
    training (inside it, ``train`` saves a checkpoint at the step it reached), so a Ctrl-C or a
    scheduler's SIGTERM to the whole process group reaches the workers and this process alike
    and this one decides: it kills the workers it started (whatever they wrote is atomic, and
    a rerun resumes or reuses it) and the command stops with one line (exit 130 or 143).
    """
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    already = set(mp.active_children())
    pool = ProcessPoolExecutor(
        jobs, mp_context=mp.get_context("spawn"), initializer=_leave_signals_to_the_parent
    )
    try:
        with _signals_held_while_spawning():
            futures = {pool.submit(run_stage, t): t.task_id for t in tasks}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in done:
            if fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
        for fut, task_id in futures.items():
            results[task_id] = fut.result()
    except BaseException:
        _stop_workers([p for p in mp.active_children() if p not in already])
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _signals_held_while_spawning() -> Iterator[None]:
    """While the workers are spawned (milliseconds): SIGINT and SIGTERM blocked here, so one
    that arrives is held, not lost, and ignored in the new processes from their first
    instruction (an ignored signal stays ignored across exec), so a Ctrl-C while a worker is
    still importing prints no traceback of its own. The handlers come back, then a held
    signal is delivered."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in held}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _leave_signals_to_the_parent() -> None:
    """A worker's initializer: SIGINT and SIGTERM are ignored (the parent stops the workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stop_workers(workers: list[Any]) -> None:
    """Kill the worker processes this reproduction started and wait for them; nothing they
    wrote is torn (every output is written atomically), so a rerun resumes or reuses it."""
    for proc in workers:
        with contextlib.suppress(OSError, ValueError):
            proc.kill()
    for proc in workers:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            proc.join(timeout=10)


def _add_results(
    manifest: Manifest,
    plan: Plan,
    runs: list[RunPlan],
    results: dict[str, dict[str, Any]],
    stages_wall: float,
) -> None:
    """Per-seed stage results -> the manifest's runs and baselines (means and intervals), the
    theory lab, the paper's numbers and the stages' timing."""
    from dimcollapse.aggregate import aggregate_baselines, aggregate_seeds

    run_results = {
        name: aggregate_seeds([results[r.task_id] for r in runs if r.name == name])
        for name in run_names(runs)
    }
    baselines = aggregate_baselines([results[f"baselines:{s}"] for s in plan.seeds])
    manifest.runs = run_results
    manifest.baselines = {k: v for k, v in baselines.items() if isinstance(v, dict)}
    manifest.toys = results["toys"]
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
    from dimcollapse.report import draw_figures, write_report

    t_report = time.perf_counter()
    timing = manifest.timing
    # the figures are the report's cost; its text, written once, states the final times
    draw_figures(manifest, out)
    timing.report_s = time.perf_counter() - t_report
    timing.total_wall_s = time.perf_counter() - t_start
    manifest.claims = write_report(manifest, out, figures=False)
    write_json_atomic(ReproduceLayout(out).manifest, manifest.to_dict())
