"""info_nce against a NumPy float64 reference written from the formula, gradients, and DDP."""

from __future__ import annotations

import textwrap
import zlib

import numpy as np
import pytest
import torch
from two_ranks import run_ranks

from dimcollapse.errors import UsageError
from dimcollapse.losses import LOSS_CONVENTIONS, info_nce
from dimcollapse.projectors import build_head


def _log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def reference_symmetric(z1: np.ndarray, z2: np.ndarray, tau: float, normalize: bool) -> float:
    """0.5 * mean_i -log softmax_j(z1_i . z2_j / tau)[i] + the same with the views swapped."""
    if normalize:
        z1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
        z2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    idx = np.arange(len(z1))
    loss_12 = -_log_softmax_rows(z1 @ z2.T / tau)[idx, idx].mean()
    loss_21 = -_log_softmax_rows(z2 @ z1.T / tau)[idx, idx].mean()
    return 0.5 * loss_12 + 0.5 * loss_21


def reference_ntxent(z1: np.ndarray, z2: np.ndarray, tau: float, normalize: bool) -> float:
    """SimCLR's NT-Xent, written per anchor as in the SimCLR paper's l(i, j)."""
    if normalize:
        z1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
        z2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    z = np.concatenate([z1, z2])
    n, batch = len(z), len(z1)
    total = 0.0
    for i in range(n):
        positive = (i + batch) % n
        sims = np.array([z[i] @ z[k] / tau for k in range(n) if k != i])
        top = sims.max()
        log_denominator = top + np.log(np.exp(sims - top).sum())
        total += -(z[i] @ z[positive] / tau - log_denominator)
    return total / n


REFERENCES = {"symmetric": reference_symmetric, "ntxent": reference_ntxent}


@pytest.mark.parametrize("convention", LOSS_CONVENTIONS)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("tau", [0.1, 0.5])
@pytest.mark.parametrize("shape", [(1, 3), (2, 5), (8, 16), (33, 7)])
def test_matches_numpy_reference(convention, normalize, tau, shape):
    rng = np.random.default_rng(zlib.crc32(repr((convention, normalize, tau, shape)).encode()))
    z1 = rng.normal(size=shape)
    z2 = z1 + 0.5 * rng.normal(size=shape)
    if not normalize:  # keep unnormalised logits in a sane range
        z1, z2 = 0.3 * z1, 0.3 * z2
    expected = REFERENCES[convention](z1, z2, tau, normalize)
    got = info_nce(
        torch.from_numpy(z1), torch.from_numpy(z2), tau, convention=convention, normalize=normalize
    )
    assert got.dtype == torch.float64 and got.ndim == 0
    assert got.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    # float32 inputs give the same value to float32 precision
    got32 = info_nce(
        torch.from_numpy(z1).float(),
        torch.from_numpy(z2).float(),
        tau,
        convention=convention,
        normalize=normalize,
    )
    assert got32.dtype == torch.float32
    assert got32.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_default_is_the_paper_code():
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    expected = reference_symmetric(z1.numpy(), z2.numpy(), 0.1, normalize=True)
    assert info_nce(z1, z2).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("convention", LOSS_CONVENTIONS)
def test_normalized_loss_ignores_row_scale(convention):
    torch.manual_seed(1)
    z1, z2 = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    scale = torch.rand(5, 1, dtype=torch.float64) * 10 + 0.1
    assert torch.allclose(
        info_nce(z1 * scale, z2, convention=convention), info_nce(z1, z2, convention=convention)
    )


@pytest.mark.parametrize("convention", LOSS_CONVENTIONS)
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck(convention, normalize):
    torch.manual_seed(2)
    z1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b: info_nce(a, b, 0.5, convention=convention, normalize=normalize), (z1, z2)
    )


@pytest.mark.parametrize("convention", LOSS_CONVENTIONS)
def test_sgd_on_free_embeddings_lowers_the_loss(convention):
    torch.manual_seed(3)
    z1 = torch.randn(16, 8, requires_grad=True)
    z2 = torch.randn(16, 8, requires_grad=True)
    optimizer = torch.optim.SGD([z1, z2], lr=0.5)
    losses = []
    for _ in range(20):
        loss = info_nce(z1, z2, convention=convention)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(later <= earlier + 1e-6 for earlier, later in zip(losses, losses[1:]))


