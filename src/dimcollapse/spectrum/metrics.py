"""Collapse metrics computed from a spectrum's singular values, and their summary record.

Each metric names the spectrum it takes (users often confuse RankMe's sigma with PCA's sigma^2):

* :func:`collapsed_dims`: covariance singular values below ``rel_tol * sigma_1``
  (:func:`collapsed_counts`: at each of :data:`COLLAPSE_THRESHOLDS`; :func:`smallest_ratio`);
* :func:`rankme`: Garrido et al. (2023), singular values of the *raw uncentred* matrix Z;
* :func:`entropy_rank`: Roy & Vetterli (2007) on the *covariance eigenvalues* (= sigma of C);
* :func:`alpha_req`: the power-law exponent of the covariance eigenspectrum (Agrawal et al. 2022);
* :func:`dims_for_variance`: how many leading covariance eigenvalues hold a fraction of the variance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from dimcollapse.errors import UsageError

#: Default relative tolerance for a collapsed dimension: sigma_k < DEFAULT_REL_TOL * sigma_1.
#: sigma here are eigenvalues of the covariance, i.e. *variances*, so 1e-5 means a direction whose
#: standard deviation is below 0.3% of the leading one. Why this value: a dimension that truly
#: collapsed in a float32 network sits near float32 rounding noise (~1e-12 relative variance) and
#: one from bf16 training near bf16 rounding noise (~1e-6 relative variance), both well below 1e-5;
#: while healthy representations with a power-law spectrum (alpha ~ 1, d = 2048) keep their last
#: eigenvalue near 5e-4 of the first, well above it. ``--rel-tol`` changes it.
DEFAULT_REL_TOL = 1e-5

#: The thresholds (fractions of sigma_1, the sigma being covariance eigenvalues) at which the
#: report counts the collapsed tail. The paper draws no line: its Figs. 2, 7b and 9 show
#: singular values that "drop to zero" on a log axis. A count at one threshold can hinge on
#: where the line sits, so the tail is counted at four, a decade apart, around
#: :data:`DEFAULT_REL_TOL` (which stays the headline one): from 1e-4 (a direction with 1% of
#: the leading standard deviation) down to 1e-7 (near float32 rounding of the covariance).
COLLAPSE_THRESHOLDS = (1e-4, 1e-5, 1e-6, 1e-7)

#: RankMe's epsilon added to each normalised singular value (Garrido et al. 2023).
RANKME_EPS = 1e-7


@dataclass
class SpectrumSummary:
    """Metrics of one set of embeddings; ``singular_values`` are those of the Eq. 1 covariance."""

    n: int
    dim: int
    normalize: bool
    rel_tol: float
    singular_values: list[float]
    collapsed_dims: int
    rankme: float
    entropy_rank: float
    alpha_req: float
    dims_90: int
    dims_99: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN alpha becomes None)."""
        d = asdict(self)
        if not math.isfinite(d["alpha_req"]):
            d["alpha_req"] = None
        return d


def collapsed_dims(singular_values: Any, rel_tol: float = DEFAULT_REL_TOL) -> int:
    """Number of covariance singular values with ``sigma_k < rel_tol * sigma_1``.

    ``singular_values`` are those of the Eq. 1 covariance (variances, i.e. PCA's sigma^2 / N).
    A spectrum that is all zeros (complete collapse) counts every dimension as collapsed.
    """
    sv = np.asarray(singular_values, dtype=np.float64)
    if sv.size == 0:
        return 0
    top = sv.max()
    if top <= 0:
        return int(sv.size)
    return int(np.sum(sv < rel_tol * top))


def collapsed_counts(singular_values: Any, thresholds: Any = COLLAPSE_THRESHOLDS) -> list[int]:
    """:func:`collapsed_dims` at each of ``thresholds`` (fractions of sigma_1), in their order."""
    return [collapsed_dims(singular_values, float(t)) for t in thresholds]


def smallest_ratio(singular_values: Any) -> float | None:
    """``sigma_min / sigma_1`` of covariance singular values: how deep the tail reaches (0 for
    an exact zero; None for an empty or all-zero spectrum)."""
    sv = np.asarray(singular_values, dtype=np.float64)
    if sv.size == 0 or sv.max() <= 0:
        return None
    return float(max(sv.min(), 0.0) / sv.max())


def rankme(raw_singular_values: Any, eps: float = RANKME_EPS) -> float:
    """RankMe (Garrido et al. 2023): ``exp(-sum_k p_k log p_k)``, ``p_k = s_k / ||s||_1 + eps``.

    ``raw_singular_values`` must be the singular values ``s_k`` of the *raw, uncentred* N x d
    embedding matrix Z (not of its covariance, and not squared). Between 1 and min(N, d).

    Because Z is not centred, a *constant* non-zero embedding has RankMe 1 (its one direction
    is the mean) while its covariance has every dimension collapsed and entropy rank 0: the
    two count different things (see :func:`entropy_rank`). An all-zero Z has RankMe 0.
    """
    s = np.asarray(raw_singular_values, dtype=np.float64)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def entropy_rank(eigenvalues: Any) -> float:
    """Entropy effective rank (Roy & Vetterli 2007) of the covariance eigenvalues.

    ``exp(-sum_k p_k log p_k)`` with ``p_k = lambda_k / sum_j lambda_j`` and ``0 log 0 = 0``, where
    ``lambda_k`` are the Eq. 1 covariance singular values (= eigenvalues, i.e. variances).
    A covariance with no variance at all (a constant embedding, every dimension collapsed) has
    entropy rank 0, in agreement with :func:`collapsed_dims`.
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = lam.sum()
    if total <= 0:
        return 0.0
    p = lam[lam > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def alpha_req(eigenvalues: Any, rel_tol: float = DEFAULT_REL_TOL) -> float:
    """alpha-ReQ (Agrawal et al. 2022): the power-law exponent of the covariance eigenspectrum.

    Least-squares fit of ``log lambda_k = c - alpha log k`` over ranks k = 1..K, where K is the
    number of non-collapsed eigenvalues (``lambda_k >= rel_tol * lambda_1``). The collapsed tail
    is left out because it sits on the numerical floor and would dominate the slope. Returns NaN
    when fewer than 3 eigenvalues remain. Larger alpha means a faster-decaying spectrum.
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    if lam.size == 0 or lam[0] <= 0:
        return float("nan")
    keep = lam >= rel_tol * lam[0]
    lam = lam[keep]
    if lam.size < 3:
        return float("nan")
    k = np.arange(1, lam.size + 1, dtype=np.float64)
    slope, _ = np.polyfit(np.log(k), np.log(lam), 1)
    return float(-slope)


def dims_for_variance(eigenvalues: Any, fraction: float) -> int:
    """Smallest k such that the k largest covariance eigenvalues hold ``fraction`` of the variance."""
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"variance fraction must be in (0, 1], got {fraction}")
    lam = np.sort(np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None))[::-1]
    total = lam.sum()
    if total <= 0:
        return 0
    cum = np.cumsum(lam) / total
    return int(np.searchsorted(cum, fraction - 1e-12) + 1)
