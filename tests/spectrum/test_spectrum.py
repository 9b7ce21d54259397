"""dimcollapse.spectrum against NumPy float64 and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dimcollapse.errors import UsageError
from dimcollapse.spectrum import (
    DEFAULT_REL_TOL,
    SpectrumAccumulator,
    accumulate,
    alpha_req,
    collapsed_dims,
    covariance_spectrum,
    dims_for_variance,
    entropy_rank,
    rankme,
    summarize,
)


def _reference(z: np.ndarray) -> np.ndarray:
    return np.linalg.svd(np.cov(np.asarray(z, np.float64).T, bias=True), compute_uv=False)


@pytest.mark.parametrize(("n", "d"), [(50, 8), (1000, 32), (300, 100)])
def test_matches_numpy_float64(n, d):
    rng = np.random.default_rng(n + d)
    z = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d) * 5
    sv = covariance_spectrum(z)
    ref = _reference(z)
    assert sv.dtype == np.float64 and sv.shape == (d,)
    assert np.all(np.diff(sv) <= 0)
    np.testing.assert_allclose(sv, ref, rtol=1e-10, atol=1e-12 * ref[0])


def test_torch_and_float32_inputs():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2000, 24)) @ rng.normal(size=(24, 24))
    ref = _reference(z.astype(np.float32))
    sv32 = covariance_spectrum(torch.from_numpy(z.astype(np.float32)))
    np.testing.assert_allclose(sv32, ref, rtol=1e-5, atol=1e-6 * ref[0])
    sv64 = covariance_spectrum(torch.from_numpy(z))
    np.testing.assert_allclose(sv64, _reference(z), rtol=1e-10)


def test_normalize_rows():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 16)) * rng.uniform(0.1, 10, size=(500, 1))
    zn = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(covariance_spectrum(z, normalize=True), _reference(zn), rtol=1e-10)


@pytest.mark.parametrize(("d", "k"), [(32, 10), (64, 1), (16, 16)])
def test_known_rank_gives_exact_collapsed_count(d, k):
    rng = np.random.default_rng(d * k)
    z = rng.normal(size=(4000, k)) @ rng.normal(size=(k, d)) + 3.0
    for arr in (z, z.astype(np.float32)):
        assert collapsed_dims(covariance_spectrum(arr)) == d - k


def test_complete_collapse_counts_every_dimension():
    z = np.ones((10, 5))
    assert collapsed_dims(covariance_spectrum(z)) == 5


def test_streaming_equals_one_shot_and_merge():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(1003, 20)) * 3 + 1000.0  # large offset: shifted sums must stay exact
    one = accumulate(z, chunk_rows=10**6)
    streamed = accumulate(z, chunk_rows=7)
    np.testing.assert_allclose(streamed.covariance(), one.covariance(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(streamed.singular_values(), _reference(z), rtol=1e-8)
    a = accumulate(z[:400], chunk_rows=64)
    b = accumulate(z[400:], chunk_rows=64)
    a.merge(b)
    assert a.n == 1003
    np.testing.assert_allclose(a.covariance(), np.cov(z.T, bias=True), rtol=1e-8, atol=1e-8)


def test_raw_singular_values_are_those_of_uncentred_matrix():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(300, 12)) + 2.0
    acc = accumulate(z, chunk_rows=50)
    np.testing.assert_allclose(
        acc.raw_singular_values(), np.linalg.svd(z, compute_uv=False), rtol=1e-9
    )


def test_nonfinite_rows_are_counted_and_refused():
    z = np.random.default_rng(5).normal(size=(20, 4))
    z[3, 1] = np.nan
    z[7, 0] = np.inf
    acc = SpectrumAccumulator()
    acc.update(z)
    assert acc.nonfinite == 2 and acc.n == 18
    with pytest.raises(UsageError, match="2 NaN"):
        accumulate(z)


def test_too_few_rows_and_wrong_shape():
    with pytest.raises(UsageError):
        covariance_spectrum(np.ones((1, 4)))
    with pytest.raises(UsageError):
        covariance_spectrum(np.ones(4))


# ---- metrics against closed forms on hand-made spectra ----


def test_rankme_closed_form():
    # Equal singular values: p_k = 1/d + eps for all k -> exp(entropy) ~= d.
    d = 10
    eps = 1e-7
    p = 1 / d + eps
    assert rankme(np.ones(d)) == pytest.approx(math.exp(-d * p * math.log(p)), rel=1e-12)
    # One non-zero value: p = (1 + eps, eps, ...) -> close to 1.
    s = np.array([3.0, 0.0, 0.0])
    p = np.array([1 + eps, eps, eps])
    assert rankme(s) == pytest.approx(math.exp(-np.sum(p * np.log(p))), rel=1e-12)


def test_entropy_rank_closed_form():
    assert entropy_rank(np.array([2.0, 2.0, 2.0, 2.0])) == pytest.approx(4.0)
    lam = np.array([3.0, 1.0, 0.0])
    p = np.array([0.75, 0.25])
    assert entropy_rank(lam) == pytest.approx(math.exp(-np.sum(p * np.log(p))))


def test_alpha_req_recovers_power_law():
    k = np.arange(1, 101, dtype=float)
    assert alpha_req(5.0 * k**-1.3) == pytest.approx(1.3, rel=1e-10)
    # A collapsed tail (below rel_tol) is left out of the fit.
    lam = np.concatenate([k[:50] ** -0.8, np.full(50, 1e-12)])
    assert alpha_req(lam) == pytest.approx(0.8, rel=1e-10)
    assert math.isnan(alpha_req(np.array([1.0, 0.0, 0.0])))


def test_dims_for_variance_closed_form():
    lam = np.array([5.0, 3.0, 1.0, 0.5, 0.5])  # cumulative: 0.5, 0.8, 0.9, 0.95, 1.0
    assert dims_for_variance(lam, 0.9) == 3
    assert dims_for_variance(lam, 0.99) == 5
    assert dims_for_variance(lam, 0.5) == 1


def test_collapsed_dims_threshold():
    sv = np.array([1.0, 1e-3, 2e-5, 5e-6, 0.0])
    assert collapsed_dims(sv, DEFAULT_REL_TOL) == 2
    assert collapsed_dims(sv, 1e-2) == 4


def test_summary_fields():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(500, 8)) @ np.diag([4, 3, 2, 1, 1, 1, 0, 0])
    s = summarize(z).to_dict()
    # the two zero columns are dead coordinates (constant), not collapse
    assert s["n"] == 500 and s["dim"] == 8 and s["collapsed_dims"] == 0
    assert s["dead_dims"] == [6, 7]
    # rotated, the same two zero directions are no longer coordinates: collapsed, not dead
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    r = summarize(z @ q).to_dict()
    assert r["collapsed_dims"] == 2 and r["dead_dims"] == [] and r["cliff_after"] == 6
    assert 1 <= s["rankme"] <= 8 and 1 <= s["entropy_rank"] <= 6
    assert s["dims_90"] <= s["dims_99"] <= 6


def test_merge_of_float32_rows_at_a_large_offset_matches_one_pass_and_float64():
    """Rows are centred on the float32 rounding of the shift: the stored shift must be that same
    value, or merged sums about two shifts disagree (2e-5 of sigma_1 at an offset of 1e6)."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4000, 16)) * np.linspace(1, 0.01, 16) + 1e6).astype(np.float32)
    ref = np.linalg.eigvalsh(np.cov(x.astype(np.float64).T, bias=True))[::-1]
    a, b = SpectrumAccumulator(), SpectrumAccumulator()
    a.update(torch.from_numpy(x[:1000]))
    b.update(torch.from_numpy(x[1000:]))
    a.merge(b)
    assert np.abs(a.singular_values() - ref).max() / ref[0] < 1e-9