def test_low_precision_inputs_are_computed_in_float32():
    torch.manual_seed(4)
    z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
    loss = info_nce(z1.bfloat16(), z2.bfloat16())
    assert loss.dtype == torch.float32
    expected = info_nce(z1.bfloat16().float(), z2.bfloat16().float())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert info_nce(z1, z2).dtype == torch.float32


def test_directclr_head_equals_loss_on_the_subvector():
    torch.manual_seed(5)
    r1, r2 = torch.randn(10, 32), torch.randn(10, 32)
    head = build_head("directclr", 32, d0=7)
    for convention in LOSS_CONVENTIONS:
        assert torch.equal(
            info_nce(head(r1), head(r2), convention=convention),
            info_nce(r1[:, :7], r2[:, :7], convention=convention),
        )


def test_bad_input_raises_usage_error():
    z = torch.randn(4, 3)
    with pytest.raises(UsageError, match="symmetric, ntxent"):
        info_nce(z, z, convention="nt-xent")
    for tau in (0.0, -0.1, float("nan"), float("inf"), "warm"):
        with pytest.raises(UsageError, match="temperature"):
            info_nce(z, z, temperature=tau)
    with pytest.raises(UsageError, match="same shape"):
        info_nce(z, torch.randn(5, 3))
    with pytest.raises(UsageError, match="same shape"):
        info_nce(torch.randn(4), torch.randn(4))


_WORKER = textwrap.dedent(
    """
    import sys
    import torch
    from dimcollapse import distributed
    from dimcollapse.losses import info_nce
    from two_ranks import loss_and_grads

    out_path, batch, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rank, local_rank, world = distributed.setup_from_env("cpu")
    assert distributed.is_distributed() and distributed.rank() == rank
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(world * batch, dim, generator=generator, dtype=torch.float64)
    z2 = torch.randn(world * batch, dim, generator=generator, dtype=torch.float64)
    rows = slice(rank * batch, (rank + 1) * batch)
    result = {"rank": rank, "local_rank": local_rank, "world": world}
    for convention in ("symmetric", "ntxent"):
        result[convention] = loss_and_grads(
            info_nce, z1, z2, rows, temperature=0.2, convention=convention
        )
    result["sum"] = distributed.all_reduce_sum(torch.tensor([rank + 1.0]))
    store = torch.distributed.distributed_c10d._get_default_store()
    distributed.cleanup()
    assert not distributed.is_distributed()
    if rank == 0:  # the store's host leaves last: every peer has destroyed its group and left
        counts = [store.add(f"dimcollapse/{key}", 0) for key in ("destroyed", "leaving")]
        result["teardown"] = torch.tensor(counts)
    torch.save(result, out_path)
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_process_gloo_matches_the_global_batch(tmp_path):
    """Two torchrun-like processes, each with half the batch, reproduce the one-process loss.

    Each rank's loss is the mean over its anchors, so the global loss is the mean over ranks;
    the gradient a rank receives for its rows is the sum over all ranks' losses (the all-gather
    backward), i.e. world_size times the gradient of the global mean, which DDP then divides by
    world_size when it averages parameter gradients.
    """
    world, batch, dim = 2, 3, 5
    results = run_ranks(_WORKER, tmp_path, batch, dim, world=world)

    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(world * batch, dim, generator=generator, dtype=torch.float64)
    z2 = torch.randn(world * batch, dim, generator=generator, dtype=torch.float64)
    for convention in LOSS_CONVENTIONS:
        a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
        full = info_nce(a, b, temperature=0.2, convention=convention)
        full.backward()
        rank_losses = torch.stack([res[convention][0] for res in results])
        assert torch.allclose(rank_losses.mean(), full.detach(), rtol=1e-12)
        for rank, res in enumerate(results):
            rows = slice(rank * batch, (rank + 1) * batch)
            assert torch.allclose(res[convention][1] / world, a.grad[rows], rtol=1e-10)
            assert torch.allclose(res[convention][2] / world, b.grad[rows], rtol=1e-10)
    for rank, res in enumerate(results):
        assert (res["rank"], res["local_rank"], res["world"]) == (rank, rank, world)
        assert res["sum"].item() == 3.0
    assert results[0]["teardown"].tolist() == [world, world - 1]
