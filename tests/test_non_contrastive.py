"""VICReg and Barlow Twins against NumPy float64 transcriptions of their authors' code, in one
process and in two (gloo), and the recipes that make them methods."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from two_ranks import run_ranks

from dimcollapse.config import TrainConfig
from dimcollapse.errors import UsageError
from dimcollapse.losses import barlow_twins, build_recipe, vicreg


def _off_diagonal(m: np.ndarray) -> np.ndarray:
    return m[~np.eye(m.shape[0], dtype=bool)]


def reference_vicreg(x: np.ndarray, y: np.ndarray) -> float:
    """VICReg.forward of facebookresearch/vicreg, main_vicreg.py (one process, so its
    FullGatherLayer is the identity), transcribed in float64 with its defaults: sim_coeff 25,
    std_coeff 25, cov_coeff 1; the variance term's 1 and 0.0001 are literals there."""
    n, d = x.shape
    repr_loss = np.mean((x - y) ** 2)  # F.mse_loss
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    std_x = np.sqrt(x.var(axis=0, ddof=1) + 0.0001)  # torch's var is unbiased
    std_y = np.sqrt(y.var(axis=0, ddof=1) + 0.0001)
    std_loss = np.mean(np.maximum(0, 1 - std_x)) / 2 + np.mean(np.maximum(0, 1 - std_y)) / 2
    cov_x = x.T @ x / (n - 1)
    cov_y = y.T @ y / (n - 1)
    cov_loss = (_off_diagonal(cov_x) ** 2).sum() / d + (_off_diagonal(cov_y) ** 2).sum() / d
    return float(25.0 * repr_loss + 25.0 * std_loss + 1.0 * cov_loss)


def reference_barlow_twins(z1: np.ndarray, z2: np.ndarray, lambd: float = 5e-3) -> float:
    """BarlowTwins.forward of facebookresearch/barlowtwins, main.py (one process), transcribed
    in float64: ``self.bn`` is ``BatchNorm1d(affine=False)`` in training mode (batch mean,
    biased variance, eps 1e-5), ``c = bn(z1).T @ bn(z2) / batch_size``, then
    ``sum (diag(c) - 1)^2 + lambd * sum offdiag(c)^2`` (the paper's lambda 5e-3)."""
    n = z1.shape[0]

    def bn(z: np.ndarray) -> np.ndarray:
        return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)

    c = bn(z1).T @ bn(z2) / n
    on_diag = ((np.diagonal(c) - 1) ** 2).sum()
    off_diag = (_off_diagonal(c) ** 2).sum()
    return float(on_diag + lambd * off_diag)


def _fixed(seed: int, n: int = 12, d: int = 7, scale: float = 0.7) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(n, d)) * scale
    z2 = z1 + 0.3 * rng.normal(size=(n, d))
    return z1, z2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vicreg_matches_the_authors_loss(seed):
    z1, z2 = _fixed(seed)
    expected = reference_vicreg(z1, z2)
    got = vicreg(torch.from_numpy(z1), torch.from_numpy(z2))
    assert got.dtype == torch.float64
    assert abs(got.item() - expected) <= 1e-6 * max(1.0, abs(expected))
    got32 = vicreg(torch.from_numpy(z1).float(), torch.from_numpy(z2).float())
    assert got32.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_barlow_twins_matches_the_authors_loss(seed):
    z1, z2 = _fixed(seed)
    expected = reference_barlow_twins(z1, z2)
    got = barlow_twins(torch.from_numpy(z1), torch.from_numpy(z2))
    assert abs(got.item() - expected) <= 1e-6 * max(1.0, abs(expected))
    got32 = barlow_twins(torch.from_numpy(z1).float(), torch.from_numpy(z2).float())
    assert got32.item() == pytest.approx(expected, rel=1e-5)


def test_the_recipes_build_the_papers_coefficients():
    v = build_recipe(TrainConfig(method="vicreg"))
    assert v.options == dict(
        sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, std_target=1.0, eps=1e-4
    )
    b = build_recipe(TrainConfig(method="barlow-twins"))
    assert b.options == dict(lambd=5e-3, bn_eps=1e-5)
    z1, z2 = (torch.from_numpy(a) for a in _fixed(3))
    assert v.loss_fn(z1, z2).item() == pytest.approx(reference_vicreg(*_fixed(3)), rel=1e-12)
    assert b.loss_fn(z1, z2).item() == pytest.approx(reference_barlow_twins(*_fixed(3)), rel=1e-12)
    # an option given in method_options reaches the loss
    half = build_recipe(TrainConfig(method="barlow-twins", method_options={"lambd": 0.0}))
    on_diag = half.loss_fn(z1, z2).item()
    assert on_diag == pytest.approx(reference_barlow_twins(*_fixed(3), lambd=0.0), rel=1e-12)


