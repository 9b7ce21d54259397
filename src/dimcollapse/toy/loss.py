"""The toy model: bias-free linear layers, Gaussian inputs, additive-noise views, InfoNCE of Eq. 2.

Shapes: inputs and views are ``(..., N, d)``; a stack of weights is ``(..., L, d, d)`` with
``W[..., 0]`` the first layer, applied as ``h -> h @ W^T`` (so ``z = W_L ... W_1 x``).

Loss conventions (all fixed here and used everywhere in :mod:`dimcollapse.toy`):

* ``distance`` (Eq. 2, with a temperature ``tau``; the paper's equation is ``tau = 1``)::

      s_ij = -|z_i - z_j|^2 / (2 tau)  (j != i),     s_ii = -|z_i - z'_i|^2 / (2 tau)
      L    = sum_i [ -s_ii + log sum_j exp(s_ij) ]

  Negatives are the *same-branch* embeddings z_j, exactly as Eq. 2 is written (the paper's own
  code instead uses the other view and unnormalised dot products; that is a different loss).
* ``cosine``: the same with ``s_ij = zh_i^T zh_j / tau``, ``s_ii = zh_i^T zh'_i / tau`` on
  L2-normalised ``zh = z / |z|`` (section 4.1: for unit vectors the negative half squared distance
  equals the inner product up to a constant).

``alpha = softmax_j(s_ij)`` row by row, with the positive pair on the diagonal, so every row of
``alpha`` sums to one (Eq. 4's ``alpha_ii`` must carry the ``1/Z_i`` for ``sum_j alpha_ij = 1`` to
hold). Training minimises the *mean* ``L / N`` (like the paper's code, so a learning rate does not
depend on the batch size); the analytics use the *sum* ``L`` of Eq. 2.
"""

from __future__ import annotations

import numpy as np
import torch

from dimcollapse.toy.config import ToyConfig

