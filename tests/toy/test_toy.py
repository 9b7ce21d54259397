"""The theory lab: the paper's identities to 1e-10, the training engine, the claims, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_usage_error

from dimcollapse.errors import UsageError
from dimcollapse.toy import (
    ToyConfig,
    alignment_diag_mean,
    alignment_matrices,
    alignment_weighted_diag_mean,
    autograd_gradients,
    closed_form_gradients,
    eq11_check,
    run_scenario,
    scenario_config,
    sigma_hats,
    softmax_alphas,
    train_toy,
    train_toys,
    x_matrix,
)
from dimcollapse.toy.loss import (
    STREAM_DATA,
    embedding_gradients,
    eq2_loss_sum,
    forward,
    make_generator,
)

F64 = torch.float64


def _views(n: int = 24, d: int = 5, seed: int = 0, noise: float = 0.7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64)
    x1 = x + noise * torch.randn(n, d, generator=g, dtype=F64)
    x2 = x + noise * torch.randn(n, d, generator=g, dtype=F64)
    return x1, x2, g


def _x_by_loops(alpha: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """X of appendix B.2's first line, summed term by term (slow, obviously literal)."""
    n, d = x1.shape
    out = torch.zeros(d, d, dtype=F64)
    for i in range(n):
        v = torch.zeros(d, dtype=F64)
        for j in range(n):
            if j != i:
                v += alpha[i, j] * (x2[i] - x1[j]) + alpha[j, i] * (x1[i] - x1[j])
        out += torch.outer(v, x1[i])
        out -= (1 - alpha[i, i]) * torch.outer(x2[i] - x1[i], x2[i])
    return out


# --- Lemma 2 and the definition of X ---------------------------------------------------------


@pytest.mark.parametrize("loss", ["distance", "cosine"])
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_lemma2_identity_holds_to_1e10(loss, temperature):
    x1, x2, g = _views(seed=1)
    w = torch.randn(5, 5, generator=g, dtype=F64)
    alpha = softmax_alphas(x1 @ w.T, x2 @ w.T, loss, temperature)
    assert torch.allclose(alpha.sum(1), torch.ones(24, dtype=F64), atol=1e-14)
    x = x_matrix(alpha, x1, x2)
    s0, s1 = sigma_hats(alpha, x1, x2)
    assert float((x - (s0 - s1)).abs().max()) < 1e-10
    assert float((x - _x_by_loops(alpha, x1, x2)).abs().max()) < 1e-10
    assert float((x - x.T).abs().max()) < 1e-10  # X is symmetric, as Lemma 2 implies
    # Sigma0_hat and Sigma1_hat are PSD
    assert float(torch.linalg.eigvalsh(s0).min()) > -1e-10
    assert float(torch.linalg.eigvalsh(s1).min()) > -1e-10


def test_eq6_as_printed_fails_lemma2():
    """The printed Eq. 6 (leading minus, x_i^T in the last term) does not give Lemma 2."""
    x1, x2, g = _views(seed=2)
    w = torch.randn(5, 5, generator=g, dtype=F64)
    alpha = softmax_alphas(x1 @ w.T, x2 @ w.T)
    a = alpha.clone()
    torch.diagonal(a).zero_()
    first = (a.sum(1, keepdim=True) * x2 - a @ x1) + (a.sum(0).unsqueeze(1) * x1 - a.T @ x1)
    printed = -first.T @ x1 - ((1 - torch.diagonal(alpha)).unsqueeze(1) * (x2 - x1)).T @ x1
    s0, s1 = sigma_hats(alpha, x1, x2)
    assert float((printed - (s0 - s1)).abs().max()) > 1e-3


# --- Lemmas 1 and 3: closed-form gradients against autograd -----------------------------------


