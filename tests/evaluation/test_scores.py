"""Metric math against closed-form answers and brute force (no network involved)."""

import numpy as np
import pytest
import scipy.linalg

from trainer.evaluation import scores


def _random_psd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_one_dimensional_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    got = scores.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]]))
    assert got == pytest.approx(9 + 1, rel=1e-12)


def test_frechet_commuting_covariances_closed_form():
    rng = np.random.default_rng(0)
    s1 = _random_psd(rng, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    # S2 = c^2 S1: tr(S1 + S2 - 2 (S1 S2)^1/2) = (1 - c)^2 tr(S1)
    expected = ((mu1 - mu2) ** 2).sum() + (1 - 3.0) ** 2 * np.trace(s1)
    assert scores.frechet_distance(mu1, s1, mu2, 9 * s1) == pytest.approx(expected, rel=1e-9)


def test_frechet_matches_scipy_sqrtm_formula_and_is_symmetric():
    rng = np.random.default_rng(1)
    s1, s2 = _random_psd(rng, 12), _random_psd(rng, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert scores.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert scores.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero_and_shift_gives_squared_distance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 8))
    assert scores.fid(x, x) == pytest.approx(0, abs=1e-9)
    # Same covariance, mean moved by delta: FID -> |delta|^2 = 4.
    delta = np.array([2.0] + [0.0] * 7)
    assert scores.fid(x, x + delta) == pytest.approx(4.0, rel=1e-9)
    independent = scores.fid(x, rng.normal(size=(4000, 8)))
    assert independent < 0.05  # sampling noise only


def test_fid_singular_covariance_fewer_samples_than_dims():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 20))
    assert scores.fid(x, x) == pytest.approx(0, abs=1e-9)


def test_fid_mismatched_features_is_a_clear_error():
    with pytest.raises(ValueError, match="different feature networks"):
        scores.fid(np.zeros((3, 4)) + np.arange(3)[:, None], np.zeros((3, 5)) + np.arange(3)[:, None])
    with pytest.raises(ValueError, match="NaN"):
        scores.fid(np.full((3, 2), np.nan), np.ones((3, 2)))


def test_polynomial_mmd_matches_brute_force():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 0.5
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(a, b) for a in x for b in y) / (7 * 5)
    assert scores.polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_same_distribution_near_zero_shifted_clearly_larger():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(600, 16))
    same, _ = scores.kid(real, rng.normal(size=(600, 16)), subsets=20, subset_size=300)
    shifted, _ = scores.kid(real, rng.normal(size=(600, 16)) + 0.5, subsets=20, subset_size=300)
    assert abs(same) < 0.01
    assert shifted > 0.1 > 10 * abs(same)


def test_precision_recall_identical_disjoint_and_half_covered():
    rng = np.random.default_rng(6)
    centres = np.eye(4) * 50
    real = np.concatenate([c + rng.normal(size=(100, 4)) for c in centres])
    assert scores.precision_recall(real, real) == (1.0, 1.0)
    far = real + 1000
    assert scores.precision_recall(real, far) == (0.0, 0.0)
    # Fakes that are exactly the reals of two of the four modes: precision 1, recall 1/2.
    assert scores.precision_recall(real, real[:200]) == (1.0, 0.5)
    # Fresh draws from two modes: nearly all realistic, half the modes missed.
    half = np.concatenate([c + rng.normal(size=(200, 4)) for c in centres[:2]])
    precision, recall = scores.precision_recall(real, half)
    assert precision > 0.85
    assert 0.4 < recall <= 0.5


def test_inception_score_known_cases():
    ten_classes = np.eye(10)[np.arange(1000) % 10]
    score, std = scores.inception_score(ten_classes, splits=10)
    assert score == pytest.approx(10, rel=1e-9) and std == pytest.approx(0, abs=1e-9)
    assert scores.inception_score(np.eye(10)[np.zeros(100, int)])[0] == pytest.approx(1)
    assert scores.inception_score(np.full((100, 10), 0.1))[0] == pytest.approx(1)
    # Two equally likely classes predicted with certainty: exp(log 2) = 2.
    assert scores.inception_score(np.eye(10)[np.arange(100) % 2])[0] == pytest.approx(2)
    with pytest.raises(ValueError, match="not logits"):
        scores.inception_score(np.random.default_rng(0).normal(size=(20, 3)))
