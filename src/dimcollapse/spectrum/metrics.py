"""Collapse metrics computed from a spectrum's singular values, and their summary record.

Each metric names the spectrum it takes (users often confuse RankMe's sigma with PCA's sigma^2):

* :func:`cliff_collapse`: **the collapsed dimensions** as the paper sees them, a cliff: the
  values past the first drop of at least :data:`CLIFF_DECADES` orders of magnitude between
  neighbouring covariance singular values, or under the numerical floor of the input's
  precision; dead (constant) coordinates are found apart (:func:`dead_coordinates`) and never
  counted as collapse;
* :func:`collapsed_dims`: covariance singular values below ``rel_tol * sigma_1``, the secondary
  threshold table (:func:`collapsed_counts`: at each of :data:`COLLAPSE_THRESHOLDS`;
  :func:`smallest_ratio`);
* :func:`rankme`: Garrido et al. (2023), singular values of the *raw uncentred* matrix Z;
* :func:`entropy_rank`: Roy & Vetterli (2007) on the *covariance eigenvalues* (= sigma of C);
* :func:`alpha_req`: the power-law exponent of the covariance eigenspectrum (Agrawal et al. 2022);
* :func:`dims_for_variance`: how many leading covariance eigenvalues hold a fraction of the variance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# sigma_k < DEFAULT_REL_TOL * sigma_1: collapsed; why 1e-5 is said where --help reads it
from dimcollapse.choices import DEFAULT_REL_TOL
from dimcollapse.errors import UsageError

#: The thresholds (fractions of sigma_1, the sigma being covariance eigenvalues) at which the
#: report counts the collapsed tail. The paper draws no line: its Figs. 2, 7b and 9 show
#: singular values that "drop to zero" on a log axis. A count at one threshold can hinge on
#: where the line sits, so the tail is counted at four, a decade apart, around
#: :data:`DEFAULT_REL_TOL` (which stays the headline one): from 1e-4 (a direction with 1% of
#: the leading standard deviation) down to 1e-7 (near float32 rounding of the covariance).
COLLAPSE_THRESHOLDS = (1e-4, 1e-5, 1e-6, 1e-7)

#: The secondary table of :class:`SpectrumSummary` (``tail_counts``): the live spectrum counted
#: under each of these fractions of sigma_1, down to 1e-10 (meaningful for float64 inputs).
TAIL_THRESHOLDS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)

#: A cliff: the drop between two neighbouring covariance singular values, in orders of
#: magnitude (decades), from which on every value counts as collapsed. Why 3:
#:
#: * the paper's Fig. 2 (its ``spectrum.py``: natural log of the covariance singular values of
#:   row-normalised z) has the live values within about e^-2.6 of the largest and the collapsed
#:   ones near e^-25, a drop of about 9 decades: 3 still sees it if it is spread over up to
#:   three neighbours;
#: * a healthy power-law spectrum ``sigma_k ~ k^-alpha`` drops most between k = 1 and 2, by
#:   ``alpha log10 2``: 0.9 decades even at alpha = 3 (measured spectra of trained networks have
#:   alpha around 1), and a smooth decay over 8 decades across 128 values drops 0.06 per step;
#: * bf16 training leaves a collapsed direction near 1e-5..1e-6 of sigma_1 and float32 near
#:   1e-10..1e-14, while the last live values of the paper's figure sit near 1e-2: at least 3
#:   decades apart.
#:
#: So no smooth slope, however steep overall, is a cliff, and a count under a threshold no
#: longer moves with the threshold.
CLIFF_DECADES = 3.0

#: float32's unit roundoff: the default precision of an input whose dtype is unknown.
FLOAT32_EPS = float(np.finfo(np.float32).eps)

#: Values this many decades under sigma_1 are all "drop to zero" for the drop computation
#: (exact zeros get a finite logarithm).
_LOG_FLOOR_DECADES = 40.0

#: RankMe's epsilon added to each normalised singular value (Garrido et al. 2023).
RANKME_EPS = 1e-7


@dataclass
class SpectrumSummary:
    """Metrics of one set of embeddings; ``singular_values`` are those of the Eq. 1 covariance
    (dead coordinates included, as the paper plots them); ``collapsed_dims`` is the cliff rule
    (:func:`cliff_collapse`) on the live spectrum, ``rel_tol`` only sets alpha-ReQ's cut."""

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
    #: indices of the dead (constant) coordinates, apart from :attr:`collapsed_dims`
    dead_dims: list[int] = field(default_factory=list)
    #: the largest drop between neighbouring live values, in decades, and after which value
    #: (1-based: the drop is between values ``cliff_after`` and ``cliff_after + 1``)
    cliff_decades: float | None = None
    cliff_after: int | None = None
    #: the numerical floor of the input's precision, as a fraction of sigma_1
    floor: float | None = None
    #: how :attr:`collapsed_dims` was counted ("cliff": :func:`cliff_collapse`)
    collapse_rule: str = "cliff"
    #: live values under ``rel_tol * sigma_1`` (the threshold count, secondary)
    below_rel_tol: int = 0
    #: the secondary table: live values under each of :data:`TAIL_THRESHOLDS` x sigma_1
    tail_thresholds: list[float] = field(default_factory=lambda: list(TAIL_THRESHOLDS))
    tail_counts: list[int] = field(default_factory=list)

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