#: Independent random streams derived from one seed.
STREAM_DATA, STREAM_INIT, STREAM_EVAL, STREAM_ANALYSIS = 0, 1, 2, 3

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_generator(seed: int, stream: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for one of the streams of ``seed`` (no global RNG state)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, stream]).generate_state(
        2, dtype=np.uint32
    )
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def init_weights(config: ToyConfig, generator: torch.Generator) -> torch.Tensor:
    """(L, d, d) float64 initial weights, each multiplied by ``config.init_scale``.

    ``random``: i.i.d. U(-1/sqrt(d), 1/sqrt(d)) entries (PyTorch's ``nn.Linear`` default, as the
    paper's case-1 code). ``spectral``: ``U diag(exp(-decay k)) V^T``, k = 0..d-1, with U and V
    Haar-random orthogonal (QR of a Gaussian matrix, signs fixed), so the singular values are
    non-degenerate (the paper's case-2 code draws U, V from the SVD of a uniform matrix).
    ``orthogonal``: a Haar-random orthogonal matrix (every singular value 1).
    """
    d, n = config.dim, config.layers
    if config.init == "random":
        bound = 1.0 / np.sqrt(d)
        w = (torch.rand(n, d, d, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return w * config.init_scale
    if config.init == "orthogonal":
        s = torch.ones(d, dtype=torch.float64)
    else:
        s = torch.exp(-config.init_decay * torch.arange(d, dtype=torch.float64))
    mats = []
    for _ in range(n):
        u = _haar_orthogonal(d, generator)
        v = _haar_orthogonal(d, generator)
        mats.append((u * s) @ v.T)
    return torch.stack(mats) * config.init_scale


def _haar_orthogonal(d: int, generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    sign = torch.sign(torch.diagonal(r))
    sign[sign == 0] = 1
    return q * sign


def sample_inputs(
    n: int,
    d: int,
    generator: torch.Generator,
    factor: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """(n, d) inputs ``x ~ N(0, Sigma_x)``, ``x = F e`` with ``F F^T = Sigma_x`` (identity if None)."""
    e = torch.randn(n, d, generator=generator, dtype=dtype)
    return e if factor is None else e @ factor.to(dtype).T


def make_views(
    x: torch.Tensor, noise_scales: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views ``x + n1``, ``x + n2`` of (N, d) inputs, ``n ~ N(0, diag(noise_scales^2))``."""
    eps = torch.randn(2, *x.shape, generator=generator, dtype=x.dtype)
    eps = eps * noise_scales.to(x.dtype)
    return x + eps[0], x + eps[1]


def forward(
    weights: torch.Tensor | list[torch.Tensor], x: torch.Tensor, relu: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``z = W_L s(... s(W_1 x))`` for (..., N, d) ``x``; returns ``z`` and the inputs of each layer.

    ``weights`` is an (L, d, d) tensor or a list of L (d, d) tensors (autograd leaves are fine).
    The returned list holds ``h_0 = x, h_1, ..., h_{L-1}``: the input that each layer multiplies.
    """
    layers = list(weights) if isinstance(weights, list) else list(weights.unbind(0))
    h = x
    inputs = []
    for i, w in enumerate(layers):
        inputs.append(h)
        h = h @ w.T
        if relu and i < len(layers) - 1:
            h = torch.relu(h)
    return h, inputs


def logits(
    z1: torch.Tensor, z2: torch.Tensor, loss: str = "distance", temperature: float = 1.0
) -> torch.Tensor:
    """(..., N, N) similarities of Eq. 2: ``s_ij`` (j != i, same branch) and ``s_ii`` (positive).

    Differentiable (used for the autograd reference); (..., N, d) embeddings of the two views.
    """
    if loss == "cosine":
        a = torch.nn.functional.normalize(z1, dim=-1)
        b = torch.nn.functional.normalize(z2, dim=-1)
        sim = a @ a.mT
        pos = (a * b).sum(-1)
    else:
        diff = z1.unsqueeze(-2) - z1.unsqueeze(-3)
        sim = -0.5 * (diff * diff).sum(-1)
        d12 = z1 - z2
        pos = -0.5 * (d12 * d12).sum(-1)
    n = z1.shape[-2]
    eye = torch.eye(n, dtype=torch.bool, device=z1.device)
    s = torch.where(eye, pos.unsqueeze(-1), sim)
    return s / temperature


def eq2_loss_sum(
    z1: torch.Tensor, z2: torch.Tensor, loss: str = "distance", temperature: float = 1.0
) -> torch.Tensor:
    """Eq. 2 summed over the N pairs, ``L = sum_i [-s_ii + log sum_j exp(s_ij)]``, shape ``(...)``
    for ``(..., N, d)`` embeddings; a differentiable reference.

    Not :func:`dimcollapse.losses.info_nce`: its negatives are the same branch's embeddings
    ``z_j`` (as Eq. 2 is written), it is summed rather than averaged, and ``distance`` uses
    squared distances of unnormalised embeddings (see the module's conventions)."""
    s = logits(z1, z2, loss, temperature)
    return (torch.logsumexp(s, dim=-1) - torch.diagonal(s, dim1=-2, dim2=-1)).sum(-1)


def embedding_gradients(
    z1: torch.Tensor,
    z2: torch.Tensor,
    loss: str = "distance",
    temperature: float | torch.Tensor = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form gradients of the summed Eq. 2 loss on the embeddings (Eq. 4), no autograd.

    Args: (..., N, d) embeddings ``z1`` (the branch whose same-branch negatives enter Eq. 2) and
    ``z2`` (the positives); ``temperature`` a float or a tensor broadcastable to (..., 1, 1).
    Returns ``(loss, g1, g2)``: the (...) summed loss and the (..., N, d) gradients::

        g_{z_i}  = [sum_{j!=i} a_ij (z_j - z'_i) + sum_{j!=i} a_ji (z_j - z_i)] / tau   (Eq. 4)
        g_{z'_i} = sum_{j!=i} a_ij (z'_i - z_i) / tau

    For ``cosine`` these formulas hold for the normalised embeddings with the self terms dropped
    (they are radial) and are then projected: ``g_z = (I - zh zh^T) g_zh / |z|``. The softmax is
    computed in place with each row's constant ``-|z_i|^2 / 2`` left out (it cancels).
    """
    if loss == "cosine":
        # clamped as torch.nn.functional.normalize does, so an all-zero embedding (possible
        # behind a ReLU) gives zeros rather than NaN
        n1 = z1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        n2 = z2.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        u1, u2 = z1 / n1, z2 / n2
        s = u1 @ u1.mT
        pos = (u1 * u2).sum(-1)
    else:
        u1, u2 = z1, z2
        sq = (z1 * z1).sum(-1)
        s = z1 @ z1.mT - 0.5 * sq.unsqueeze(-2)  # -|z_i - z_j|^2 / 2 + |z_i|^2 / 2
        d12 = z1 - z2
        pos = 0.5 * (sq - (d12 * d12).sum(-1))
    diag = torch.diagonal(s, dim1=-2, dim2=-1)
    diag.copy_(pos)
    if not (isinstance(temperature, float | int) and temperature == 1):
        s.div_(temperature)
    s_pos = diag.clone()
    top = s.amax(dim=-1, keepdim=True)
    s.sub_(top).clamp_(min=_EXP_FLOOR.get(s.dtype, -78.0)).exp_()
    total = s.sum(dim=-1, keepdim=True)
    a = s.div_(total)
    diag.zero_()  # a: the alphas with j != i
    loss_sum = ((top + torch.log(total)).squeeze(-1) - s_pos).sum(-1)
    rs = a.sum(-1, keepdim=True)  # 1 - alpha_ii, summed off the diagonal for accuracy
    if loss == "cosine":
        gh1 = (a @ u1 + a.mT @ u1 - rs * u2) / temperature
        gh2 = -(rs * u1) / temperature
        g1 = (gh1 - u1 * (u1 * gh1).sum(-1, keepdim=True)) / n1
        g2 = (gh2 - u2 * (u2 * gh2).sum(-1, keepdim=True)) / n2
    else:
        cs = a.sum(-2).unsqueeze(-1)  # sum_{j != i} a_ji
        g1 = (a @ z1 + a.mT @ z1 - rs * z2 - cs * z1) / temperature
        g2 = (rs * (z2 - z1)) / temperature
    return loss_sum, g1, g2


#: Shifted logits are clamped here before ``exp`` so that no weight is a subnormal number (those
#: make CPU arithmetic 10-50x slower once training has spread the embeddings out). The weights
#: dropped are below 1e-260 (float64) or 1e-34 (float32) of the largest one in their row.
_EXP_FLOOR = {torch.float64: -600.0, torch.float32: -78.0}
