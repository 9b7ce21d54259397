"""A method is a recipe: a new method is a loss and a record, nothing else; the table's rules."""

from __future__ import annotations

import types

import pytest
import torch

from dimcollapse import losses, methods
from dimcollapse.config import TrainConfig
from dimcollapse.errors import UsageError
from dimcollapse.methods import (
    PLANNED_GROUPS,
    RECIPES,
    Option,
    Recipe,
    methods_in_group,
    positive_number,
)
from dimcollapse.reproduce.plan import plan_runs


def _toy_loss(scale: float):
    """The test's own loss: scaled squared distance of the views minus the spread of z1."""

    def loss_fn(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return scale * (z1 - z2).pow(2).mean() - z1.std(dim=0).clamp(max=1).mean()

    return loss_fn


TOY = Recipe(
    "toy",
    "a toy method",
    "#000000",
    head="linear",
    loss="toy",
    options=(Option("scale", 1.0, positive_number, "weight of the distance"),),
)


@pytest.fixture
def toy_method(monkeypatch):
    """Register the toy method: its loss factory in LOSSES and its record in RECIPES."""
    monkeypatch.setitem(losses.LOSSES, "toy", _toy_loss)
    monkeypatch.setitem(methods.RECIPES, "toy", TOY)
    return "toy"


def test_a_new_method_trains_through_train(toy_method, tmp_path):
    from dimcollapse.train import train

    cfg = TrainConfig(
        method=toy_method,
        method_options={"scale": 2.0},
        dataset="digits",
        epochs=1,
        batch_size=64,
        subset=64,  # one step
        width=0.0625,
        workers=0,
        monitor_samples=32,
        device="cpu",
        out=str(tmp_path / "toy"),
    )
    result = train(cfg, verbose=False)
    assert [m["step"] for m in result.metrics] == [1]
    assert torch.isfinite(torch.tensor(result.metrics[0]["loss"]))
    assert result.checkpoint.is_file()
    with pytest.raises(UsageError, match="scale must be positive"):
        TrainConfig(method=toy_method, method_options={"scale": -1.0}).validate()


def test_a_new_method_trains_through_bench(toy_method):
    from dimcollapse.bench.step import build_step

    settings = dict(
        seed=0, backbone="resnet18", channels=3, small_stem=True, width=0.0625,
        channels_last=False, batch=8, compile=False, precision="fp32", method=toy_method,
    )  # fmt: skip
    step, info = build_step(settings, torch.device("cpu"))
    views = torch.randn(2, 8, 3, 16, 16)
    step(views[0], views[1])
    assert info["head"] == "toy" and info["loss"] == "toy: scale 1, plus the online probe"


def test_groups_are_explicit_and_unplanned_methods_are_not_trained():
    assert PLANNED_GROUPS == ("table1", "ablation")
    assert methods_in_group("extra") == ("vicreg", "barlow-twins")
    assert all(RECIPES[m].paper_top1 is None for m in methods_in_group("extra"))
    assert "vicreg" not in methods.PAPER_TOP1
    plan = types.SimpleNamespace(seeds=[0], d0_values=[], default_d0=None)
    planned = [r.method for r in plan_runs(plan)]
    assert planned == [*methods.TABLE1_METHODS, *methods.ABLATION_METHODS]
    asked = plan_runs(plan, groups=("extra",))
    assert [(r.method, r.group) for r in asked] == [("vicreg", "extra"), ("barlow-twins", "extra")]
    with pytest.raises(ValueError, match="unknown method group"):
        methods_in_group("extras")


def test_the_table_refuses_an_unknown_group_or_a_planned_method_without_a_paper_number():
    with pytest.raises(ValueError, match="unknown group"):
        methods._table(Recipe("x", "x", "#000", head="mlp", loss="info_nce", group="table2"))
    with pytest.raises(ValueError, match="needs the paper's top-1"):
        methods._table(Recipe("x", "x", "#000", head="mlp", loss="info_nce", group="ablation"))


def test_every_recipe_names_a_loss_and_a_head():
    from dimcollapse.projectors import HEADS

    for recipe in RECIPES.values():
        assert recipe.loss in losses.LOSSES and recipe.head in HEADS, recipe.name
        built = losses.build_recipe(TrainConfig(method=recipe.name))
        assert set(built.options) == set(recipe.option_names())


def test_every_description_fills_in_from_its_own_recipe():
    """A recipe's ``about`` names only its label and its own options: the report fills it in
    from the recipe alone. Every method beyond the paper has one (the paper describes its own)."""
    import string

    for recipe in RECIPES.values():
        if recipe.group in methods.PLANNED_GROUPS:
            assert recipe.about == "", recipe.name
            continue
        assert recipe.about, recipe.name
        names = {f for _, f, _, _ in string.Formatter().parse(recipe.about) if f}
        assert names <= {"label", *recipe.option_names()}, recipe.name
        defaults = {o.name: o.default for o in recipe.options}
        text = recipe.about.format(label=recipe.label, **defaults)
        assert text.startswith(f"**{recipe.label}**") and "{" not in text, recipe.name
