"""One trained toy model: its tracked history, the analytics, and its JSON record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dimcollapse.spectrum import DEFAULT_REL_TOL, collapsed_dims
from dimcollapse.toy.analytics import ToyAnalytics
from dimcollapse.toy.config import ToyConfig


@dataclass
class ToyResult:
    """One trained toy model and its tracked history.

    Shapes (T tracked steps, L layers, d dimensions): ``steps`` (T,) the step of each record,
    0 = initialisation, the last = ``config.steps``; ``loss`` (T,) the mean per-pair training loss
    over the updates since the previous record (at step 0: the first batch, before any update);
    ``weight_singular_values`` (T, L, d) descending singular values of each W_l;
    ``embedding_singular_values`` (T, d) the Eq. 1 covariance spectrum of the embeddings of
    ``eval_samples`` fresh clean inputs; ``alignment`` (T, L-1, d, d) the matrices
    ``A_l = V_{l+1}^T U_l`` (None for L = 1); ``weights_init``, ``weights`` (L, d, d) float64.
    """

    config: ToyConfig
    steps: np.ndarray
    loss: np.ndarray
    weight_singular_values: np.ndarray
    embedding_singular_values: np.ndarray
    alignment: np.ndarray | None
    weights_init: np.ndarray
    weights: np.ndarray
    analytics: ToyAnalytics
    elapsed_s: float = 0.0
    labels: dict[str, Any] = field(default_factory=dict)

    def collapsed_dims(self, rel_tol: float = DEFAULT_REL_TOL) -> int:
        """Collapsed embedding dimensions at the end (:func:`dimcollapse.spectrum.collapsed_dims`)."""
        return collapsed_dims(self.embedding_singular_values[-1], rel_tol)

    def collapsed_dims_history(self, rel_tol: float = DEFAULT_REL_TOL) -> np.ndarray:
        """(T,) collapsed embedding dimensions at every record."""
        return np.array([collapsed_dims(s, rel_tol) for s in self.embedding_singular_values])

    def summary(self, rel_tol: float = DEFAULT_REL_TOL, **extra: Any) -> dict[str, Any]:
        """A JSON-ready record of the run (the ``--json`` line), ``extra`` keys first."""
        cfg = self.config
        a = self.analytics
        rec: dict[str, Any] = dict(extra)
        rec.update(self.labels)
        rec.update(
            layers=cfg.layers,
            relu=cfg.relu,
            noise=cfg.noise,
            noise_dims=cfg.dim if cfg.noise_dims is None else cfg.noise_dims,
            noise_scales=cfg.noise_scales().tolist(),
            dim=cfg.dim,
            batch_size=cfg.batch_size,
            steps=cfg.steps,
            lr=cfg.lr,
            loss=cfg.loss,
            temperature=cfg.temperature,
            init=cfg.init,
            seed=cfg.seed,
            rel_tol=rel_tol,
            collapsed_dims=self.collapsed_dims(rel_tol),
            collapsed_dims_init=int(collapsed_dims(self.embedding_singular_values[0], rel_tol)),
            embedding_singular_values=self.embedding_singular_values[-1].tolist(),
            weight_singular_values=self.weight_singular_values[-1].tolist(),
            final_loss=float(self.loss[-1]),
            x_min_eigenvalue=a.x_min_eigenvalue,
            x_min_eigenvalue_init=a.x_min_eigenvalue_init,
            x_eigenvalues=a.x_eigenvalues,
            lemma2_max_abs_err=a.lemma2_max_abs_err,
            x_abs_max=a.x_abs_max,
            gradient_rel_err=a.gradient_rel_err,
            gradient_layers_checked=a.gradient_layers_checked,
        )
        if a.alignment_diag_mean is not None:
            rec["alignment_diag_mean"] = a.alignment_diag_mean
            rec["alignment_diag_mean_init"] = a.alignment_diag_mean_init
            rec["alignment_weighted_diag_mean"] = a.alignment_weighted_diag_mean
        if a.eq11_rel_err is not None:
            rec["eq11_rel_err"] = a.eq11_rel_err
        return rec
