"""Fréchet distance (closed forms, invariances, a scipy reference) and streaming FeatureStats."""

from __future__ import annotations

import doctest
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok.metrics.frechet as frechet_module
from vidtok.metrics.frechet import (
    FeatureStats,
    SmallSampleWarning,
    frechet_distance,
    frechet_distance_from_stats,
)

SETTINGS = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2**32 - 1)
dims = st.integers(1, 8)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(0), np.cov(x, rowvar=False, bias=True).reshape(x.shape[1], x.shape[1])


def test_module_examples_run():
    result = doctest.testmod(frechet_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --- closed forms ---------------------------------------------------------------------------------------------


def test_one_dimensional_normals():
    # (m1 - m2)^2 + (s1 - s2)^2 = 1 + 1
    assert frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, abs=1e-12)


@SETTINGS
@given(seeds, dims)
def test_diagonal_covariances(seed, d):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 5, d), rng.uniform(0, 5, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(m1, np.diag(a), m2, np.diag(b))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


@SETTINGS
@given(seeds, dims, st.floats(0.01, 20.0))
def test_scaled_covariance(seed, d, c):
    rng = np.random.default_rng(seed)
    s = _spd(rng, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((m1 - m2) ** 2) + (1 + c - 2 * np.sqrt(c)) * np.trace(s)
    assert frechet_distance(m1, s, m2, c * s) == pytest.approx(expected, rel=1e-8, abs=1e-8)


@SETTINGS
@given(seeds, dims)
def test_identical_is_zero(seed, d):
    rng = np.random.default_rng(seed)
    m, s = rng.normal(size=d), _spd(rng, d)
    got = frechet_distance(m, s, m, s)
    assert 0.0 <= got < 1e-9 * max(1.0, np.trace(s))


def test_constant_sets_give_squared_mean_difference():
    z = np.zeros((3, 3))
    assert frechet_distance([1.0, 2.0, 3.0], z, [0.0, 0.0, 0.0], z) == pytest.approx(14.0)


# --- invariances ----------------------------------------------------------------------------------------------


@SETTINGS
@given(seeds, dims)
def test_rotation_and_shift_invariance(seed, d):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(40, d)), 1.5 * rng.normal(size=(30, d)) + 0.5
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    shift = rng.normal(size=d) * 3
    base = frechet_distance(*_stats(x), *_stats(y))
    moved = frechet_distance(*_stats(x @ q.T + shift), *_stats(y @ q.T + shift))
    assert moved == pytest.approx(base, rel=1e-7, abs=1e-9)


@SETTINGS
@given(seeds, dims, st.floats(0.1, 10.0))
def test_scaling_and_symmetry(seed, d, c):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(40, d)), rng.normal(size=(30, d)) * 2 + 1
    base = frechet_distance(*_stats(x), *_stats(y))
    assert frechet_distance(*_stats(c * x), *_stats(c * y)) == pytest.approx(c**2 * base, rel=1e-7, abs=1e-9)
    assert frechet_distance(*_stats(y), *_stats(x)) == pytest.approx(base, rel=1e-8, abs=1e-10)


def test_rank_deficient_matches_scipy_sqrtm_reference():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    d = 64
    x, y = rng.normal(size=(20, d)), rng.normal(size=(25, d)) * 1.3 + 0.2  # N < D: singular covariances
    (m1, s1), (m2, s2) = _stats(x), _stats(y)
    got = frechet_distance(m1, s1, m2, s2)
    root = np.real(linalg.sqrtm(s1 @ s2))
    reference = float(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * root))
    assert np.isfinite(got) and got >= 0
    assert got == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((2, 1)), np.eye(2), np.zeros(2), np.eye(2)), r"mu1 must have shape \(D,\)"),
        ((np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), "mu1 and mu2 differ"),
        ((np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)), r"sigma1 must have shape \(2, 2\)"),
        ((np.zeros(2), np.eye(2), np.zeros(2), np.ones(2)), r"sigma2 must have shape \(D, D\)"),
        ((np.zeros(2), np.eye(2), np.zeros(2), np.array([[1.0, 1.0], [0.0, 1.0]])), "sigma2 is not symmetric"),
        ((np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2)), "mu1 contains NaN"),
    ],
)
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(*args)


def test_non_real_values_are_refused():
    with pytest.raises(TypeError, match="sigma1 must hold real numbers"):
        frechet_distance(np.zeros(1), np.array([["a"]]), np.zeros(1), np.eye(1))


# --- FeatureStats ---------------------------------------------------------------------------------------------


@SETTINGS
@given(seeds, dims, st.lists(st.integers(0, 7), min_size=1, max_size=12))
def test_streaming_equals_batch(seed, d, sizes):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(sum(sizes) + 2, d)) * rng.uniform(0.1, 3, d) + rng.normal(size=d) * 10
    stats = FeatureStats()
    start = 0
    for n in [*sizes, 2]:
        stats.update(x[start : start + n])
        start += n
    assert stats.num == len(x) and stats.dim == d
    np.testing.assert_allclose(stats.mean(), x.mean(0), rtol=1e-10, atol=1e-10)
    for unbiased in (False, True):
        expected = np.cov(x, rowvar=False, bias=not unbiased).reshape(d, d)
        np.testing.assert_allclose(stats.cov(unbiased=unbiased), expected, rtol=1e-9, atol=1e-10)