def test_a_constant_embedding_is_wholly_collapsed_and_the_metrics_agree():
    """Every dimension collapsed, entropy rank 0 (no variance); RankMe, of the raw uncentred
    matrix, is 1 (the mean's direction); an all-zero embedding has RankMe 0."""
    from dimcollapse.spectrum import summarize

    const = summarize(np.tile(np.arange(1.0, 9.0), (50, 1))).to_dict()
    assert const["collapsed_dims"] == 8 and const["entropy_rank"] == 0.0
    assert const["rankme"] == pytest.approx(1.0, abs=1e-3)
    zero = summarize(np.zeros((50, 8))).to_dict()
    assert zero["collapsed_dims"] == 8 and zero["entropy_rank"] == 0.0 and zero["rankme"] == 0.0


def test_rankme_of_float32_input_comes_from_float64_products():
    """RankMe sums every singular value: float32 outer products put the collapsed directions
    near 1e-4 of sigma_1 and RankMe about 0.2% high; the default keeps it within 0.05% of the
    float64 SVD of the same float32 rows."""
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((20000, 100)) @ rng.standard_normal((100, 256))).astype(np.float32)
    z += 5
    s = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = s / s.sum()
    reference = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))

    def rankme(precision: str) -> float:
        acc = SpectrumAccumulator(precision=precision)
        for start in range(0, len(z), 4096):
            acc.update(z[start : start + 4096])
        return acc.summary().rankme

    assert abs(rankme("auto") - reference) / reference < 5e-4
    assert abs(rankme("float32") - reference) / reference > 1e-3  # what the default avoids
