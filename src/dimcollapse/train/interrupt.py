"""Stopping on a signal at a step every process agrees on, and saving inside epochs on a clock."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import torch

from dimcollapse import distributed as dist
from dimcollapse.errors import Interrupted, Terminated


class StopSignals:
    """SIGTERM and SIGINT while training: remember the signal and let the step in progress
    finish; the loop then saves a checkpoint at that step and raises :meth:`stop`. A second
    Ctrl-C stops at once, saving nothing. Handlers are installed only in the main thread and
    restored on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def stop(self, saved: str) -> BaseException:
        """The exception that ends the command (exit 130 for Ctrl-C, else 143), saying what
        was saved."""
        return Interrupted(saved) if self.received == signal.SIGINT else Terminated(saved)


class CheckpointClock:
    """When to save inside an epoch (``--checkpoint-every`` steps or minutes) and whether a
    signal stops the run, agreed by every process under torchrun: they compare notes every
    :attr:`AGREE_EVERY` steps (one tiny all-reduce), so all stop and save at the same step."""

    AGREE_EVERY = 8

    def __init__(self, every: tuple[int, float], world: int, device: torch.device) -> None:
        self.steps, self.seconds = every  # TrainConfig.checkpoint_interval
        self.world, self.device = world, device
        self.since = time.monotonic()

    def decide(self, step: int, stop: bool) -> tuple[bool, bool]:
        """(stop now, save now) after global step ``step``."""
        by_steps = bool(self.steps) and step % self.steps == 0
        by_time = bool(self.seconds) and time.monotonic() - self.since >= self.seconds
        if self.world == 1:
            return stop, by_steps or by_time
        if step % self.AGREE_EVERY and not by_steps:
            return False, False
        # every process counts the steps alike; the time is rank 0's
        flags = torch.tensor([int(stop), int(by_time and dist.rank() == 0)], device=self.device)
        dist.all_reduce_sum(flags)
        return bool(flags[0]), by_steps or bool(flags[1])

    def agree_stop(self, stop: bool) -> bool:
        """Whether any process was signalled (at an epoch's end)."""
        if self.world == 1:
            return stop
        flag = torch.tensor([int(stop)], device=self.device)
        return bool(dist.all_reduce_sum(flag))

    def saved(self) -> None:
        self.since = time.monotonic()
