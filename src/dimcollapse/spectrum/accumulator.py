"""The streaming Eq. 1 covariance: :class:`SpectrumAccumulator` and whole-array helpers.

The accumulator keeps the row count, the sum of the rows and the sum of their outer products,
all in float64, relative to a shift (the first batch's mean) so that a large common offset does
not cancel catastrophically; ``Z^T Z`` is recoverable from the shifted sums, so the same
accumulator also yields the singular values of the raw, uncentred N x d matrix that RankMe needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

# precisions of the per-batch outer products (see SpectrumAccumulator)
from dimcollapse.choices import SPECTRUM_PRECISIONS as PRECISIONS
from dimcollapse.errors import UsageError
from dimcollapse.runtime import check_fits_in_memory
from dimcollapse.spectrum.metrics import (
    DEFAULT_REL_TOL,
    FLOAT32_EPS,
    TAIL_THRESHOLDS,
    SpectrumSummary,
    alpha_req,
    cliff_collapse,
    collapsed_dims,
    dead_coordinates,
    dims_for_variance,
    entropy_rank,
    numerical_floor,
    rankme,
    tail_counts,
)


def _to_tensor(batch: Any) -> torch.Tensor:
    """A 2-D tensor view of a NumPy array or tensor batch (no copy where possible)."""
    if isinstance(batch, torch.Tensor):
        t = batch
    else:
        arr = np.asarray(batch)
        if arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise UsageError(f"embeddings must be numeric, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim != 2:
        raise UsageError(f"embeddings must be 2-D (N x d), got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise UsageError(f"embeddings must be real numbers, got dtype {t.dtype}")
    return t


class SpectrumAccumulator:
    """Streaming covariance (Eq. 1) of rows fed batch by batch, in float64, O(d^2) memory.

    Args:
        normalize: L2-normalise each row before it enters the covariance (the paper's
            ``spectrum.py`` normalises embeddings; the paper's text does not).
        device: where the float64 sums live; defaults to the first batch's device.
        precision: the dtype of each batch's outer-product ``c^T c`` before it is added to the
            float64 sums. ``"auto"`` (default) and ``"float64"``: float64 whatever the input's
            dtype, so every metric (RankMe included) comes from float64 sums of float64
            products. ``"float32"``: about 2x faster on a CPU; rows are centred on the shift
            first, so a truly collapsed direction lands near 1e-8 of sigma_1 (measured on 200k x
            512 rank-400 data), 1000x below ``DEFAULT_REL_TOL``, and the collapse counts agree,
            but those float32 noise values enter RankMe's entropy: it is then about 0.2% high
            on a collapsed representation (benchmarks/RESULTS.md).

    ``update`` takes (B, d) NumPy arrays or tensors on any device. Non-finite rows are not
    added; they are counted in :attr:`nonfinite` (entries) so a caller can refuse the input.
    """

    def __init__(
        self,
        *,
        normalize: bool = False,
        device: torch.device | str | None = None,
        precision: str = "auto",
    ):
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.normalize = normalize
        self.precision = precision
        self.device = torch.device(device) if device is not None else None
        self.n = 0
        self.nonfinite = 0
        self.dim: int | None = None
        #: the coarsest unit roundoff of the rows fed (float64's for integers): the precision
        #: that sets the numerical floor and the dead-coordinate test (None before any row)
        self.eps: float | None = None
        self._shift: torch.Tensor | None = None  # (d,) float64
        self._s1: torch.Tensor | None = None  # (d,) sum of (x - shift)
        self._s2: torch.Tensor | None = None  # (d, d) sum of (x - shift)(x - shift)^T

    @torch.no_grad()
    def update(self, batch: Any) -> None:
        """Add a (B, d) batch of rows."""
        t = _to_tensor(batch)
        if self.dim is None:
            check_covariance_memory(int(t.shape[1]))
            self.dim = t.shape[1]
            if self.device is None:
                self.device = t.device
        elif t.shape[1] != self.dim:
            raise UsageError(f"batch has {t.shape[1]} columns, expected {self.dim}")
        if t.shape[0] == 0:
            return
        eps = _unit_roundoff(t.dtype)
        self.eps = eps if self.eps is None else max(self.eps, eps)
        use64 = self.precision != "float32"
        x = t.to(device=self.device, dtype=torch.float64 if use64 else torch.float32)
        if self._shift is None:
            x = self._drop_nonfinite(x)
            if x.shape[0] == 0:
                return
            if self.normalize:
                x = torch.nn.functional.normalize(x, dim=1)
            # stored exactly as rows are centred on it (its rounding to the rows' dtype), so
            # that merged sums about different shifts agree at large offsets
            self._shift = x.mean(dim=0, dtype=torch.float64).to(x.dtype).to(torch.float64)
            self._s1 = torch.zeros_like(self._shift)
            self._s2 = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=self.device)
        elif self.normalize:
            x = torch.nn.functional.normalize(x, dim=1)
        c = x - self._shift.to(x.dtype)  # (B, d), centred on the shift
        # Column sums as a matrix-vector product (BLAS, far faster than a float64 reduction on a
        # CPU). A NaN or inf anywhere makes its column sum non-finite; only then is the chunk
        # checked element by element (a finite but huge chunk that overflows is checked too).
        s1 = torch.ones(1, c.shape[0], dtype=c.dtype, device=c.device) @ c
        if not bool(torch.isfinite(s1).all()):
            x = self._drop_nonfinite(x)
            if x.shape[0] == 0:
                return
            c = x - self._shift.to(x.dtype)
            s1 = c.sum(dim=0, keepdim=True, dtype=torch.float64)
        self._s1 += s1[0].to(torch.float64)
        self._s2 += (c.T @ c).to(torch.float64)
        self.n += x.shape[0]

    def _drop_nonfinite(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of ``x`` with only finite values; the non-finite entries are counted."""
        finite = torch.isfinite(x)
        if bool(finite.all()):
            return x
        self.nonfinite += int((~finite).sum())
        return x[finite.all(dim=1)]

    def state_dict(self) -> dict[str, Any]:
        """The counts and float64 sums as CPU tensors: what another process needs to
        :meth:`merge` these rows (e.g. gathered with ``all_gather_object``)."""
        sums = {"shift": self._shift, "s1": self._s1, "s2": self._s2}
        return {
            "n": self.n,
            "nonfinite": self.nonfinite,
            "dim": self.dim,
            "eps": self.eps,
            **{k: None if v is None else v.detach().cpu() for k, v in sums.items()},
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], *, normalize: bool = False
    ) -> SpectrumAccumulator:
        """An accumulator on the CPU holding the rows a :meth:`state_dict` describes."""
        acc = cls(normalize=normalize, device="cpu")
        acc.n, acc.nonfinite, acc.dim = state["n"], state["nonfinite"], state["dim"]
        acc.eps = state.get("eps")
        acc._shift, acc._s1, acc._s2 = state["shift"], state["s1"], state["s2"]
        return acc

    def merge(self, other: SpectrumAccumulator) -> None:
        """Add another accumulator's rows to this one (e.g. from another process)."""
        if other.n == 0:
            self.nonfinite += other.nonfinite
            return
        if self.n == 0:
            self.__dict__.update({k: v for k, v in other.__dict__.items() if k != "normalize"})
            return
        if other.dim != self.dim:
            raise UsageError(f"cannot merge spectra of dimension {other.dim} and {self.dim}")
        assert self._shift is not None and self._s1 is not None and self._s2 is not None
        assert other._shift is not None and other._s1 is not None and other._s2 is not None
        # re-express other's sums about our shift
        delta = other._shift.to(self.device) - self._shift
        o1 = other._s1.to(self.device)
        self._s2 += (
            other._s2.to(self.device)
            + torch.outer(o1, delta)
            + torch.outer(delta, o1)
            + other.n * torch.outer(delta, delta)
        )
        self._s1 += o1 + other.n * delta
        self.n += other.n
        if other.eps is not None:
            self.eps = other.eps if self.eps is None else max(self.eps, other.eps)
        self.nonfinite += other.nonfinite

    def _require_rows(self) -> None:
        if self.n < 2:
            raise UsageError(f"need at least 2 finite rows for a covariance, got {self.n}")

    def covariance(self) -> np.ndarray:
        """The (d, d) float64 covariance of Eq. 1 (centred, divided by N)."""
        return self._covariance_tensor().cpu().numpy()

    def _gram_tensor(self) -> torch.Tensor:
        self._require_rows()
        assert self._shift is not None and self._s1 is not None and self._s2 is not None
        k, s1 = self._shift, self._s1
        g = self._s2 + torch.outer(s1, k) + torch.outer(k, s1) + self.n * torch.outer(k, k)
        return 0.5 * (g + g.T)

    def gram(self) -> np.ndarray:
        """The (d, d) float64 uncentred Gram matrix Z^T Z of all rows seen."""
        return self._gram_tensor().cpu().numpy()

    def _covariance_tensor(self) -> torch.Tensor:
        self._require_rows()
        assert self._s1 is not None and self._s2 is not None
        mean_c = self._s1 / self.n
        cov = self._s2 / self.n - torch.outer(mean_c, mean_c)
        return 0.5 * (cov + cov.T)

    def singular_values(self) -> np.ndarray:
        """(d,) descending singular values of the Eq. 1 covariance (eigvalsh on its device)."""
        return symmetric_singular_values(self._covariance_tensor())

    def raw_singular_values(self, gram: torch.Tensor | None = None) -> np.ndarray:
        """(min(N, d),) descending singular values of the raw uncentred N x d matrix Z (RankMe),
        from ``gram`` (Z^T Z) when the caller already has it."""
        eig = symmetric_singular_values(self._gram_tensor() if gram is None else gram)
        return np.sqrt(eig[: min(self.n, eig.shape[0])])

    def summary(self, rel_tol: float = DEFAULT_REL_TOL) -> SpectrumSummary:
        """All metrics of the rows seen so far (``collapsed_dims`` by the cliff rule,
        :func:`~dimcollapse.spectrum.metrics.cliff_collapse`, dead coordinates apart)."""
        cov = self._covariance_tensor()
        gram = self._gram_tensor()
        sv = symmetric_singular_values(cov)
        eps = self.eps if self.eps is not None else FLOAT32_EPS
        mean_squares = (torch.diagonal(gram) / self.n).cpu().numpy()
        dead = dead_coordinates(torch.diagonal(cov).cpu().numpy(), mean_squares, eps)
        floor = numerical_floor(eps, float(mean_squares.sum()), float(sv[0]) if sv.size else 0.0)
        cliff = cliff_collapse(sv, dead=len(dead), floor=floor)
        raw = self.raw_singular_values(gram)
        return SpectrumSummary(
            n=self.n,
            dim=int(self.dim or 0),
            normalize=self.normalize,
            rel_tol=rel_tol,
            singular_values=sv.tolist(),
            # every coordinate constant is complete collapse (to a point), not dead channels
            collapsed_dims=cliff.collapsed if len(dead) < sv.size else int(sv.size),
            rankme=rankme(raw),
            entropy_rank=entropy_rank(sv),
            alpha_req=alpha_req(sv, rel_tol),
            dims_90=dims_for_variance(sv, 0.90),
            dims_99=dims_for_variance(sv, 0.99),
            dead_dims=dead,
            cliff_decades=cliff.drop_decades,
            cliff_after=cliff.drop_after,
            floor=floor,
            tail_thresholds=list(TAIL_THRESHOLDS),
            tail_counts=tail_counts(sv, len(dead)),
            below_rel_tol=collapsed_dims(sv[: sv.size - len(dead)], rel_tol),
        )


