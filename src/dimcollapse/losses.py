"""Contrastive losses as pure functions of tensors.

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

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from dimcollapse import distributed
from dimcollapse.errors import UsageError

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
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise UsageError(
            f"info_nce expects two (B, D) tensors of the same shape, got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}"
        )
    if z1.shape[0] == 0:
        raise UsageError("info_nce needs at least one row per view")
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
