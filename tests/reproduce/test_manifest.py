"""reproduce.json as types (:mod:`dimcollapse.manifest`): old files load, a file read
and written again is byte-identical, a newer version is refused, and the output layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dimcollapse.errors import UsageError
from dimcollapse.manifest import (
    FORMAT,
    FORMAT_VERSION,
    Execution,
    Manifest,
    ReproduceLayout,
    Settings,
)
from dimcollapse.reproduce.plan import RunPlan

RESULTS = Path(__file__).parents[2] / "docs" / "results"
# the first committed cpu-scale run (issue 9's settings): the oldest format, no newer fields
COMMITTED = Path(__file__).parents[1] / "fixtures" / "reproduce-v1-cpu-2026-11.json"


def _dumps(data: dict) -> str:
    """As :func:`dimcollapse.fileio.write_json_atomic` writes it."""
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


@pytest.mark.parametrize(
    "path", [*sorted(RESULTS.glob("*/reproduce.json")), COMMITTED], ids=lambda p: p.parent.name
)
def test_the_committed_files_round_trip_byte_for_byte(path):
    text = path.read_text()
    manifest = Manifest.read(path)
    # the cpu run's copy lost its final newline when it was committed; the rest is identical
    assert _dumps(manifest.to_dict()) == text.rstrip("\n") + "\n"
    if path.name == "reproduce.json":  # a reproduction's directory reads the same
        assert Manifest.read(path.parent).to_dict() == json.loads(text)


def test_the_newer_fields_read_when_recorded():
    settings = Manifest.read(RESULTS / "fashion-mnist-quick").settings
    assert settings.stem == "half" and settings.probe_labels and settings.val_size
    assert settings.all_labels_row is not None and settings.feature_maps["input"] == 28


def test_an_old_file_reads_its_fields_and_lacks_the_newer_ones():
    manifest = Manifest.read(COMMITTED)
    assert manifest.format == FORMAT and manifest.version == 1 and manifest.status == "complete"
    settings = manifest.settings
    assert (settings.scale, settings.dataset, settings.rep_dim) == ("cpu", "fashion-mnist", 128)
    assert settings.seeds == [0, 1, 2] and settings.default_d0 == 22
    # fields newer than this file: absent, so None (or empty)
    assert settings.stem is None and settings.probe_labels is None and settings.val_size is None
    assert settings.all_labels_row is None and settings.feature_maps == {}
    assert manifest.execution.jobs is not None and manifest.timing.total_wall_s > 0
    assert manifest.paper.top1["simclr-mlp"] == pytest.approx(66.5)
    assert set(manifest.runs) >= {"simclr-mlp", "directclr"}
    assert "all_labels" not in manifest.runs["simclr-mlp"]["probe"]
    assert manifest.claims and manifest.extra == {}


def test_a_running_manifest_is_written_without_results():
    manifest = Manifest(
        settings=Settings({"scale": "quick", "dataset": "digits"}),
        command="dimcollapse reproduce",
        argv=["dimcollapse", "reproduce"],
        execution=Execution(device="cpu", jobs=2, world_size=1),
    )
    data = manifest.to_dict()
    assert list(data) == [
        "format", "version", "status", "settings", "command", "argv", "execution", "environment"
    ]  # fmt: skip
    assert data["status"] == "running" and data["version"] == FORMAT_VERSION
    assert data["execution"] == {"device": "cpu", "jobs": 2, "threads_per_job": None,
                                 "world_size": 1}  # fmt: skip
    assert Manifest.from_dict(json.loads(_dumps(data))).to_dict() == data


def test_unknown_fields_are_kept_and_written_back():
    data = json.loads(COMMITTED.read_text())
    data["settings"]["a_newer_setting"] = 3
    data["timing"]["a_newer_time_s"] = 1.5
    data["something_else"] = {"x": 1}
    assert _dumps(Manifest.from_dict(data).to_dict()) == _dumps(data)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": FORMAT_VERSION + 1}, "newer than this dimcollapse reads"),
        ({"version": "1"}, "no valid format version"),
        ({"format": "dimcollapse-checkpoint"}, "not a reproduce.json"),
    ],
)
def test_another_format_or_a_newer_version_is_one_usage_error(tmp_path, change, message):
    data = {**json.loads(COMMITTED.read_text()), **change}
    with pytest.raises(UsageError, match=message) as info:
        Manifest.from_dict(data)
    assert "\n" not in str(info.value)
    path = tmp_path / "reproduce.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=message):
        Manifest.read(path)


def test_reading_a_file_that_is_not_a_manifest(tmp_path):
    path = tmp_path / "reproduce.json"
    with pytest.raises(UsageError, match="cannot read"):
        Manifest.read(path)
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        Manifest.read(path)
    path.write_text('{"status": "complete"}')
    with pytest.raises(UsageError, match="not a reproduce.json"):
        Manifest.read(path)


def test_the_layout_owns_every_path_under_out(tmp_path):
    layout = ReproduceLayout(tmp_path)
    assert layout.manifest == tmp_path / "reproduce.json"
    assert layout.run("simclr-mlp", 2) == tmp_path / "runs" / "simclr-mlp" / "seed-2"
    assert layout.baselines(0) == tmp_path / "baselines" / "seed-0"
    assert layout.toys == tmp_path / "toys"
    assert ReproduceLayout.toy_file("depth.png") == "toys/depth.png"
    # the plan's runs live where the layout says
    run = RunPlan(name="directclr-d0-8", method="directclr", group="d0-sweep", d0=8, seed=1)
    assert run.directory(tmp_path) == layout.run("directclr-d0-8", 1)
