"""The run directory of a pretraining run: its layout, in one place, its reader and its writer.

``dimcollapse train --out DIR`` fills ``DIR``; ``probe``, ``embed``, ``spectrum`` and
``reproduce`` read it. Every module asks :class:`RunLayout` for a path instead of joining names::

    config.yaml             the resolved configuration and the run's facts (YAML)
    metrics.jsonl           one JSON line per epoch
    spectra.jsonl           one JSON line per epoch: representation and embedding singular values
    tensorboard/            the same scalars for TensorBoard
    checkpoints/last.pt     the latest checkpoint (epoch ends, --checkpoint-every, signals)
    checkpoints/final.pt    a copy of last.pt once the run has trained all its epochs
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dimcollapse.errors import UsageError
from dimcollapse.fileio import plain_data, write_text_atomic

#: Everything ``train`` writes into a run directory; a run without a checkpoint holds only
#: these, which is how it is recognised (and restarted in place).
RUN_FILES = ("config.yaml", "metrics.jsonl", "spectra.jsonl", "tensorboard", "checkpoints")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory."""

    #: The latest and the final checkpoint, as named inside a run directory (and in messages).
    LAST: ClassVar[str] = "checkpoints/last.pt"
    FINAL: ClassVar[str] = "checkpoints/final.pt"

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def spectra(self) -> Path:
        return self.root / "spectra.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.root / self.LAST

    @property
    def final(self) -> Path:
        return self.root / self.FINAL

    def latest_checkpoint(self) -> Path | None:
        """``final.pt`` if the run finished, else ``last.pt``, else None."""
        for path in (self.final, self.last):
            if path.is_file():
                return path
        return None

    def without_checkpoint(self) -> bool:
        """A run directory (config.yaml, only run files) whose run stopped before saving any
        checkpoint: killed in its first minutes, a NaN, a full disk."""
        if not self.config.is_file():
            return False
        if any(p.name not in RUN_FILES for p in self.root.iterdir()):
            return False
        return not (self.checkpoints.is_dir() and any(self.checkpoints.glob("*.pt")))

    def restart_hint(self, saved: str = "") -> str:
        """What to run after a signal stopped ``train`` into this directory, by what it holds
        now: a checkpoint (``saved``: where the stop saved one) is resumed; a run without one
        is started again in place by ``--resume``; with nothing saved, ``--resume`` would find
        nothing, so the same command is run again."""
        resume = f"dimcollapse train --out {self.root} --resume"
        if self.latest_checkpoint() is not None:
            return f"{saved or 'the run keeps its last checkpoint'}: resume with: {resume}"
        if self.without_checkpoint():
            return (
                "no checkpoint was saved yet: start the run again from its first step with: "
                f"{resume}"
            )
        return "nothing was saved yet: run the same command again (without --resume) to start"

    def clear(self) -> None:
        """Remove the run files (only those), to start the run again in place."""
        for name in RUN_FILES:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def recorded_config(self) -> dict[str, Any]:
        """The ``config`` mapping of config.yaml ({} when absent or unreadable)."""
        import yaml  # lean --help: yaml 30 ms

        if not self.config.is_file():
            return {}
        try:
            return (yaml.safe_load(self.config.read_text()) or {}).get("config", {}) or {}
        except yaml.YAMLError:
            return {}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a run file. A torn last line (a crash during its append) is dropped
    with a warning on stderr; an unreadable line before the last is a UsageError."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    rows = []
    for i, ln in enumerate(lines):
        try:
            rows.append(json.loads(ln))
        except ValueError:
            if i == len(lines) - 1:
                print(
                    f"warning: {path}: dropped a torn last line (an interrupted write)",
                    file=sys.stderr,
                )
                break
            raise UsageError(f"{path}: line {i + 1} is not JSON; the file is damaged") from None
    return rows


def _append_line(path: Path, obj: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(obj) + "\n")


class RunWriter:
    """Writes a run directory (rank 0 only): config.yaml, metrics and spectra lines, TensorBoard.

    ``resumed_epoch``: the epochs the resumed checkpoint holds; lines of later epochs (written
    before the interruption) are dropped, so every epoch has exactly one line.
    """

    def __init__(
        self,
        layout: RunLayout,
        resolved: dict[str, Any],
        facts: dict[str, Any],
        resumed_epoch: int | None,
    ) -> None:
        import yaml  # lean --help: yaml 30 ms

        self.layout = layout
        self.history: list[dict[str, Any]] = []
        layout.checkpoints.mkdir(parents=True, exist_ok=True)
        document = {"config": plain_data(resolved), "run": plain_data(facts)}
        write_text_atomic(layout.config, yaml.safe_dump(document, sort_keys=False))
        if resumed_epoch is not None:
            for path in (layout.metrics, layout.spectra):
                if path.exists():
                    keep = [r for r in read_jsonl(path) if r.get("epoch", 0) <= resumed_epoch]
                    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))
            self.history = read_jsonl(layout.metrics) if layout.metrics.exists() else []
        self.tensorboard = _open_tensorboard(layout.tensorboard)

    def record(self, line: dict[str, Any], spectra: dict[str, Any]) -> None:
        """Append one epoch's metrics (and spectra) to the files and TensorBoard."""
        self.history.append(line)
        _append_line(self.layout.metrics, line)
        if spectra:
            _append_line(self.layout.spectra, {"epoch": line["epoch"], **spectra})
        if self.tensorboard is not None:
            for key, value in line.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.tensorboard.add_scalar(key, value, line["epoch"])
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _open_tensorboard(folder: Path) -> Any:
    try:
        # optional: tensorboard; and torch-free --help: torch 1440 ms
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: metrics.jsonl still has everything
        return None
    return SummaryWriter(log_dir=str(folder))
