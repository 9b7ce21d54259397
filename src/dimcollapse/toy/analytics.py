"""The paper's closed forms (Lemmas 1-3, Theorems 1-3), each checked numerically in float64.

Conventions fixed here (the paper leaves them implicit or has typos; with these, every identity
below holds to rounding error, about 1e-13 for d = 16 and N = 128):

1. Batches are unnormalised sums over the N pairs, as in Eq. 2 (no 1/N), and ``tau = 1`` is
   Eq. 2 itself. With a temperature ``tau`` the logits are divided by ``tau``, the alphas are the
   softmax at that temperature and ``G = -W X / tau``.
2. ``alpha_ij = exp(s_ij) / Z_i`` for j != i *and* ``alpha_ii = exp(s_ii) / Z_i``: the text after
   Eq. 4 omits the ``1/Z_i`` on ``alpha_ii``, but ``sum_j alpha_ij = 1`` (used in B.2) needs it.
3. X is the matrix for which the chain rule gives ``G = -W X`` (Eq. 5)::

       X = sum_i ( sum_{j!=i} a_ij (x'_i - x_j) + sum_{j!=i} a_ji (x_i - x_j) ) x_i^T
           - sum_i (1 - a_ii) (x'_i - x_i) x'_i^T

   This is the first line of appendix B.2. Eq. 6 as printed in section 4.2 has two typos: a
   leading minus sign on the first sum and ``x_i^T`` instead of ``x'_i^T`` in the last term;
   with either, ``G = -W X`` and Lemma 2 both fail. ``x`` is the branch whose same-branch
   embeddings are the negatives in Eq. 2, ``x'`` the positive view.
4. Lemma 2, ``X = Sigma0_hat - Sigma1_hat`` with ``Sigma0_hat = sum_{i,j} a_ij (x_i - x_j)(x_i - x_j)^T``
   and ``Sigma1_hat = sum_i (1 - a_ii)(x'_i - x_i)(x'_i - x_i)^T``. Whether the (i, j) sum includes
   j = i does not matter: those terms are zero whatever ``a_ii`` is. (B.2 ends with
   ``sum_i sum_{j!=i} a_ji (...)``, the same matrix after swapping the names i and j.) The identity
   only needs rows of alpha that sum to one, so it also holds for the ``cosine`` loss's alphas,
   but there ``G = -W X`` does not (the normalisation adds a projection).
5. Time in the gradient flow (Eq. 11 check) is ``t = lr * step`` for the mean loss ``L / N`` that
   training minimises, so ``dW/dt = -grad(L / N)`` and Eq. 11's right side carries ``X / (N tau)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from dimcollapse.toy.config import ToyConfig
from dimcollapse.toy.loss import (
    STREAM_ANALYSIS,
    embedding_gradients,
    eq2_loss_sum,
    forward,
    logits,
    make_generator,
    make_views,
    sample_inputs,
)

F64 = torch.float64


def softmax_alphas(
    z1: torch.Tensor, z2: torch.Tensor, loss: str = "distance", temperature: float = 1.0
) -> torch.Tensor:
    """(N, N) alphas of Eq. 4: row i is the softmax of the logits of z_i, positive on the diagonal."""
    return torch.softmax(logits(z1, z2, loss, temperature), dim=-1)


def x_matrix(alpha: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """(d, d) X of Eq. 6 (in the corrected form of appendix B.2) from (N, N) alphas and (N, d) views.

    ``x1`` is the branch of the negatives (x_i), ``x2`` the positives (x'_i).
    """
    a = alpha.clone()
    torch.diagonal(a).zero_()
    row = a.sum(1, keepdim=True)  # sum_{j!=i} a_ij
    col = a.sum(0).unsqueeze(1)  # sum_{j!=i} a_ji
    first = (row * x2 - a @ x1) + (col * x1 - a.T @ x1)
    one_minus = (1.0 - torch.diagonal(alpha)).unsqueeze(1)
    return first.T @ x1 - (one_minus * (x2 - x1)).T @ x2


def sigma_hats(
    alpha: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lemma 2's (d, d) ``Sigma0_hat`` and ``Sigma1_hat``, summed pair by pair (an independent path).

    ``Sigma0_hat = sum_{i,j} a_ij (x_i - x_j)(x_i - x_j)^T`` over all (i, j), j = i included (zero);
    ``Sigma1_hat = sum_i (1 - a_ii)(x'_i - x_i)(x'_i - x_i)^T``.
    """
    diff = x1.unsqueeze(1) - x1.unsqueeze(0)  # (N, N, d): x_i - x_j
    sigma0 = torch.einsum("ij,ijk,ijl->kl", alpha, diff, diff)
    aug = x2 - x1
    sigma1 = torch.einsum("i,ik,il->kl", 1.0 - torch.diagonal(alpha), aug, aug)
    return sigma0, sigma1


def lemma2_max_abs_err(alpha: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> float:
    """``max |X - (Sigma0_hat - Sigma1_hat)|`` (Lemma 2, Eq. 7); zero up to rounding."""
    s0, s1 = sigma_hats(alpha, x1, x2)
    return float((x_matrix(alpha, x1, x2) - (s0 - s1)).abs().max())


def _product(mats: list[torch.Tensor], d: int) -> torch.Tensor:
    """``W_k ... W_1`` for ``mats = [W_1, ..., W_k]``; the (d, d) identity when empty."""
    if not mats:
        return torch.eye(d, dtype=F64)
    out = mats[0]
    for m in mats[1:]:
        out = m @ out
    return out


def chain_gradients(weights: list[torch.Tensor], g_product: torch.Tensor) -> list[torch.Tensor]:
    """Per-layer ``dL/dW_l = (W_L..W_{l+1})^T G (W_{l-1}..W_1)^T`` from ``G = dL/d(W_L..W_1)``.

    For L = 2 these are Eqs. 8 and 9 (``-dW1/dt = W2^T G``, ``-dW2/dt = G W1^T``).
    """
    d = g_product.shape[0]
    out = []
    for i in range(len(weights)):
        below = _product(weights[:i], d)
        above = _product(weights[i + 1 :], d)
        out.append(above.T @ g_product @ below.T)
    return out


def closed_form_gradients(
    weights: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    *,
    relu: bool = False,
    loss: str = "distance",
    temperature: float = 1.0,
) -> list[torch.Tensor | None]:
    """Closed-form ``dL/dW_l`` of the summed Eq. 2 loss, without autograd; None where none exists.

    * linear, ``distance``: ``G = -W X / tau`` (Eq. 5; Eq. 10 with W = W_2 W_1) and the chain of
      Lemma 3 (Eqs. 8, 9, extended to L layers);
    * linear, ``cosine``: Lemma 1's ``G = sum_i g_{z_i} x_i^T + g_{z'_i} x'_i^T`` with the closed-form
      embedding gradients of :func:`~dimcollapse.toy.loss.embedding_gradients`, then the chain;
    * ReLU: Lemma 1 applied to the last layer only, whose input is the last hidden activation h
      (for ``distance``: ``G_L = -W_L X_h / tau`` with X of Eq. 6 on h); earlier layers get None.

    ``weights`` (L, d, d); views (N, d); all float64.
    """
    mats = list(weights.unbind(0))
    big_l = len(mats)
    if relu and big_l > 1:
        z1, in1 = forward(mats, x1, relu=True)
        z2, in2 = forward(mats, x2, relu=True)
        g_last = _lemma1_gradient(mats[-1], in1[-1], in2[-1], z1, z2, loss, temperature)
        return [None] * (big_l - 1) + [g_last]
    p = _product(mats, x1.shape[1])
    g = _lemma1_gradient(p, x1, x2, x1 @ p.T, x2 @ p.T, loss, temperature)
    return list(chain_gradients(mats, g))


def _lemma1_gradient(
    w: torch.Tensor,
    in1: torch.Tensor,
    in2: torch.Tensor,
    z1: torch.Tensor,
    z2: torch.Tensor,
    loss: str,
    temperature: float,
) -> torch.Tensor:
    """``dL/dW`` for embeddings ``z = in @ W.T`` (Lemma 1): ``-W X / tau`` (Eq. 5) for the
    distance loss, ``sum_i g_{z_i} in_i^T + g_{z'_i} in'_i^T`` otherwise."""
    if loss == "distance":
        alpha = softmax_alphas(z1, z2, loss, temperature)
        return -w @ x_matrix(alpha, in1, in2) / temperature
    _, g1, g2 = embedding_gradients(z1, z2, loss, temperature)
    return g1.T @ in1 + g2.T @ in2


def autograd_gradients(
    weights: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    *,
    relu: bool = False,
    loss: str = "distance",
    temperature: float = 1.0,
) -> list[torch.Tensor]:
    """``dL/dW_l`` of the summed Eq. 2 loss by autograd through the reference implementation."""
    mats = [w.detach().clone().requires_grad_(True) for w in weights.unbind(0)]
    z1, _ = forward(mats, x1, relu=relu)
    z2, _ = forward(mats, x2, relu=relu)
    total = eq2_loss_sum(z1, z2, loss, temperature)
    return list(torch.autograd.grad(total, mats))


def gradient_rel_err(
    weights: torch.Tensor,
    x1: torch.Tensor,
    x2: torch.Tensor,
    *,
    relu: bool = False,
    loss: str = "distance",
    temperature: float = 1.0,
) -> tuple[float, int]:
    """Max over layers of ``|G_closed - G_autograd|_F / |G_autograd|_F``, and how many layers."""
    closed = closed_form_gradients(weights, x1, x2, relu=relu, loss=loss, temperature=temperature)
    auto = autograd_gradients(weights, x1, x2, relu=relu, loss=loss, temperature=temperature)
    errs = []
    for c, a in zip(closed, auto):
        if c is None:
            continue
        scale = float(a.norm())
        errs.append(float((c - a).norm()) / scale if scale > 0 else float((c - a).norm()))
    return max(errs), len(errs)


def alignment_matrices(weights: torch.Tensor | np.ndarray) -> np.ndarray:
    """(L-1, d, d) alignment matrices ``A_l = V_{l+1}^T U_l`` (section 5.3), ``W_l = U_l S_l V_l^T``.

    Singular vectors in descending order of singular value; only ``|A_l|`` is meaningful (signs of
    singular vector pairs are arbitrary).
    """
    w = torch.as_tensor(weights, dtype=F64)
    u, _, vh = torch.linalg.svd(w)
    return (vh[1:] @ u[:-1]).numpy()


def alignment_diag_mean(alignment: np.ndarray) -> float:
    """Mean of ``|diag(A_l)|`` over all adjacent pairs (1 when ``|A| = I``, Theorem 2)."""
    a = np.asarray(alignment)
    return float(np.mean(np.abs(np.diagonal(a, axis1=-2, axis2=-1))))


def alignment_weighted_diag_mean(weights: torch.Tensor | np.ndarray) -> float:
    """``sum_k w_k |A_l[k, k]| / sum_k w_k`` with ``w_k = sigma_l^k sigma_{l+1}^k``, over all l.

    Theorem 2 needs every singular value to grow without bound; under Eq. 2 only the leading
    ones grow, and those are the ones that align. Weighting by the strength of each pair reads
    the alignment of the directions that carry the embedding (1 when they are aligned).
    """
    w = torch.as_tensor(np.asarray(weights), dtype=F64)
    u, s, vh = torch.linalg.svd(w)
    a = (vh[1:] @ u[:-1]).abs().diagonal(dim1=-2, dim2=-1)
    wt = s[1:] * s[:-1]
    return float((wt * a).sum() / wt.sum())


def eq11_check(
    weights: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Theorem 3 (Eq. 11) at the given weights, for a linear net with the ``distance`` loss.

    The flow direction is ``dW_l/dt = -grad_{W_l}(L / N)`` on this batch (autograd). *Measured*
    ``d sigma_l^k / dt`` is the central finite difference of the singular values of ``W_l`` along
    it. *Predicted* is Eq. 11 extended to L layers (aligned chain)::

        d sigma_l^k / dt = sigma_l^k prod_{m != l} (sigma_m^k)^2 (v_1^k)^T X v_1^k / (N tau)

    which for L = 2 is Eq. 11. Returns (L, d) measured and predicted rates and
    ``|measured - predicted| / |measured|`` (Frobenius norms). Needs L >= 2.
    """
    mats = list(weights.unbind(0))
    n = x1.shape[0]
    grads = autograd_gradients(weights, x1, x2, loss="distance", temperature=temperature)
    measured = []
    for w, g in zip(mats, grads):
        flow = -g / n
        eps = 1e-6 * float(w.norm()) / max(float(flow.norm()), 1e-300)
        plus = torch.linalg.svdvals(w + eps * flow)
        minus = torch.linalg.svdvals(w - eps * flow)
        measured.append((plus - minus) / (2 * eps))
    meas = torch.stack(measured)
    svals = torch.stack([torch.linalg.svdvals(w) for w in mats])  # (L, d)
    p = _product(mats, x1.shape[1])
    alpha = softmax_alphas(x1 @ p.T, x2 @ p.T, "distance", temperature)
    xm = x_matrix(alpha, x1, x2)
    v1 = torch.linalg.svd(mats[0])[2].T  # columns v_1^k
    quad = torch.einsum("ik,ij,jk->k", v1, xm, v1) / (n * temperature)
    sq = svals**2
    pred = torch.stack(
        [svals[i] * torch.prod(torch.cat([sq[:i], sq[i + 1 :]]), dim=0) for i in range(len(mats))]
    )
    pred = pred * quad
    denom = float(meas.norm())
    err = float((meas - pred).norm()) / denom if denom > 0 else float("nan")
    return meas.numpy(), pred.numpy(), err


@dataclass
class ToyAnalytics:
    """The numbers that check the paper's lemmas and theorems on one trained toy model.

    ``x_eigenvalues``: descending eigenvalues of X (Eq. 6, a sum over one batch of N pairs) at the
    final weights, averaged over ``analysis_batches`` fresh batches; ``x_min_eigenvalue`` its
    smallest (negative means Theorem 1's strong-augmentation condition), and ``..._init`` the same
    at initialisation. ``lemma2_max_abs_err`` and ``gradient_rel_err``: worst of one batch at
    initialisation and one at the end; ``x_abs_max`` the size of X's entries there, for scale.
    ``alignment_diag_mean``: Theorem 2 at the end (L >= 2), ``..._init`` before training and
    ``alignment_weighted_diag_mean`` the same weighted by singular value pairs (see
    :func:`alignment_weighted_diag_mean`). ``eq11_rel_err``: Theorem 3 at the end (linear,
    L >= 2, ``distance`` loss).
    """

    x_eigenvalues: list[float]
    x_min_eigenvalue: float
    x_min_eigenvalue_init: float
    lemma2_max_abs_err: float
    x_abs_max: float
    gradient_rel_err: float
    gradient_layers_checked: int
    alignment_diag_mean: float | None
    alignment_diag_mean_init: float | None
    alignment_weighted_diag_mean: float | None
    eq11_rel_err: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _x_mean(
    weights: torch.Tensor, config: ToyConfig, gen: torch.Generator, factor: torch.Tensor | None
) -> np.ndarray:
    d = config.dim
    noise = torch.as_tensor(config.noise_scales(), dtype=F64)
    total = torch.zeros(d, d, dtype=F64)
    for _ in range(config.analysis_batches):
        x = sample_inputs(config.batch_size, d, gen, factor)
        x1, x2 = make_views(x, noise, gen)
        z1, _ = forward(weights, x1, relu=config.relu)
        z2, _ = forward(weights, x2, relu=config.relu)
        total += x_matrix(softmax_alphas(z1, z2, config.loss, config.temperature), x1, x2)
    mean = total / config.analysis_batches
    return np.sort(np.linalg.eigvalsh(0.5 * (mean + mean.T).numpy()))[::-1].copy()


def analyze(
    config: ToyConfig, weights_init: np.ndarray | torch.Tensor, weights: np.ndarray | torch.Tensor
) -> ToyAnalytics:
    """All checks for one run, in float64, on fresh batches from the run's analysis stream.

    ``weights_init`` and ``weights`` are (L, d, d): before and after training.
    """
    gen = make_generator(config.seed, STREAM_ANALYSIS)
    factor_np = config.input_factor()
    factor = None if factor_np is None else torch.as_tensor(factor_np, dtype=F64)
    noise = torch.as_tensor(config.noise_scales(), dtype=F64)
    w0 = torch.as_tensor(np.asarray(weights_init), dtype=F64)
    w1 = torch.as_tensor(np.asarray(weights), dtype=F64)
    kw = {"relu": config.relu, "loss": config.loss, "temperature": config.temperature}

    lemma2, xmax, grad_err, n_checked = 0.0, 0.0, 0.0, 0
    batches = {}
    for tag, w in (("init", w0), ("final", w1)):
        x = sample_inputs(config.batch_size, config.dim, gen, factor)
        x1, x2 = make_views(x, noise, gen)
        batches[tag] = (x1, x2)
        z1, _ = forward(w, x1, relu=config.relu)
        z2, _ = forward(w, x2, relu=config.relu)
        alpha = softmax_alphas(z1, z2, config.loss, config.temperature)
        lemma2 = max(lemma2, lemma2_max_abs_err(alpha, x1, x2))
        xmax = max(xmax, float(x_matrix(alpha, x1, x2).abs().max()))
        err, n_checked = gradient_rel_err(w, x1, x2, **kw)
        grad_err = max(grad_err, err)

    ev_init = _x_mean(w0, config, gen, factor)
    ev = _x_mean(w1, config, gen, factor)

    align = align0 = align_w = eq11 = None
    if config.layers >= 2:
        align = alignment_diag_mean(alignment_matrices(w1))
        align0 = alignment_diag_mean(alignment_matrices(w0))
        align_w = alignment_weighted_diag_mean(w1)
        if not config.relu and config.loss == "distance":
            x1, x2 = batches["final"]
            eq11 = eq11_check(w1, x1, x2, config.temperature)[2]
    return ToyAnalytics(
        x_eigenvalues=ev.tolist(),
        x_min_eigenvalue=float(ev[-1]),
        x_min_eigenvalue_init=float(ev_init[-1]),
        lemma2_max_abs_err=lemma2,
        x_abs_max=xmax,
        gradient_rel_err=grad_err,
        gradient_layers_checked=n_checked,
        alignment_diag_mean=align,
        alignment_diag_mean_init=align0,
        alignment_weighted_diag_mean=align_w,
        eq11_rel_err=eq11,
    )
