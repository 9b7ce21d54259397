"""The distributed helpers (:mod:`dimcollapse.distributed`) in one process; two gloo processes
are tested through the loss they gather (tests/test_losses.py)."""

from __future__ import annotations

import socket

import pytest
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


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
@pytest.mark.parametrize("failed", [False, True])
def test_cleanup_leaves_a_world_of_one_on_success_and_on_failure(monkeypatch, failed):
    """A world of one: the teardown handshake counts this process and returns (no peer to
    wait for); after a failure the group is destroyed at once, without the handshake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.setattr(
        distributed, "TEARDOWN_TIMEOUT_S", 0.0
    )  # a wait that was needed fails below
    assert distributed.setup_from_env("cpu") == (0, 0, 1)
    store = torch.distributed.distributed_c10d._get_default_store()
    distributed.cleanup(failed=failed)
    assert not distributed.is_distributed()
    counts = [store.add(f"dimcollapse/{key}", 0) for key in ("destroyed", "leaving")]
    assert counts == ([0, 0] if failed else [1, 0])