@dataclass(frozen=True)
class Cliff:
    """The collapsed tail of a spectrum by the cliff rule (:func:`cliff_collapse`).

    ``collapsed``: live values past the first drop of at least ``decades`` orders of magnitude
    between neighbours, or under ``floor * sigma_1`` (whichever is more); ``drop_decades`` and
    ``drop_after``: the largest drop between neighbouring live values and the 1-based index of
    the value before it (None with fewer than 2 live values); ``under_floor``: live values under
    the floor; ``live``: how many values are left once the dead coordinates' zeros are set apart.
    """

    collapsed: int
    drop_decades: float | None
    drop_after: int | None
    under_floor: int
    live: int


def cliff_collapse(
    singular_values: Any,
    *,
    dead: int = 0,
    floor: float = 0.0,
    decades: float = CLIFF_DECADES,
) -> Cliff:
    """Collapsed dimensions as the paper sees them: the values that "drop to zero" (Fig. 2).

    ``singular_values``: the (d,) Eq. 1 covariance singular values (any order). ``dead``: how
    many coordinates are constant (:func:`dead_coordinates`); a constant coordinate is a zero
    row and column of the covariance, so its eigenvalue is an exact zero that is set apart here
    (the ``dead`` smallest values are dropped) and never counted. ``floor``: the numerical floor
    of the input's precision as a fraction of sigma_1 (:func:`numerical_floor`); values under it
    are collapsed whatever the drop. ``decades``: the smallest drop between neighbouring values
    that is a cliff (:data:`CLIFF_DECADES`).
    """
    sv = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1]
    if dead < 0 or dead > sv.size:
        raise UsageError(f"dead must be between 0 and {sv.size}, got {dead}")
    live = sv[: sv.size - dead]
    m = int(live.size)
    if m == 0 or live[0] <= 0:
        return Cliff(collapsed=m, drop_decades=None, drop_after=None, under_floor=m, live=m)
    logs = np.log10(np.maximum(live, live[0] * 10.0**-_LOG_FLOOR_DECADES))
    under = int(np.sum(live < floor * live[0]))
    if m < 2:
        return Cliff(collapsed=under, drop_decades=None, drop_after=None, under_floor=under, live=m)
    drops = logs[:-1] - logs[1:]
    cliffs = np.flatnonzero(drops >= decades)
    past = m - int(cliffs[0]) - 1 if cliffs.size else 0
    largest = int(np.argmax(drops))
    return Cliff(
        collapsed=max(past, under),
        drop_decades=float(drops[largest]),
        drop_after=largest + 1,
        under_floor=under,
        live=m,
    )


def numerical_floor(eps: float, mean_square_norm: float, sigma_1: float) -> float:
    """The rounding floor of a covariance spectrum, as a fraction of sigma_1.

    Inputs stored at unit roundoff ``eps`` (float32: 1.2e-7) carry a rounding error of about
    ``eps * |x_j|`` per entry; all of its variance, ``eps^2 E||x||^2`` (``mean_square_norm`` =
    E||x||^2 of the raw rows), could land in one direction, so a covariance value under
    ``eps^2 E||x||^2`` is indistinguishable from zero. For unit rows in float32 and sigma_1
    near 1/100 that is about 1e-12 of sigma_1; for float64 inputs about 1e-30.
    """
    if sigma_1 <= 0:
        return 0.0
    return float(eps * eps * max(mean_square_norm, 0.0) / sigma_1)


def dead_coordinates(variances: Any, mean_squares: Any, eps: float = FLOAT32_EPS) -> list[int]:
    """Indices of the constant ("dead") coordinates: variance within rounding of zero.

    ``variances``: (d,) diagonal of the Eq. 1 covariance; ``mean_squares``: (d,) E[x_j^2] of
    the raw rows. A coordinate is dead when ``var_j <= eps^2 E[x_j^2]``: it does not vary by
    more than the input's rounding (a ReLU channel that is 0 on every image has variance and
    mean square exactly 0). It gives an exact zero singular value that is not collapse in the
    paper's sense (nothing was learned along it, nothing shrank), so it is reported apart.
    """
    var = np.asarray(variances, dtype=np.float64)
    m2 = np.asarray(mean_squares, dtype=np.float64)
    return [int(i) for i in np.flatnonzero(var <= eps * eps * np.maximum(m2, 0.0))]


def tail_counts(singular_values: Any, dead: int = 0) -> list[int]:
    """The live spectrum's count under each of :data:`TAIL_THRESHOLDS` x sigma_1 (the dead
    coordinates' zeros, the ``dead`` smallest values, set apart)."""
    sv = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1]
    return collapsed_counts(sv[: sv.size - dead], TAIL_THRESHOLDS)
