"""Per-epoch collapse measurements on held-out images: the covariance spectra (Eq. 1) of the
representation r (Figs. 7b, 9) and the embedding z (Fig. 2), RankMe, collapsed dimensions, and
the online probe's accuracy."""

from __future__ import annotations

from typing import Any

import torch

from dimcollapse.data.image_dataset import ImageDataset
from dimcollapse.data.loaders import build_eval_loader
from dimcollapse.model import ContrastiveModel
from dimcollapse.runtime import autocast
from dimcollapse.spectrum import SpectrumAccumulator


class HeldOutNotFinite(Exception):
    """The model's held-out representation or embedding holds NaN or infinite values (a
    divergence the training losses did not show); ``args[0]``: how many values."""


class HeldOutMonitor:
    """Measures a model on a fixed held-out set (rank 0 only; no set: no measurements)."""

    def __init__(self, dataset: ImageDataset | None, batch_size: int, device: torch.device):
        self.loader = (
            build_eval_loader(dataset, batch_size=batch_size, device=device)
            if dataset is not None
            else None
        )

    @torch.no_grad()
    def measure(
        self, model: ContrastiveModel, precision: str, device: torch.device, channels_last: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(metrics, spectra): the metrics line's collapse fields and both spectra."""
        if self.loader is None:
            return {}, {}
        was_training = model.training
        model.eval()
        rep = SpectrumAccumulator(device=device)
        emb = SpectrumAccumulator(device=device)
        correct = torch.zeros((), device=device)
        total = 0
        for x, y in self.loader:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(precision, device):
                r = model.encode(x)
                z = model.head(r)
                logits = model.online_probe(r)
            rep.update(r.float())
            emb.update(z.float())
            correct += (logits.argmax(dim=1) == y).sum()
            total += y.numel()
        model.train(was_training)
        if rep.nonfinite or emb.nonfinite:
            raise HeldOutNotFinite(rep.nonfinite + emb.nonfinite)
        rs, es = rep.summary(), emb.summary()
        metrics = {
            "representation_rankme": rs.rankme,
            "representation_collapsed_dims": rs.collapsed_dims,
            "representation_dead_dims": len(rs.dead_dims),
            "representation_cliff_decades": rs.cliff_decades,
            "representation_entropy_rank": rs.entropy_rank,
            "representation_dim": rs.dim,
            "embedding_rankme": es.rankme,
            "embedding_collapsed_dims": es.collapsed_dims,
            "embedding_dead_dims": len(es.dead_dims),
            "embedding_cliff_decades": es.cliff_decades,
            "embedding_dim": es.dim,
            "online_probe_top1": float(correct) / max(total, 1),
        }
        spectra = {"representation": rs.singular_values, "embedding": es.singular_values}
        return metrics, spectra
