"""The paper's instrument: the singular-value spectrum of the embedding covariance (Eq. 1).

Eq. 1 of Jing et al. (2022)::

    C = 1/N sum_i (z_i - z_bar)(z_i - z_bar)^T,      C = U S V^T,  S = diag(sigma^k)

The spectrum is ``sigma^k`` in descending order. C is symmetric positive semi-definite, so its
singular values are the absolute values of its eigenvalues; we compute them with ``eigvalsh`` in
float64 (faster and more robust than a general SVD) and fall back to ``svd`` if that fails.

Modules: :mod:`~dimcollapse.spectrum.accumulator` (:class:`SpectrumAccumulator`, streaming rows
batch by batch in O(d^2) memory, and :func:`accumulate` / :func:`covariance_spectrum` /
:func:`summarize` for whole arrays); :mod:`~dimcollapse.spectrum.metrics` (collapsed dimensions,
RankMe, entropy rank, alpha-ReQ, dimensions holding a fraction of the variance, and
:class:`SpectrumSummary`).
"""

from dimcollapse.spectrum.accumulator import (
    PRECISIONS,
    SpectrumAccumulator,
    accumulate,
    check_covariance_memory,
    covariance_spectrum,
    iter_row_chunks,
    summarize,
    symmetric_singular_values,
)
from dimcollapse.spectrum.metrics import (
    DEFAULT_REL_TOL,
    RANKME_EPS,
    SpectrumSummary,
    alpha_req,
    collapsed_dims,
    dims_for_variance,
    entropy_rank,
    rankme,
)

__all__ = [
    "DEFAULT_REL_TOL",
    "PRECISIONS",
    "RANKME_EPS",
    "SpectrumAccumulator",
    "SpectrumSummary",
    "accumulate",
    "check_covariance_memory",
    "alpha_req",
    "collapsed_dims",
    "covariance_spectrum",
    "dims_for_variance",
    "entropy_rank",
    "iter_row_chunks",
    "rankme",
    "summarize",
    "symmetric_singular_values",
]
