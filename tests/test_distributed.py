"""The distributed helpers (:mod:`dimcollapse.distributed`) in one process; two gloo processes
are tested through the loss they gather (tests/test_losses.py)."""

from __future__ import annotations

import torch

from dimcollapse import distributed


def test_distributed_helpers_do_nothing_in_one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    t = torch.arange(3.0)
    assert distributed.all_gather_with_grad(t) is t
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [0.0, 1.0, 2.0]
    distributed.barrier()
    distributed.cleanup()
    assert distributed.setup_from_env("cpu") == (0, 0, 1)