@SETTINGS
@given(seeds, dims, st.integers(0, 30), st.integers(0, 30))
def test_merge_equals_single_pass(seed, d, i, j):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, d)) + 5
    i, j = sorted((i, j))
    parts = [FeatureStats(keep_features=True).update(p) for p in (x[:i], x[i:j], x[j:])]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    single = FeatureStats(d, keep_features=True).update(x)
    assert merged.num == single.num == 32
    np.testing.assert_allclose(merged.mean(), single.mean(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.cov(), single.cov(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(merged.features(), x)


def test_large_offsets_stay_accurate():
    # Σxxᵀ/N − μμᵀ loses every digit here (1e16 vs 1); the pairwise update keeps them.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 3)) + 1e8
    stats = FeatureStats()
    for chunk in np.array_split(x, 50):
        stats.update(chunk)
    np.testing.assert_allclose(stats.cov(unbiased=True), np.cov(x, rowvar=False), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_tensors_of_any_float_dtype(dtype):
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    stats = FeatureStats().update(x)
    np.testing.assert_allclose(stats.mean(), x.double().mean(0).numpy(), rtol=1e-12, atol=1e-12)


def test_feature_stats_errors():
    stats = FeatureStats(3)
    with pytest.raises(ValueError, match="mean\\(\\) needs at least 1"):
        stats.mean()
    with pytest.raises(ValueError, match=r"features must have shape \(N, D\), got shape \(3,\)"):
        stats.update(np.zeros(3))
    with pytest.raises(ValueError, match="dimension 2, but these statistics have dim=3"):
        stats.update(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        stats.update(np.full((1, 3), np.inf))
    stats.update(np.ones((1, 3)))
    np.testing.assert_array_equal(stats.cov(), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"cov\(unbiased=True\) needs at least 2"):
        stats.cov(unbiased=True)
    with pytest.raises(ValueError, match="keep_features=True"):
        stats.features()
    with pytest.raises(ValueError, match="other does not"):
        FeatureStats(keep_features=True).merge(stats)
    with pytest.raises(TypeError, match="other must be a FeatureStats"):
        stats.merge(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="dim must be a positive int"):
        FeatureStats(0)


@pytest.mark.parametrize("keep", [False, True])
def test_save_load_round_trip(tmp_path, keep):
    rng = np.random.default_rng(2)
    stats = FeatureStats(keep_features=keep).update(rng.normal(size=(9, 5))).update(rng.normal(size=(4, 5)))
    path = tmp_path / "cache" / "real.npz"
    assert stats.save(path) == str(path)
    stats.save(path)  # overwriting is atomic too
    assert sorted(os.listdir(path.parent)) == ["real.npz"]  # no temporary file left behind
    loaded = FeatureStats.load(path)
    assert (loaded.num, loaded.dim, loaded.keep_features) == (13, 5, keep)
    np.testing.assert_array_equal(loaded.mean(), stats.mean())
    np.testing.assert_array_equal(loaded.cov(), stats.cov())
    if keep:
        np.testing.assert_array_equal(loaded.features(), stats.features())
    # Loaded statistics keep streaming as if never saved.
    more = rng.normal(size=(3, 5))
    np.testing.assert_allclose(loaded.update(more).cov(), stats.update(more).cov(), rtol=1e-12)


def test_empty_stats_round_trip_and_load_errors(tmp_path):
    empty = FeatureStats.from_state_dict(FeatureStats().state_dict())
    assert empty.num == 0 and empty.dim is None
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        FeatureStats.load(tmp_path / "nothing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(2))
    with pytest.raises(ValueError, match="bad.npz.*missing"):
        FeatureStats.load(bad)
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="text.npz"):
        FeatureStats.load(text)


def test_distance_from_stats_and_small_sample_warning():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(60, 4)) + 1
    a, b = FeatureStats().update(x), FeatureStats().update(y)
    for unbiased in (False, True):
        expected = frechet_distance(
            x.mean(0), np.cov(x, rowvar=False, bias=not unbiased), y.mean(0), np.cov(y, rowvar=False, bias=not unbiased)
        )
        assert frechet_distance_from_stats(a, b, unbiased=unbiased) == pytest.approx(expected, rel=1e-10)
    with pytest.warns(SmallSampleWarning, match="50 and 60 samples"):
        frechet_distance_from_stats(a, b, warn_below=256)
    with pytest.raises(ValueError, match="b holds no features"):
        frechet_distance_from_stats(a, FeatureStats(4))
    with pytest.raises(ValueError, match="differ in feature dimension"):
        frechet_distance_from_stats(a, FeatureStats().update(np.zeros((2, 3))))