@pytest.mark.parametrize(
    "layers,relu,loss,temperature",
    [
        (1, False, "distance", 1.0),
        (2, False, "distance", 1.0),
        (3, False, "distance", 0.5),
        (1, False, "cosine", 0.2),
        (2, False, "cosine", 0.5),
        (2, True, "distance", 1.0),
        (3, True, "cosine", 0.5),
    ],
)
def test_closed_form_gradients_match_autograd(layers, relu, loss, temperature):
    x1, x2, g = _views(n=20, d=6, seed=3)
    w = torch.randn(layers, 6, 6, generator=g, dtype=F64) / 6**0.5
    closed = closed_form_gradients(w, x1, x2, relu=relu, loss=loss, temperature=temperature)
    auto = autograd_gradients(w, x1, x2, relu=relu, loss=loss, temperature=temperature)
    checked = 0
    for c, a in zip(closed, auto):
        if c is None:
            continue
        checked += 1
        assert float((c - a).norm() / a.norm()) < 1e-10
    assert checked == (1 if relu else layers)


def test_g_equals_minus_w_x_one_layer():
    """Eq. 5 directly: dL/dW = G = -W X for the summed Eq. 2 loss."""
    x1, x2, g = _views(seed=4)
    w = torch.randn(5, 5, generator=g, dtype=F64)
    alpha = softmax_alphas(x1 @ w.T, x2 @ w.T)
    (auto,) = autograd_gradients(w[None], x1, x2)
    assert float((auto - (-w @ x_matrix(alpha, x1, x2))).norm() / auto.norm()) < 1e-10


@pytest.mark.parametrize("loss", ["distance", "cosine"])
def test_engine_embedding_gradients_match_autograd(loss):
    g = torch.Generator().manual_seed(5)
    z1 = torch.randn(3, 16, 4, generator=g, dtype=F64, requires_grad=True)
    z2 = (z1.detach() + 0.3 * torch.randn(3, 16, 4, generator=g, dtype=F64)).requires_grad_(True)
    tau = torch.tensor([1.0, 0.5, 2.0], dtype=F64).view(3, 1, 1)
    total = sum(eq2_loss_sum(z1[i], z2[i], loss, float(tau[i])) for i in range(3))
    ga, gb = torch.autograd.grad(total, [z1, z2])
    loss_sum, g1, g2 = embedding_gradients(z1.detach(), z2.detach(), loss, tau)
    assert torch.allclose(loss_sum.sum(), total.detach(), rtol=1e-12)
    assert float((g1 - ga).abs().max()) < 1e-12
    assert float((g2 - gb).abs().max()) < 1e-12


def test_one_engine_step_is_one_sgd_step_with_autograd():
    """The batched hand-written backward (with identity padding and ReLU masks) is exact."""
    cfgs = [
        ToyConfig(layers=1, steps=1, lr=0.1, noise=0.5, dtype="float64", track_every=1),
        ToyConfig(layers=3, steps=1, lr=0.05, noise=0.5, dtype="float64", track_every=1),
        ToyConfig(layers=2, relu=True, steps=1, lr=0.2, noise=0.5, dtype="float64", track_every=1),
    ]
    results = train_toys(cfgs)
    g = make_generator(0, STREAM_DATA)
    x = torch.randn(128, 16, generator=g, dtype=F64)
    eps = torch.randn(256, 16, generator=g, dtype=F64)
    noise = torch.as_tensor(cfgs[0].noise_scales(), dtype=F64)
    x1, x2 = x + eps[:128] * noise, x + eps[128:] * noise
    for cfg, res in zip(cfgs, results):
        w0 = torch.as_tensor(res.weights_init)
        mats = [m.clone().requires_grad_(True) for m in w0]
        z1, _ = forward(mats, x1, relu=cfg.relu)
        z2, _ = forward(mats, x2, relu=cfg.relu)
        grads = torch.autograd.grad(eq2_loss_sum(z1, z2) / 128, mats)
        expected = torch.stack([m.detach() - cfg.lr * gr for m, gr in zip(mats, grads)])
        assert np.allclose(res.weights, expected.numpy(), rtol=0, atol=1e-13)