def test_method_options_are_checked_by_the_recipe():
    with pytest.raises(UsageError, match="vicreg takes no option temperature; its options: sim"):
        TrainConfig(method="vicreg", method_options={"temperature": 0.5}).validate()
    with pytest.raises(UsageError, match="lambd must be >= 0, got -1"):
        TrainConfig(method="barlow-twins", method_options={"lambd": -1}).validate()
    with pytest.raises(UsageError, match="temperature must be positive, got 0"):
        TrainConfig(method="simclr-mlp", temperature=0).validate()
    with pytest.raises(UsageError, match="unknown loss 'x'; choose from symmetric, ntxent"):
        TrainConfig(method="directclr", loss="x").validate()


def test_old_yaml_keys_still_set_info_nce():
    cfg = TrainConfig.from_dict({"method": "simclr-mlp", "temperature": 0.2, "loss": "ntxent"})
    cfg.validate()
    assert build_recipe(cfg).options == {"temperature": 0.2, "convention": "ntxent"}
    # method_options wins over the old field, as the newer and more specific name
    cfg = TrainConfig(method="directclr", temperature=0.2, method_options={"temperature": 0.5})
    assert build_recipe(cfg).options["temperature"] == 0.5


def test_bad_shapes_are_refused():
    z = torch.randn(4, 3)
    for loss in (vicreg, barlow_twins):
        with pytest.raises(UsageError, match="same shape"):
            loss(z, torch.randn(5, 3))
        with pytest.raises(UsageError, match="at least 2 rows"):
            loss(z[:1], z[:1])


_WORKER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from dimcollapse import distributed
    from dimcollapse.losses import barlow_twins, vicreg
    from two_ranks import loss_and_grads

    out_path, batch, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rank, _, world = distributed.setup_from_env("cpu")
    rng = np.random.default_rng(5)
    z1 = torch.from_numpy(rng.normal(size=(world * batch, dim)))
    z2 = z1 + 0.3 * torch.from_numpy(rng.normal(size=(world * batch, dim)))
    rows = slice(rank * batch, (rank + 1) * batch)
    result = {}
    for name, loss_fn in (("vicreg", vicreg), ("barlow_twins", barlow_twins)):
        result[name] = loss_and_grads(loss_fn, z1, z2, rows)
    distributed.cleanup()
    torch.save(result, out_path)
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_process_gloo_matches_the_global_batch(tmp_path):
    """Two processes with half the batch each reproduce the one-process loss and gradient.

    VICReg gathers the embeddings for its variance and covariance terms, Barlow Twins sums its
    batch statistics and cross-correlation; either way the mean of the ranks' losses is the
    global loss, and a rank's gradient for its rows, divided by the world size as DDP's
    averaging does, is the global loss's gradient for those rows.
    """
    world, batch, dim = 2, 4, 5
    results = run_ranks(_WORKER, tmp_path, batch, dim, world=world)

    rng = np.random.default_rng(5)
    z1 = torch.from_numpy(rng.normal(size=(world * batch, dim)))
    z2 = z1 + 0.3 * torch.from_numpy(rng.normal(size=(world * batch, dim)))
    references = {"vicreg": reference_vicreg, "barlow_twins": reference_barlow_twins}
    for name, loss_fn in (("vicreg", vicreg), ("barlow_twins", barlow_twins)):
        a, b = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
        full = loss_fn(a, b)
        full.backward()
        assert full.item() == pytest.approx(references[name](z1.numpy(), z2.numpy()), rel=1e-12)
        rank_losses = torch.stack([res[name][0] for res in results])
        assert torch.allclose(rank_losses.mean(), full.detach(), rtol=1e-12), name
        for rank, res in enumerate(results):
            rows = slice(rank * batch, (rank + 1) * batch)
            assert torch.allclose(res[name][1] / world, a.grad[rows], rtol=1e-10), name
            assert torch.allclose(res[name][2] / world, b.grad[rows], rtol=1e-10), name
