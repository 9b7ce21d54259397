"""The training run's augmentation: the recipe (auto | paper), the strength knob and the dataset
record's mirror rule, as resolve_augment builds them (issue 23)."""

from __future__ import annotations

import pytest

from dimcollapse.config import TrainConfig
from dimcollapse.data.augment_config import AugmentConfig
from dimcollapse.data.datasets import load_dataset
from dimcollapse.errors import UsageError
from dimcollapse.train import resolve_augment


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train", subset=32, seed=0)


def test_the_recipe_and_strength_reach_the_run(digits):
    auto = resolve_augment(TrainConfig(dataset="digits"), digits)
    assert auto.blur_prob == (0.0, 0.0) and auto.solarize_prob == (0.0, 0.0)
    paper = resolve_augment(TrainConfig(dataset="digits", aug_recipe="paper"), digits)
    assert paper.blur_prob == (1.0, 0.1) and paper.solarize_prob == (0.0, 0.2)
    assert paper.blur_sigma == (0.1, 0.1)  # 2 px x 8/224 is under the lower end, 0.1
    weak = resolve_augment(TrainConfig(dataset="digits", aug_strength=0.5), digits)
    assert weak.crop_scale[0] == pytest.approx(0.54) and weak.jitter[0] == pytest.approx(0.2)
    # an explicit override is scaled with the rest of the recipe
    over = TrainConfig(dataset="digits", augment={"crop_scale": [0.5, 1.0]}, aug_strength=0.0)
    assert resolve_augment(over, digits).crop_scale == (1.0, 1.0)


def test_a_dataset_whose_mirror_changes_class_is_not_flipped(digits):
    assert resolve_augment(TrainConfig(dataset="digits"), digits).flip_prob == 0.0
    # the record's rule yields to an explicit override
    flipped = TrainConfig(dataset="digits", augment={"flip_prob": 0.5})
    assert resolve_augment(flipped, digits).flip_prob == 0.5
    assert AugmentConfig.for_dataset(28, 1).flip_prob == 0.5  # fashion-mnist keeps its flips


@pytest.mark.parametrize("bad", [{"aug_recipe": "simclr"}, {"aug_strength": 3.0}])
def test_impossible_recipes_are_refused(bad):
    with pytest.raises(UsageError):
        TrainConfig(**bad).validate()