# --- Theorems 2 and 3 --------------------------------------------------------------------------


def _haar(d: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    return q * torch.sign(torch.diagonal(r))


def test_eq11_exact_when_aligned():
    """With V2 = U1 exactly, the measured singular-value rates equal Eq. 11."""
    d = 6
    x1, x2, g = _views(n=32, d=d, seed=6, noise=0.2)
    u, v, q = _haar(d, g), _haar(d, g), _haar(d, g)
    s1 = torch.tensor([2.0, 1.5, 1.1, 0.7, 0.4, 0.2], dtype=F64)
    s2 = torch.tensor([1.8, 1.3, 1.0, 0.6, 0.3, 0.1], dtype=F64)
    w = torch.stack([(u * s1) @ v.T, (q * s2) @ u.T])  # W1 = U S1 V^T, W2 = Q S2 U^T
    a = alignment_matrices(w)[0]
    assert np.allclose(np.abs(a), np.eye(d), atol=1e-10)
    assert alignment_diag_mean(a) == pytest.approx(1.0, abs=1e-10)
    assert alignment_weighted_diag_mean(w) == pytest.approx(1.0, abs=1e-10)
    measured, predicted, err = eq11_check(w, x1, x2)
    assert err < 1e-6, (measured, predicted)
    # a misaligned pair of layers does not satisfy Eq. 11
    w_bad = torch.stack([w[0], (q * s2) @ _haar(d, g).T])
    assert eq11_check(w_bad, x1, x2)[2] > 1e-2


# --- the claims, on short runs -------------------------------------------------------------------


def test_strong_augmentation_collapses_weak_does_not():
    res = run_scenario("strong-aug", steps=1000, track_every=250)
    strong, weak = res.records()
    assert strong["collapsed_dims"] == 8  # exactly the noisy dimensions
    assert weak["collapsed_dims"] == 0
    assert strong["x_min_eigenvalue"] < 0 < weak["x_min_eigenvalue"]  # Theorem 1's condition
    sv = res.run("strong").weight_singular_values[-1, 0]
    assert sv[8:].max() < 0.05 * sv[:8].min()  # W's singular values on the noisy directions
    for rec in (strong, weak):
        assert rec["lemma2_max_abs_err"] < 1e-10
        assert rec["gradient_rel_err"] < 1e-10


def test_two_layer_alignment_tends_to_identity():
    res = train_toy(scenario_config("two-layer", steps=1000, track_every=100))
    a = res.analytics
    assert a.alignment_diag_mean > a.alignment_diag_mean_init + 0.2
    assert a.alignment_weighted_diag_mean > 0.9
    top = np.abs(np.diagonal(res.alignment[-1, 0]))[:5]  # the directions that grew
    assert top.min() > 0.85
    assert a.eq11_rel_err < 0.1
    assert res.collapsed_dims() > res.collapsed_dims_history()[0]
    assert a.gradient_rel_err < 1e-10 and a.lemma2_max_abs_err < 1e-10


def test_collapsed_dims_grow_with_depth():
    res = run_scenario("depth", steps=1000, track_every=500)
    counts = [r["collapsed_dims"] for r in res.records()]
    assert counts[0] == 0
    assert counts == sorted(counts) and counts[-1] >= counts[0] + 4


def test_relu_collapses_too():
    res = run_scenario("relu", steps=1000, track_every=500)
    linear, relu = res.records()
    assert linear["collapsed_dims"] > 0 and relu["collapsed_dims"] > 0
    assert relu["gradient_layers_checked"] == 1 and "eq11_rel_err" not in relu


# --- reproducibility and batching ------------------------------------------------------------


def test_seed_repeats_a_run_exactly():
    cfg = ToyConfig(layers=2, steps=300, track_every=50, lr=1e-2, noise=0.2)
    a, b = train_toy(cfg), train_toy(cfg)
    for name in ("weights", "loss", "embedding_singular_values", "weight_singular_values"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.summary() == b.summary()
    c = train_toy(cfg.replace(seed=1))
    assert not np.array_equal(a.weights, c.weights)


def test_batched_runs_equal_solo_runs():
    a = ToyConfig(layers=1, steps=200, track_every=100, lr=1e-2, dtype="float64")
    b = a.replace(layers=3, relu=True, noise=0.3, lr=5e-3)
    solo = train_toy(b)
    both = train_toys([a, b])
    assert np.allclose(both[1].weights, solo.weights, rtol=1e-12, atol=1e-14)
    assert both[0].config == a and both[1].config == b


def test_history_shapes():
    res = train_toy(ToyConfig(layers=3, steps=120, track_every=50, dim=6, noise_dims=3))
    assert list(res.steps) == [0, 50, 100, 120]
    assert res.weight_singular_values.shape == (4, 3, 6)
    assert res.embedding_singular_values.shape == (4, 6)
    assert res.alignment.shape == (4, 2, 6, 6)
    assert res.loss.shape == (4,) and np.all(np.isfinite(res.loss))
    assert train_toy(ToyConfig(steps=3, track_every=5)).alignment is None


def test_input_covariance():
    cfg = ToyConfig(dim=4, noise_dims=2, steps=5, input_cov=(1.0, 2.0, 0.5, 1.0))
    assert np.allclose(cfg.input_factor() @ cfg.input_factor().T, np.diag([1.0, 2.0, 0.5, 1.0]))
    full = ((2.0, 0.5), (0.5, 1.0))
    f = ToyConfig(dim=2, noise_dims=1, input_cov=full).input_factor()
    assert np.allclose(f @ f.T, np.array(full))
    with pytest.raises(UsageError):
        ToyConfig(dim=2, noise_dims=1, input_cov=((1.0, 2.0), (2.0, 1.0))).validate()
    train_toy(cfg)


@pytest.mark.parametrize(
    "changes,fragment",
    [
        ({"dim": 1}, "--dim"),
        ({"layers": 0}, "--layers"),
        ({"layers": 7}, "--layers"),
        ({"noise": -1.0}, "--noise"),
        ({"noise": float("nan")}, "--noise"),
        ({"steps": 0}, "--steps"),
        ({"noise_dims": 17}, "--noise-dims"),
        ({"lr": 0.0}, "--lr"),
        ({"temperature": -1.0}, "--temperature"),
        ({"batch_size": 1}, "--batch-size"),
        ({"loss": "dot"}, "--loss"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_config_validation(changes, fragment):
    with pytest.raises(UsageError, match=fragment):
        ToyConfig(**changes).validate()


def test_divergence_is_a_usage_error():
    with pytest.raises(UsageError, match="diverged"):
        train_toy(ToyConfig(noise=3.0, lr=50.0, steps=200, track_every=50))


# --- the command line ----------------------------------------------------------------------------

REQUIRED = (
    "scenario",
    "layers",
    "relu",
    "noise",
    "collapsed_dims",
    "embedding_singular_values",
    "weight_singular_values",
    "x_min_eigenvalue",
    "lemma2_max_abs_err",
    "gradient_rel_err",
)


def test_cli_json_lines_and_files(cli, tmp_path):
    code, out, err = cli(
        "toy", "two-layer", "--steps", "60", "--track-every", "20", "--out", tmp_path, "--json"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    for key in (*REQUIRED, "alignment_diag_mean", "eq11_rel_err"):
        assert key in rec, key
    assert rec["scenario"] == "two-layer" and rec["layers"] == 2
    assert len(rec["weight_singular_values"]) == 2
    assert (tmp_path / "two-layer.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "two-layer.json").read_text())
    assert summary["runs"][0]["collapsed_dims"] == rec["collapsed_dims"]
    assert "wrote" in err  # file notes go to stderr under --json


def test_cli_all_writes_every_figure(cli, tmp_path):
    code, out, err = cli(
        "toy", "all", "--steps", "40", "--track-every", "20", "--out", tmp_path, "--seed", "2"
    )
    assert code == 0, err
    for name in ("strong-aug", "two-layer", "depth", "relu", "all"):
        assert (tmp_path / f"{name}.png").exists()
        assert (tmp_path / f"{name}.json").exists()
    assert out.count("\n") >= 9 and "wrote" in out
    data = json.loads((tmp_path / "all.json").read_text())
    names = [s["scenario"] for s in data["scenarios"]]
    assert names == ["strong-aug", "two-layer", "depth", "relu"]
    assert all(r["seed"] == 2 for s in data["scenarios"] for r in s["runs"])


def test_cli_seed_is_bit_for_bit(cli, tmp_path):
    args = ["toy", "depth", "--steps", "50", "--depths", "1,2", "--no-figures", "--json"]
    first = cli(*args, "--out", tmp_path / "a")
    second = cli(*args, "--out", tmp_path / "b")
    assert first[0] == second[0] == 0
    assert first[1] == second[1]
    assert not (tmp_path / "a" / "depth.png").exists()


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["strong-aug", "--dim", "1"], "--dim"),
        (["strong-aug", "--layers", "0"], "--layers"),
        (["relu", "--layers", "0"], "--layers"),
        (["relu", "--layers", "1"], "--layers >= 2"),
        (["two-layer", "--layers", "1"], "--layers >= 2"),
        (["strong-aug", "--layers", "7"], "--layers"),
        (["depth", "--depths", "0,2"], "--depths"),
        (["depth", "--depths", "1,x"], "--depths"),
        (["strong-aug", "--noise", "-1"], "--noise"),
        (["strong-aug", "--weak-noise", "-0.5"], "--weak-noise"),
        (["two-layer", "--steps", "0"], "--steps"),
        (["strong-aug", "--noise-dims", "17"], "--noise-dims"),
        (["two-layer", "--noise-dims", "lots"], "--noise-dims"),
        (["all", "--lr", "0"], "--lr"),
        (["two-layer", "--rel-tol", "2"], "--rel-tol"),
        (["two-layer", "--input-var", "1,2"], "--input-var"),
        (["two-layer", "--steps", "ten"], "steps"),
        (["nonsense"], "invalid choice"),
        ([], "SCENARIO"),
    ],
)
def test_cli_bad_options(cli, tmp_path, args, fragment):
    assert_usage_error(cli("toy", *args, "--out", tmp_path) if args else cli("toy"), fragment)
    assert not any(tmp_path.iterdir())


def test_a_toy_too_large_for_memory_is_refused_before_allocating(cli):
    from conftest import assert_usage_error

    assert_usage_error(cli("toy", "two-layer", "--dim", "100000"), "--dim 100000", "GiB")


def test_a_run_whose_checks_come_out_nan_diverged_and_writes_nothing(cli, tmp_path):
    """An absurd --lr that stays finite in the weights turns Eq. 11's check to NaN: the run
    diverged, so the command fails with one error line naming the check (exit status 2) and
    writes nothing, not even its output folder; a calm run beside it writes its files."""
    from conftest import assert_usage_error

    result = cli("toy", "two-layer", "--lr", "1e9", "--steps", "20", "--no-figures",
                 "--out", tmp_path / "toys")  # fmt: skip
    assert_usage_error(result, "diverged", "eq11_rel_err", "lower --lr", "nothing written")
    assert not any(tmp_path.iterdir())
    code, _, err = cli("toy", "two-layer", "--steps", "20", "--no-figures",
                       "--out", tmp_path / "calm")  # fmt: skip
    assert code == 0 and "warning:" not in err and "error:" not in err, err
    assert (tmp_path / "calm" / "two-layer.json").is_file()
