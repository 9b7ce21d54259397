"""``reproduce.json`` as types, and the layout of a reproduction's output directory.

:class:`Manifest` is the one home of the file's fields: :mod:`dimcollapse.reproduce.execute`
builds and writes it, :mod:`dimcollapse.report` reads its fields (never string keys).
:meth:`Manifest.from_dict` reads every version this code knows, older files included (they
lack the newer settings: ``stem``, ``feature_maps``, ``probe_labels``, ``val_size``,
``all_labels_row``, ``channels_last``, all optional here), and refuses another format or a
newer version with one :class:`~dimcollapse.errors.UsageError`. :meth:`Manifest.to_dict` gives back the same JSON, key
for key and in the same order, so a file read and written again is byte-identical.

What stays plain data: the settings are :meth:`~dimcollapse.manifest.settings.Plan.key` as
recorded (:class:`~dimcollapse.manifest.settings.Settings` reads each declared setting by name
and keeps the record as it is, so that comparing a directory's settings with a plan and
writing them back stay exact); a run's or a
baseline's result is :mod:`dimcollapse.aggregate`'s dict, the theory lab's is
:func:`dimcollapse.reproduce.toys.run_toys`'s, the machine's is
:func:`dimcollapse.runtime.environment`'s and a claim is :func:`dimcollapse.report.check_claims`'s.

:class:`ReproduceLayout` owns the paths under ``OUT``::

    reproduce.json
    runs/<name>/seed-<s>/     one pretraining run (the ``dimcollapse train`` layout)
    baselines/seed-<s>/       raw-pixel and random-backbone probes of one seed
    toys/                     the theory lab's figures and summaries
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dimcollapse.errors import UsageError
from dimcollapse.manifest.settings import Settings

FORMAT = "dimcollapse-reproduce"
FORMAT_VERSION = 1
MANIFEST_FILE = "reproduce.json"

#: The statuses a manifest is written with: before the stages run, and at the end.
RUNNING, COMPLETE = "running", "complete"


@dataclass(frozen=True)
class ReproduceLayout:
    """Where a reproduction writes, under its output directory ``out``."""

    out: Path

    RUNS = "runs"
    BASELINES = "baselines"
    TOYS = "toys"
    IMAGES = "images"

    @property
    def manifest(self) -> Path:
        return Path(self.out) / MANIFEST_FILE

    def run(self, name: str, seed: int) -> Path:
        """One pretraining run of one seed: ``runs/<name>/seed-<seed>``."""
        return Path(self.out) / self.RUNS / name / _seed_dir(seed)

    def baselines(self, seed: int) -> Path:
        """The baselines of one seed: ``baselines/seed-<seed>``."""
        return Path(self.out) / self.BASELINES / _seed_dir(seed)

    def images(self, seed: int) -> Path:
        """The linear encoders on real images of one seed: ``images/seed-<seed>``."""
        return Path(self.out) / self.IMAGES / _seed_dir(seed)

    @property
    def toys(self) -> Path:
        return Path(self.out) / self.TOYS

    @classmethod
    def toy_file(cls, name: str) -> str:
        """A theory-lab file as the report links it, relative to ``out``: ``toys/<name>``."""
        return f"{cls.TOYS}/{name}"


def _seed_dir(seed: int) -> str:
    return f"seed-{seed}"


@dataclass
class Execution:
    """How the stages ran: the device, worker processes, threads each, ``torchrun`` ranks."""

    device: str | None = None
    jobs: int | None = None
    threads_per_job: int | None = None
    world_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timing:
    """Seconds spent: sums over runs, the stages' wall time, the report, the whole command;
    ``reused``: the task ids of the stages reused from an earlier invocation."""

    pretraining_s: float | None = None
    probes_s: float | None = None
    baselines_s: float | None = None
    toys_s: float | None = None
    stages_wall_s: float | None = None
    reused: list[str] = field(default_factory=list)
    report_s: float | None = None
    total_wall_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Paper:
    """The paper's numbers: linear top-1 by method, DirectCLR's sub-vector top-1."""

    top1: dict[str, float] = field(default_factory=dict)
    subvector_top1: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """``reproduce.json``. Written with status ``running`` before the stages (the first
    eight fields), then ``complete`` with the results block (``runs`` to ``timing``) and the
    ``claims``. ``extra`` keeps fields this version does not know, so they are written back."""

    format: str = FORMAT
    version: int = FORMAT_VERSION
    status: str = RUNNING
    settings: Settings = field(default_factory=Settings)
    command: str | None = None
    argv: list[str] | None = None
    execution: Execution = field(default_factory=Execution)
    environment: dict[str, Any] = field(default_factory=dict)
    # the results block, written once the stages have run
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    toys: dict[str, Any] = field(default_factory=dict)
    #: sections 4-5 on real images (:mod:`dimcollapse.reproduce.images`); {} when not run
    images: dict[str, Any] = field(default_factory=dict)
    paper: Paper = field(default_factory=Paper)
    timing: Timing = field(default_factory=Timing)
    claims: list[dict[str, Any]] | None = None
    #: thresholds of the collapsed tail, when recorded at the top level
    collapse_thresholds: list[float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_results(self) -> bool:
        return self.status != RUNNING

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Read a manifest (as :func:`json.load` gives it). A mapping built by hand may leave
        out anything; another format or a newer version is refused."""
        if not isinstance(data, Mapping):
            raise UsageError("reproduce.json must hold a JSON object")
        fmt, version = data.get("format", FORMAT), data.get("version", FORMAT_VERSION)
        if fmt != FORMAT:
            raise UsageError(f"not a reproduce.json: format {fmt!r}, expected {FORMAT!r}")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise UsageError(f"reproduce.json has no valid format version: {version!r}")
        if version > FORMAT_VERSION:
            raise UsageError(
                f"reproduce.json is format version {version}, newer than this dimcollapse "
                f"reads (up to {FORMAT_VERSION}); upgrade dimcollapse to read it"
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            format=fmt,
            version=version,
            status=data.get("status", COMPLETE if "runs" in data else RUNNING),
            settings=Settings(data.get("settings") or {}),
            command=data.get("command"),
            argv=data.get("argv"),
            execution=_record(Execution, data.get("execution")),
            environment=data.get("environment") or {},
            runs=data.get("runs") or {},
            baselines=data.get("baselines") or {},
            toys=data.get("toys") or {},
            images=data.get("images") or {},
            paper=_record(Paper, data.get("paper")),
            timing=_record(Timing, data.get("timing")),
            claims=data.get("claims"),
            collapse_thresholds=data.get("collapse_thresholds"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def of(cls, manifest: Manifest | Mapping[str, Any]) -> Manifest:
        """``manifest`` itself, or read from a mapping."""
        return manifest if isinstance(manifest, Manifest) else cls.from_dict(manifest)

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        """Read ``reproduce.json`` (the file, or the directory that holds it)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_FILE
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError:
            raise UsageError(f"{path} is not valid JSON") from None
        if not isinstance(data, Mapping) or "format" not in data:
            raise UsageError(f"{path} is not a reproduce.json (no format)")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, in the order it has always been written."""
        out: dict[str, Any] = {
            "format": self.format,
            "version": self.version,
            "status": self.status,
            "settings": dict(self.settings.recorded),
            "command": self.command,
            "argv": self.argv,
            "execution": _plain(self.execution),
            "environment": self.environment,
        }
        if self.has_results:
            out["runs"] = self.runs
            out["baselines"] = self.baselines
            out["toys"] = self.toys
            if self.images:
                out["images"] = self.images
            out["paper"] = _plain(self.paper)
            out["timing"] = _plain(self.timing)
        if self.claims is not None:
            out["claims"] = self.claims
        if self.collapse_thresholds is not None:
            out["collapse_thresholds"] = self.collapse_thresholds
        out.update(self.extra)
        return out


def _record(cls: Any, data: Mapping[str, Any] | None) -> Any:
    """A record dataclass from a mapping: its known fields, the rest kept in ``extra``."""
    data = data or {}
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return cls(
        **{k: v for k, v in data.items() if k in names},
        extra={k: v for k, v in data.items() if k not in names},
    )


def _plain(record: Any) -> dict[str, Any]:
    """A record dataclass as the JSON object: its fields in order, then ``extra``."""
    out = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "extra"}
    out.update(record.extra)
    return out
