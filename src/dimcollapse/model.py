"""The pretraining model: backbone -> representation r, head -> embedding z, online probe on r.

The loss is not computed here (see :mod:`dimcollapse.losses`): ``forward`` only maps the two
views to what the loss and the online probe need, in one call, so one DDP forward covers both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dimcollapse.backbones import build_backbone
from dimcollapse.projectors import Head, build_head


@dataclass
class ModelSpec:
    """What is needed to rebuild a model from a checkpoint, without the data."""

    method: str
    backbone: str
    width: float
    in_channels: int
    small_stem: bool
    num_classes: int
    d0: int | None = None
    proj_hidden: int | None = None
    proj_out: int | None = None
    seed: int = 0
    diagonal_init: str = "ones"
    #: one of ``backbones.STEMS``; None (checkpoints before it existed): what small_stem selects
    stem: str | None = None


class ContrastiveModel(nn.Module):
    """Backbone, head and online linear probe.

    ``encode(x)``: (B, C, H, W) -> r (B, rep_dim), the representation (Figs. 7b, 9).
    ``forward(v1, v2)``: the two views -> ``(r1, z1, r2, z2, probe_logits)`` where z = head(r)
    is the embedding the loss sees (Fig. 2) and the probe reads ``r1.detach()``, as the paper's
    code does (its gradient never reaches the backbone).
    """

    def __init__(self, backbone: nn.Module, rep_dim: int, head: Head, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.rep_dim = rep_dim
        self.head = head
        self.online_probe = nn.Linear(rep_dim, num_classes)

    def encode(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def forward(self, v1: Tensor, v2: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        r1 = self.backbone(v1)
        r2 = self.backbone(v2)
        z1, z2 = self.head(r1), self.head(r2)
        logits = self.online_probe(r1.detach())
        return r1, z1, r2, z2, logits


def build_model(spec: ModelSpec) -> ContrastiveModel:
    """Build the model of ``spec``; random heads (fixed-lowrank, random diagonal) draw from
    ``spec.seed``."""
    backbone, rep_dim = build_backbone(
        spec.backbone,
        in_channels=spec.in_channels,
        small_images=spec.small_stem,
        stem=spec.stem,
        width=spec.width,
    )
    gen = torch.Generator().manual_seed(spec.seed)
    head = build_head(
        spec.method,
        rep_dim,
        d0=spec.d0,
        hidden_dim=spec.proj_hidden,
        out_dim=spec.proj_out,
        diagonal_init=spec.diagonal_init,
        generator=gen,
    )
    return ContrastiveModel(backbone, rep_dim, head, spec.num_classes)