def _unit_roundoff(dtype: torch.dtype) -> float:
    """The unit roundoff of a tensor dtype; integers are exact (float64's)."""
    return (
        float(torch.finfo(dtype).eps)
        if dtype.is_floating_point
        else float(np.finfo(np.float64).eps)
    )


def symmetric_singular_values(m: np.ndarray | torch.Tensor) -> np.ndarray:
    """Descending singular values of a symmetric matrix, in float64 (|eigenvalues|).

    A CUDA tensor is decomposed on its GPU (``torch.linalg.eigvalsh``); anything else with
    LAPACK through NumPy. Falls back to a general SVD if the symmetric solver fails.
    """
    if isinstance(m, torch.Tensor):
        if m.device.type == "cuda":
            try:
                ev = torch.linalg.eigvalsh(m.to(torch.float64)).abs().cpu().numpy()
                return np.sort(ev)[::-1].copy()
            except RuntimeError:
                pass  # fall back to the host below
        m = m.detach().cpu().numpy()
    m = np.asarray(m, dtype=np.float64)
    try:
        ev = np.abs(np.linalg.eigvalsh(m))
    except (
        np.linalg.LinAlgError
    ):  # pragma: no cover - eigvalsh almost never fails on symmetric input
        try:
            ev = np.linalg.svd(m, compute_uv=False)
        except np.linalg.LinAlgError as exc:
            raise UsageError(f"the spectrum did not converge: {exc}") from exc
    return np.sort(ev)[::-1].copy()


