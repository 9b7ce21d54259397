"""Training settings (:mod:`dimcollapse.config`): every option in ``train --help``, YAML files and
their layering under typed options and a resumed run's saved settings, values of the wrong
type, the shipped configs, and ``--checkpoint-every``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import assert_usage_error
from tiny_runs import TINY_TRAIN, train_options

from dimcollapse.config import TrainConfig
from dimcollapse.methods import METHODS


def test_help_lists_every_option_with_default(cli):
    code, out, _ = cli("train", "--help")
    assert code == 0
    for f in dataclasses.fields(TrainConfig):
        if f.name not in ("augment", "method_options"):  # mappings: YAML only
            assert "--" + f.name.replace("_", "-") in out, f.name
    assert "--aug-crop-scale" in out and "(default: 0.1)" in out


def test_yaml_config_and_overrides(cli, tmp_path):
    from dimcollapse.cli import build_parser
    from dimcollapse.config import config_from_args

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "method: simclr-mlp\nepochs: 7\ntemperature: 0.2\naugment:\n  flip_prob: 0.0\n"
    )
    parser = build_parser()
    args = parser.parse_args(
        ["train", "--config", str(cfg_file), "--epochs", "3", "--aug-grayscale-prob", "0.5"]
    )
    cfg = config_from_args(args)
    assert (cfg.method, cfg.epochs, cfg.temperature) == ("simclr-mlp", 3, 0.2)
    assert cfg.augment == {"flip_prob": 0.0, "grayscale_prob": 0.5}
    bad = tmp_path / "bad.yaml"
    bad.write_text("methd: directclr\n")
    assert_usage_error(cli("train", "--config", bad, "--out", tmp_path / "x"), "methd")


def test_method_options_typed_over_the_file_one_name_at_a_time(cli, tmp_path):
    """``--method-option NAME=VALUE`` reads VALUE as the YAML file would and replaces only that
    name of the file's ``method_options``; a malformed or unknown option is one error line."""
    from dimcollapse.cli import build_parser
    from dimcollapse.config import config_from_args

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("method: vicreg\nmethod_options: {sim_coeff: 10, cov_coeff: 2}\n")
    args = build_parser().parse_args(
        ["train", "--config", str(cfg_file), "--method-option", "sim_coeff=5e-1"]
        + ["--method-option", "std_target=2"]
    )
    cfg = config_from_args(args)
    assert cfg.method_options == {"sim_coeff": 0.5, "cov_coeff": 2, "std_target": 2}
    out = tmp_path / "x"
    assert_usage_error(cli("train", "--method-option", "lambd", "--out", out), "NAME=VALUE")
    assert_usage_error(
        cli("train", "--method", "vicreg", "--method-option", "lambd=1", "--out", out),
        "takes no option lambd",
    )
    assert not out.exists()


def test_a_typed_field_beats_its_loss_option_in_the_file_and_both_typed_are_refused(cli, tmp_path):
    """``--temperature`` carries InfoNCE's ``temperature`` option: typed, it beats that name in
    the file's ``method_options`` (every typed option beats the file); typed both ways, the
    command refuses instead of ignoring one."""
    from dimcollapse.cli import build_parser
    from dimcollapse.config import config_from_args
    from dimcollapse.losses import build_recipe

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("method: directclr\nmethod_options: {temperature: 0.5}\n")
    args = build_parser().parse_args(["train", "--config", str(cfg_file), "--temperature", "0.2"])
    cfg = config_from_args(args)
    assert build_recipe(cfg).options["temperature"] == 0.2
    plain = build_parser().parse_args(["train", "--config", str(cfg_file)])
    assert build_recipe(config_from_args(plain)).options["temperature"] == 0.5
    out = tmp_path / "x"
    both = ("--temperature", "0.2", "--method-option", "temperature=0.3", "--out", out)
    assert_usage_error(cli("train", *both), "temperature given twice")
    assert not out.exists()


