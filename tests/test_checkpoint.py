"""Checkpoint files (:mod:`dimcollapse.checkpoint`): older files load with defaults, a file
without a model is refused."""

from __future__ import annotations

import pytest

from dimcollapse.checkpoint import load_checkpoint
from dimcollapse.errors import UsageError


def test_a_checkpoint_from_before_the_mid_epoch_fields_loads_with_defaults(tmp_path):
    """Files written before step_in_epoch, partial_epoch and bad_steps existed still load."""
    from dimcollapse.checkpoint import save_checkpoint

    old = {"kind": "pretrain", "model_spec": {"method": "directclr"}, "model": {}, "epoch": 3,
           "step": 30, "config": None, "metrics": {"online_probe_top1": 0.5}}  # fmt: skip
    save_checkpoint(tmp_path / "old.pt", old)
    ckpt = load_checkpoint(tmp_path / "old.pt")
    assert (ckpt.epoch, ckpt.step, ckpt.step_in_epoch, ckpt.partial_epoch) == (3, 30, 0, None)
    assert ckpt.bad_steps == 0 and ckpt.config == {} and ckpt.online_probe_top1 == 0.5
    save_checkpoint(tmp_path / "bare.pt", {"epoch": 1})
    with pytest.raises(UsageError, match="without model_spec, model"):
        load_checkpoint(tmp_path / "bare.pt")