def iter_row_chunks(z: Any, chunk_rows: int) -> Iterable[Any]:
    """Yield consecutive (<= chunk_rows, d) slices of a 2-D array or tensor."""
    for start in range(0, z.shape[0], chunk_rows):
        yield z[start : start + chunk_rows]


def accumulate(
    z: Any, *, normalize: bool = False, chunk_rows: int = 65536, precision: str = "auto"
) -> SpectrumAccumulator:
    """Feed a whole (N, d) array or tensor through a :class:`SpectrumAccumulator` in chunks."""
    if not isinstance(z, (torch.Tensor, np.ndarray)):
        z = np.asarray(z)
    if z.ndim != 2:
        raise UsageError(f"embeddings must be 2-D (N x d), got shape {tuple(z.shape)}")
    acc = SpectrumAccumulator(normalize=normalize, precision=precision)
    for chunk in iter_row_chunks(z, chunk_rows):
        acc.update(chunk)
    if acc.nonfinite:
        raise UsageError(f"embeddings hold {acc.nonfinite} NaN or infinite values; refusing")
    return acc


def covariance_spectrum(z: Any, normalize: bool = False) -> np.ndarray:
    """(d,) float64 descending singular values of the Eq. 1 covariance of (N, d) rows ``z``.

    Equals ``np.linalg.svd(np.cov(z.T, bias=True), compute_uv=False)``, computed in float64 on
    ``z``'s device (NumPy array or torch tensor), ``normalize`` L2-normalising rows first.
    """
    return accumulate(z, normalize=normalize).singular_values()


def summarize(
    z: Any, *, normalize: bool = False, rel_tol: float = DEFAULT_REL_TOL
) -> SpectrumSummary:
    """All metrics of (N, d) rows ``z`` (NumPy array or tensor)."""
    return accumulate(z, normalize=normalize).summary(rel_tol)


def check_covariance_memory(dim: int, what: str | None = None) -> None:
    """Refuse, before allocating, a width whose d x d float64 sums cannot fit in memory (the
    accumulator holds one, the covariance, Gram and eigendecomposition about three more)."""
    what = what or f"embeddings of {dim:,} columns"
    check_fits_in_memory(4 * 8 * dim * dim, f"{what} ({dim:,} x {dim:,} covariance)")