def test_a_number_with_an_exponent_and_no_dot_is_a_number(tmp_path):
    """``5e-3`` is a float in YAML 1.2 but a string to PyYAML (YAML 1.1): the settings read it
    as the number it is, in a file and after --method-option alike."""
    from dimcollapse.config import load_yaml, yaml_scalar

    path = tmp_path / "c.yaml"
    path.write_text("base_lr: 5e-3\nmethod: barlow-twins\nmethod_options: {lambd: 1E-2}\n")
    cfg = TrainConfig.from_dict(load_yaml(path))
    cfg.validate()
    assert (cfg.base_lr, cfg.method_options) == (0.005, {"lambd": 0.01})
    assert [yaml_scalar(t) for t in ("25", "-2.5e+2", ".5e1", "5e", "ntxent")] == [
        25,
        -250.0,
        5.0,
        "5e",
        "ntxent",
    ]


def test_help_names_every_method_and_its_loss_options(cli):
    from dimcollapse.methods import RECIPES

    code, out, _ = cli("train", "--help")
    text = " ".join(out.split())  # argparse's wrapping undone
    assert code == 0
    for name, recipe in RECIPES.items():
        assert name in text.split("Settings:")[0], name  # the description, not only --method
        for option in recipe.options:
            assert f"{option.name} (" in text, (name, option.name)


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/*.yaml")))
def test_shipped_configs_are_valid(path):
    from dimcollapse.config import load_yaml

    cfg = TrainConfig.from_dict(load_yaml(path))
    cfg.validate()
    assert cfg.method in METHODS and cfg.temperature == 0.1


@pytest.mark.parametrize(
    "yaml_text, key, expected",
    [
        ('epochs: "lots"\n', "epochs", "an integer"),
        ("batch_size: [1, 2]\n", "batch_size", "an integer"),
        ('width: "wide"\n', "width", "a number"),
        ("compile: 3\n", "compile", "true or false"),
        ("epochs: true\n", "epochs", "an integer"),
    ],
)
def test_yaml_values_of_the_wrong_type_are_one_line_errors(tmp_path, cli, yaml_text, key, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "run"
    result = cli("train", "--config", config, "--dataset", "digits", "--out", out)
    assert_usage_error(result, f"setting {key}", expected)
    assert not out.exists()


def test_yaml_accepts_an_integer_for_a_float_setting():
    cfg = TrainConfig.from_dict({"base_lr": 1, "width": 1, "d0": None})
    assert cfg.base_lr == 1 and cfg.width == 1


def test_resume_with_a_config_file_keeps_the_runs_settings_it_does_not_name(cli, tmp_path):
    """--config on a resume overrides only what it names (here the allowed epochs); every
    other setting stays the run's, not the default (width 0.125, not 1.0)."""
    out = tmp_path / "run"
    tiny = train_options(**{**TINY_TRAIN, "epochs": 1, "monitor_samples": 64, "subset": 128})
    assert cli("train", *tiny, "--out", out, "--quiet")[0] == 0
    config = tmp_path / "more.yaml"
    config.write_text("epochs: 2\n")
    code, _, err = cli("train", "--out", out, "--resume", "--config", config, "--quiet")
    assert code == 0, err
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_resume_settings_are_layered_in_one_pass_each_file_read_once(tmp_path, monkeypatch):
    """The run's saved settings, then --config, then the typed options (the augmentation
    too, key by key); config.yaml and the YAML file are read once each, and checkpoint_every
    is parsed once however often the configuration is checked."""
    import yaml

    from dimcollapse import config as config_module
    from dimcollapse.cli import build_parser

    out = tmp_path / "run"
    out.mkdir()
    run = TrainConfig(**{**TINY_TRAIN, "out": str(out), "method": "simclr-mlp", "temperature": 0.2})
    recipe = {"flip_prob": 0.5, "grayscale_prob": 0.2, "crop_scale": [0.2, 1.0]}
    saved = {**run.to_dict(), "augment": recipe}
    (out / "config.yaml").write_text(yaml.safe_dump({"config": saved, "run": {}}))
    given = tmp_path / "c.yaml"
    given.write_text("temperature: 0.3\naugment:\n  grayscale_prob: 0.0\n")
    reads, parses = [], []
    load_yaml, parse = config_module.load_yaml, config_module.parse_checkpoint_every
    monkeypatch.setattr(config_module, "load_yaml", lambda p: reads.append(p) or load_yaml(p))
    monkeypatch.setattr(
        config_module, "parse_checkpoint_every", lambda t: parses.append(t) or parse(t)
    )
    args = build_parser().parse_args(
        ["train", "--out", str(out), "--resume", "--config", str(given), "--epochs", "3",
         "--aug-flip-prob", "0.1", "--checkpoint-every", "7"]
    )  # fmt: skip
    cfg, got = config_module.layered_config(args)
    assert sorted(map(str, reads)) == sorted([str(out / "config.yaml"), str(given)])
    assert got == saved
    # typed > the file > the run's > the defaults
    assert (cfg.epochs, cfg.temperature, cfg.method, cfg.width) == (3, 0.3, "simclr-mlp", 0.125)
    assert cfg.augment == {"grayscale_prob": 0.0, "flip_prob": 0.1, "crop_scale": [0.2, 1.0]}
    cfg.validate()
    assert cfg.checkpoint_interval == (7, 0.0) and parses == ["7"]
    # without --resume the run's settings are not read
    reads.clear()
    plain = build_parser().parse_args(["train", "--out", str(out), "--config", str(given)])
    cfg, got = config_module.layered_config(plain)
    assert got is None and reads == [str(given)] and cfg.width == 1.0


def test_resume_in_the_yaml_file_layers_the_run_like_typed_resume(tmp_path):
    """``resume: true`` (and ``out``) inside --config layer the resumed run's saved settings
    under the file and the typed options, as ``--resume --out`` typed do; a typed
    ``--resume false`` overrides the file's."""
    import yaml

    from dimcollapse.cli import build_parser
    from dimcollapse.config import layered_config

    out = tmp_path / "run"
    out.mkdir()
    run = TrainConfig(**{**TINY_TRAIN, "out": str(out), "method": "simclr-mlp", "temperature": 0.2})
    saved = {**run.to_dict(), "augment": {"flip_prob": 0.5}}
    (out / "config.yaml").write_text(yaml.safe_dump({"config": saved, "run": {}}))
    given = tmp_path / "c.yaml"
    given.write_text(f"resume: true\nout: {out}\nepochs: 3\n")
    parse = build_parser().parse_args

    in_file, got = layered_config(parse(["train", "--config", str(given)]))
    typed, typed_got = layered_config(
        parse(["train", "--resume", "--out", str(out), "--epochs", "3"])
    )
    assert got == saved == typed_got
    assert in_file == typed
    assert (in_file.method, in_file.temperature, in_file.epochs) == ("simclr-mlp", 0.2, 3)
    assert in_file.resume and in_file.augment == {"flip_prob": 0.5}
    # a typed --resume false wins over the file's: the run's settings are not read
    fresh, none = layered_config(parse(["train", "--config", str(given), "--resume", "false"]))
    assert none is None and not fresh.resume and fresh.method == TrainConfig().method


@pytest.mark.parametrize(
    "text, expected",
    [("500", (500, 0.0)), ("0", (0, 0.0)), ("10m", (0, 600.0)), ("10min", (0, 600.0)),
     ("90s", (0, 90.0)), ("1.5h", (0, 5400.0))],
)  # fmt: skip
def test_checkpoint_every_reads_steps_or_a_duration(text, expected):
    from dimcollapse.config import parse_checkpoint_every

    assert parse_checkpoint_every(text) == expected
