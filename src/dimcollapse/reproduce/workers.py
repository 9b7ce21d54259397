"""Running a reproduction's stage tasks: the finished ones reused, the rest here or in a pool of
spawned worker processes (one thread count each), whose signals are left to this process."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any

from dimcollapse import distributed
from dimcollapse.manifest import Execution
from dimcollapse.reproduce.baselines import stage_baselines
from dimcollapse.reproduce.images import stage_images
from dimcollapse.reproduce.run_stage import stage_run
from dimcollapse.reproduce.stages import StageTask, finished_result
from dimcollapse.reproduce.toys import stage_toys
from dimcollapse.runtime import torch_threads


def run_stage(task: StageTask) -> dict[str, Any]:
    """Run one stage, here or in a worker process, with its number of torch threads."""
    workers = {
        "run": stage_run,
        "baselines": stage_baselines,
        "toys": stage_toys,
        "images": stage_images,
    }
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

    distributed.setup_from_env("cuda" if device_type == "cuda" else "cpu")
    with distributed.left_on_exit():
        yield


def _run_parallel(tasks: list[StageTask], jobs: int, results: dict[str, Any]) -> None:
    """Run ``tasks`` in ``jobs`` spawned worker processes; the first failure cancels the rest.

    Signals are this process's to handle: the workers ignore SIGINT and SIGTERM outside
    training (inside it, ``train`` saves a checkpoint at the step it reached), so a Ctrl-C or a
    scheduler's SIGTERM to the whole process group reaches the workers and this process alike
    and this one decides: it kills the workers it started (whatever they wrote is atomic, and
    a rerun resumes or reuses it) and the command stops with one line (exit 130 or 143).
    """
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
