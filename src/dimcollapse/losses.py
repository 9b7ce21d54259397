"""The training losses as pure functions of tensors, and the table that builds them.

:data:`LOSSES` maps a loss's name (what a method's recipe, :data:`dimcollapse.methods.RECIPES`,
names) to a factory: ``LOSSES[name](**options) -> loss_fn`` with ``loss_fn(z1, z2) -> scalar``
for the ``(B, D)`` embeddings of the two views. :func:`build_recipe` resolves a config's method
into its recipe, its checked options and that ``loss_fn``; ``train`` and ``bench`` both step
with it. Every loss works in one process and under ``torchrun``, through
:mod:`dimcollapse.distributed`'s helpers (which do nothing in one process).

InfoNCE (contrastive), VICReg and Barlow Twins (non-contrastive) are here.

InfoNCE (van den Oord et al., 2018) as the paper uses it. Section 4.1, Eq. 2, writes it with
distances between unnormalised embeddings,

    L = - sum_i log  exp(-|z_i - z'_i|^2 / 2)
                     / ( sum_{j != i} exp(-|z_i - z_j|^2 / 2) + exp(-|z_i - z'_i|^2 / 2) ),

and notes that for unit vectors ``-|a - b|^2 / 2 = a.b - 1``, so the distance can be replaced by
the inner product. Section 6.2 (DirectCLR) applies it to normalised vectors ``z^ = z / |z|``,

    L = - sum_i log  exp(z^_i . z'^_j=i / tau) / sum_j exp(z^_i . z'^_j / tau),

where the paper's formula leaves out the temperature; its code divides by ``tau = 0.1``.
:func:`info_nce` computes this inner-product form. With ``normalize=False`` the logits are raw inner products
``z_i . z'_j / tau``: since ``-|a - b|^2 / 2 = a.b - |a|^2 / 2 - |b|^2 / 2`` and the anchor's own
norm cancels in the softmax, this matches Eq. 2 only when all keys have the same norm.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dimcollapse import distributed
from dimcollapse.config import TrainConfig
from dimcollapse.errors import UsageError
from dimcollapse.methods import Recipe, get_recipe

LOSS_CONVENTIONS = ("symmetric", "ntxent")


def info_nce(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,
    convention: str = "symmetric",
    normalize: bool = True,
) -> Tensor:
    """InfoNCE between two views; returns a scalar averaged over this process's anchors.

    Args:
        z1, z2: ``(B, D)`` embeddings of the two views; row ``i`` of both comes from image ``i``.
        temperature: ``tau > 0``; logits are similarities divided by it.
        convention: how negatives are formed.

            * ``"symmetric"`` (the paper's code): logits ``z1 @ z2_all.T / tau`` of shape
              ``(B, W*B)``, the positive on the matching index; cross-entropy averaged over the
              two directions, ``0.5 * CE(z1 . z2_all) + 0.5 * CE(z2 . z1_all)``. Each anchor sees
              the ``W*B - 1`` other images of the *other* view as negatives.
            * ``"ntxent"`` (SimCLR's NT-Xent): the ``2B`` rows of ``cat(z1, z2)`` are anchors,
              each against all ``2*W*B`` keys of both views except itself: one positive (its
              other view) and ``2*W*B - 2`` negatives, averaged over the ``2B`` anchors.
        normalize: L2-normalise rows first (section 6.2 and the paper's code); ``False`` keeps
            raw inner products, as in the toy models of sections 4-5.

    Here ``W`` is the number of processes. Under ``torchrun`` the keys are gathered from every
    process with :func:`dimcollapse.distributed.all_gather_with_grad`, the positive of local row
    ``i`` sits at ``rank * B + i`` among them (``ntxent``: at ``rank * 2B + (i + B) mod 2B``,
    this process's own rows masked at ``rank * 2B + i``), and the loss is averaged over local
    anchors, so DDP's gradient averaging yields the gradient of the global-batch mean. In one
    process it is exactly the plain formula.

    The similarities and the cross-entropy are computed in float32 (float64 if given float64),
    with autocast disabled, since logits up to ``1 / tau`` lose precision in half precision.
    """
    tau = _check_inputs(z1, z2, temperature, convention)
    dtype = torch.float64 if z1.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z1 = z1.to(dtype)
        z2 = z2.to(dtype)
        if normalize:
            z1 = F.normalize(z1, dim=1)
            z2 = F.normalize(z2, dim=1)
        if convention == "symmetric":
            return _symmetric(z1, z2, tau)
        return _ntxent(z1, z2, tau)


def _check_inputs(z1: Tensor, z2: Tensor, temperature: float, convention: str) -> float:
    """Refuse a bad convention, temperature or shape; return the temperature as a float."""
    if convention not in LOSS_CONVENTIONS:
        raise UsageError(
            f"unknown loss convention {convention!r}; choose one of {', '.join(LOSS_CONVENTIONS)}"
        )
    try:
        tau = float(temperature)
    except (TypeError, ValueError):
        tau = math.nan
    if not math.isfinite(tau) or tau <= 0:
        raise UsageError(f"temperature must be a finite number > 0, got {temperature!r}")
    _check_pair("info_nce", z1, z2, min_rows=1)
    return tau


def _symmetric(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    batch = z1.shape[0]
    k1 = distributed.all_gather_with_grad(z1)  # (W*B, D)
    k2 = distributed.all_gather_with_grad(z2)  # (W*B, D)
    labels = torch.arange(batch, device=z1.device) + distributed.rank() * batch
    loss_12 = F.cross_entropy(z1 @ k2.T / temperature, labels)  # logits (B, W*B)
    loss_21 = F.cross_entropy(z2 @ k1.T / temperature, labels)
    return 0.5 * loss_12 + 0.5 * loss_21


def _ntxent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    batch = z1.shape[0]
    anchors = torch.cat([z1, z2], dim=0)  # (2B, D): rows i and B + i are the two views
    # Gathered layout: [z1_r0, z2_r0, z1_r1, z2_r1, ...], so this process's anchors are the
    # contiguous block starting at rank * 2B, in the same order as ``anchors``.
    keys = distributed.all_gather_with_grad(anchors)  # (W*2B, D)
    logits = anchors @ keys.T / temperature  # (2B, W*2B)
    local = torch.arange(2 * batch, device=z1.device)
    offset = distributed.rank() * 2 * batch
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[local, local + offset] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (local + batch) % (2 * batch) + offset  # i <-> B + i
    return F.cross_entropy(logits, positives)


def vicreg(
    z1: Tensor,
    z2: Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    std_target: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    """VICReg's loss (Bardes et al., ICLR 2022, Eqs. 1-6) between two views; a scalar.

    For ``z1 = Z``, ``z2 = Z'`` of shape ``(B, D)``::

        s(Z, Z') = mean_{i, k} (z_ik - z'_ik)^2                       (invariance, Eq. 5)
        v(Z)     = mean_k max(0, gamma - sqrt(Var(z_:k) + eps))        (variance, Eq. 1)
        C(Z)     = sum_i (z_i - zbar)(z_i - zbar)^T / (n - 1)          (covariance, Eq. 3)
        c(Z)     = sum_{k != l} C(Z)_kl^2 / D                          (Eq. 4)
        L = sim_coeff s(Z, Z') + std_coeff (v(Z) + v(Z')) / 2 + cov_coeff (c(Z) + c(Z'))

    with ``gamma = std_target`` and the unbiased variance, as the authors' code computes it
    (``s`` is a mean over the ``B x D`` entries there, Eq. 5 a mean over rows; the variance
    terms are averaged over the two views). The papers' coefficients are the defaults: 25, 25,
    1, gamma 1, eps 1e-4.

    Under ``torchrun``, ``s`` is this process's mean and ``v``, ``c`` are computed on the
    embeddings gathered from every process (:func:`dimcollapse.distributed.all_gather_with_grad`,
    the authors' ``FullGatherLayer``), ``n = W * B``; DDP's gradient averaging then gives the
    gradient of the global-batch loss. Computed in float32 (float64 if given), autocast off.
    """
    with _checked_in_full_precision("vicreg", z1, z2) as (z1, z2):
        invariance = F.mse_loss(z1, z2)
        x = distributed.all_gather_with_grad(z1)  # (W*B, D)
        y = distributed.all_gather_with_grad(z2)
        x = x - x.mean(dim=0)
        y = y - y.mean(dim=0)
        std_x = torch.sqrt(x.var(dim=0) + eps)
        std_y = torch.sqrt(y.var(dim=0) + eps)
        variance = 0.5 * F.relu(std_target - std_x).mean() + 0.5 * F.relu(std_target - std_y).mean()
        covariance = _off_diagonal_square_sum(x.T @ x / (x.shape[0] - 1)) / x.shape[1]
        covariance = covariance + _off_diagonal_square_sum(y.T @ y / (y.shape[0] - 1)) / y.shape[1]
        return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


def barlow_twins(z1: Tensor, z2: Tensor, lambd: float = 5e-3, bn_eps: float = 1e-5) -> Tensor:
    """Barlow Twins' loss (Zbontar et al., ICML 2021, Eqs. 1-2) between two views; a scalar.

    For ``z1 = Z^A``, ``z2 = Z^B`` of shape ``(B, D)``, each dimension is batch-normalised
    (``zn = (z - mean) / sqrt(var + bn_eps)``, the biased variance: the authors' affine-free
    ``BatchNorm1d`` in training mode), then::

        C_kl = sum_b zn^A_bk zn^B_bl / n                           (cross-correlation, Eq. 2)
        L    = sum_k (1 - C_kk)^2 + lambd sum_{k != l} C_kl^2       (Eq. 1)

    ``lambd`` 5e-3 as in the paper (its code uses 0.0051). Under ``torchrun``, the batch
    statistics and ``C`` are summed over processes
    (:func:`dimcollapse.distributed.all_reduce_with_grad`; the authors all-reduce ``C`` and use
    SyncBatchNorm), ``n = W * B``, so every process computes the global-batch loss, and DDP's
    gradient averaging gives its gradient. Computed in float32 (float64 if given), autocast off.
    """
    with _checked_in_full_precision("barlow_twins", z1, z2) as (z1, z2):
        n = z1.shape[0] * distributed.world_size()
        c = (
            distributed.all_reduce_with_grad(
                _batch_normalized(z1, n, bn_eps).T @ _batch_normalized(z2, n, bn_eps)
            )
            / n
        )  # (D, D)
        on_diagonal = (1 - torch.diagonal(c)).pow(2).sum()
        return on_diagonal + lambd * _off_diagonal_square_sum(c)


def _batch_normalized(z: Tensor, n: int, eps: float) -> Tensor:
    """``(z - mean) / sqrt(var + eps)`` per column, over the ``n`` rows of every process."""
    mean = distributed.all_reduce_with_grad(z.sum(dim=0)) / n
    centred = z - mean
    var = distributed.all_reduce_with_grad(centred.pow(2).sum(dim=0)) / n
    return centred / torch.sqrt(var + eps)


def _off_diagonal_square_sum(m: Tensor) -> Tensor:
    """``sum_{k != l} m_kl^2`` of a square matrix."""
    return m.pow(2).sum() - torch.diagonal(m).pow(2).sum()


@contextlib.contextmanager
def _checked_in_full_precision(
    name: str, z1: Tensor, z2: Tensor
) -> Iterator[tuple[Tensor, Tensor]]:
    """Check the pair (:func:`_check_pair`, at least 2 rows: the batch statistics), then yield
    it in float32 (float64 if given) with autocast off for the body."""
    _check_pair(name, z1, z2, min_rows=2)
    dtype = torch.float64 if z1.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=z1.device.type, enabled=False):
        yield z1.to(dtype), z2.to(dtype)


def _check_pair(name: str, z1: Tensor, z2: Tensor, min_rows: int) -> None:
    """Refuse two embeddings that are not ``(B, D)`` of one shape with ``B >= min_rows``."""
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise UsageError(
            f"{name} expects two (B, D) tensors of the same shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if z1.shape[0] < min_rows:
        rows = "one row" if min_rows == 1 else f"{min_rows} rows"
        raise UsageError(f"{name} needs at least {rows} per view, got {z1.shape[0]}")


#: ``loss_fn(z1, z2) -> scalar`` for the ``(B, D)`` embeddings of the two views.
LossFn = Callable[[Tensor, Tensor], Tensor]
#: ``factory(**options) -> loss_fn``: the options are a recipe's, resolved and checked.
LossFactory = Callable[..., LossFn]


def with_options(loss: Callable[..., Tensor]) -> LossFactory:
    """The factory of a loss function whose keyword arguments are its options:
    ``factory(**options)`` is ``loss`` with them bound."""

    def factory(**options: Any) -> LossFn:
        return functools.partial(loss, **options)

    return factory


#: Every loss's factory, by the name a recipe's ``loss`` gives.
LOSSES: dict[str, LossFactory] = {
    "info_nce": with_options(info_nce),
    "vicreg": with_options(vicreg),
    "barlow_twins": with_options(barlow_twins),
}


@dataclass(frozen=True)
class BuiltRecipe:
    """A method made ready to train: its recipe, its resolved options, its ``loss_fn``."""

    recipe: Recipe
    options: dict[str, Any]
    loss_fn: LossFn

    def describe(self) -> str:
        """One line: the loss and its options (``"info_nce: temperature 0.1, ..."``)."""
        values = ", ".join(
            f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.options.items()
        )
        return f"{self.recipe.loss}: {values}" if values else self.recipe.loss


def build_recipe(cfg: TrainConfig) -> BuiltRecipe:
    """The recipe of ``cfg.method``, its options (``cfg.method_options``, else the config fields
    that carry them, else their defaults; checked) and its loss from :data:`LOSSES`.

    UsageError for an unknown method, loss or option, or an option's bad value.
    """
    try:
        recipe = get_recipe(cfg.method)
        options = recipe.resolve_options(cfg.to_dict(), cfg.method_options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    factory = LOSSES.get(recipe.loss)
    if factory is None:
        raise UsageError(
            f"method {recipe.name}: unknown loss {recipe.loss!r}; choose one of {', '.join(LOSSES)}"
        )
    return BuiltRecipe(recipe, options, factory(**options))
