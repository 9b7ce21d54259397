"""The reproduction's settings, declared once (dimcollapse.manifest.settings): the scale table,
the Plan, the manifest's Settings and the training configurations all come from SETTINGS."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from dimcollapse.config import TrainConfig
from dimcollapse.manifest import Manifest, Settings
from dimcollapse.manifest.settings import (
    ASKED,
    BASELINES_KEY,
    SCALE_DEFAULTS,
    SCALES,
    SETTINGS,
    TRAIN_SETTINGS,
    Plan,
)
from dimcollapse.reproduce.plan import RunPlan, resolve_plan, train_config
from dimcollapse.reproduce.scales import ReproduceSettings

RECORDED = [s.name for s in SETTINGS if s.recorded]
RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def _plan(tmp_path: Path, **kw) -> Plan:
    return resolve_plan(ReproduceSettings(out=str(tmp_path), dataset="digits", **kw))


def test_the_plan_is_the_recorded_settings_in_the_table_order(tmp_path):
    assert [f.name for f in dataclasses.fields(Plan)] == RECORDED
    plan = _plan(tmp_path)
    assert list(plan.key()) == RECORDED
    # a worker process receives the plan pickled
    assert pickle.loads(pickle.dumps(plan)) == plan


def test_the_scale_table_holds_every_setting_with_scale_defaults():
    with_scales = {s.name for s in SETTINGS if s.scales is not None}
    for scale in SCALES:
        assert set(SCALE_DEFAULTS[scale]) == with_scales
    # the full scale's training settings are TrainConfig's own defaults
    training = TrainConfig()
    for name in ("dataset", "backbone", "epochs", "width", "batch_size", "stem"):
        assert SCALE_DEFAULTS["full"][name] == getattr(training, name)
    assert SCALE_DEFAULTS["quick"]["epochs"] == 2 and SCALE_DEFAULTS["cpu"]["seeds"] == 3


def test_reproduce_settings_asks_for_the_declared_settings_only():
    fields = {f.name: f for f in dataclasses.fields(ReproduceSettings)}
    assert set(ASKED) <= set(fields)
    # every field whose None means "the scale's value" is a declared setting
    by_scale = {n for n, f in fields.items() if f.default is None and n not in ("jobs", "command")}
    assert by_scale == set(ASKED) - {"seed"}


def test_a_run_copies_the_declared_training_settings(tmp_path):
    plan = _plan(tmp_path, scale="cpu")
    config = train_config(
        plan, RunPlan("simclr-mlp", "simclr-mlp", "table1"), tmp_path, "cpu", True
    )
    for name in TRAIN_SETTINGS:
        assert getattr(config, name) == getattr(plan, name), name
    assert config.stem == "half" and config.channels_last is True  # cpu's values, not defaults
    assert set(BASELINES_KEY) <= set(RECORDED) and "epochs" not in BASELINES_KEY


def test_settings_read_every_recorded_setting_of_a_plan(tmp_path):
    plan = _plan(tmp_path, seeds=2, seed=5)
    settings = Settings(plan.key())
    for name in RECORDED:
        assert getattr(settings, name) == getattr(plan, name), name
    assert settings.seeds == [5, 6]
    with pytest.raises(AttributeError):
        settings.d0_sweep  # asked, never recorded  # noqa: B018
    with pytest.raises(AttributeError):
        settings.no_such_setting  # noqa: B018


def test_an_older_file_reads_its_missing_settings_as_absent():
    first = {s.name: 1 for s in SETTINGS if s.first}
    first["seed"] = 7
    settings = Settings(first)
    assert settings.seeds == [7]  # written before the seeds list
    assert settings.feature_maps == {} and settings.d0_values == []
    assert settings.stem is None and settings.image_steps is None
    # a setting of the first version is required
    del first["rep_dim"]
    with pytest.raises(KeyError):
        Settings(first).rep_dim  # noqa: B018


def test_read_values_are_copies():
    settings = Settings({"seed": 0, "seeds": [0, 1], "feature_maps": {"input": 28}})
    settings.seeds.append(9)
    settings.feature_maps["x"] = 1
    assert settings.recorded["seeds"] == [0, 1] and settings.recorded["feature_maps"] == {
        "input": 28
    }


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*/reproduce.json")))
def test_committed_manifests_read_and_round_trip(path):
    manifest = Manifest.read(path)
    for name in RECORDED:
        getattr(manifest.settings, name)  # every declared setting reads
    assert json.dumps(manifest.to_dict(), indent=1) == json.dumps(
        json.loads(path.read_text()), indent=1
    )
