"""FID, KID, precision/recall and Inception Score, computed from feature (or class-probability)
arrays. Pure numpy in float64: no network, no torch, so every formula is testable in isolation.

References (re-implemented from the papers' definitions):
- FID: Heusel et al. 2017, Frechet distance between Gaussians fitted to the two feature sets.
- KID: Binkowski et al. 2018, unbiased MMD^2 with the cubic polynomial kernel, averaged over subsets.
- Precision/recall: Kynkaanniemi et al. 2019, k-NN hyperspheres around each set's points.
- IS: Salimans et al. 2016, exp(E_x KL(p(y|x) || p(y))), mean over splits.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GaussianStats(NamedTuple):
    mu: np.ndarray  # [D]
    sigma: np.ndarray  # [D, D]
    count: int


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected a [N, D] feature array with N >= 2, got shape {list(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: features contain NaN or inf (a diverged generator?)")
    return x


def gaussian_stats(features: np.ndarray) -> GaussianStats:
    x = _as_features(features, "features")
    return GaussianStats(x.mean(axis=0), np.cov(x, rowvar=False), len(x))


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via its eigendecomposition."""
    values, vectors = np.linalg.eigh((m + m.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    tr((S1 S2)^(1/2)) equals tr((A S2 A)^(1/2)) with A = S1^(1/2), and A S2 A is symmetric PSD,
    so it is computed from eigenvalues: no complex matrix square root, no imaginary residue to
    discard, and exact for singular covariances (fewer samples than feature dimensions).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
            f"{sigma2.shape} (were they made with different feature networks?)"
        )
    a = _sqrt_psd(sigma1)
    cross = np.linalg.eigvalsh(a @ sigma2 @ a)
    trace_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt, 0.0))


def fid(real: np.ndarray | GaussianStats, fake: np.ndarray | GaussianStats) -> float:
    r = real if isinstance(real, GaussianStats) else gaussian_stats(real)
    f = fake if isinstance(fake, GaussianStats) else gaussian_stats(fake)
    return frechet_distance(r.mu, r.sigma, f.mu, f.sigma)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (the kernel KID uses)."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    # Diagonal terms k(a, a) are dropped: they make the estimate biased upwards.
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    )


def kid(
    real: np.ndarray, fake: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID as (mean, std) over random subsets of both sets (sizes capped by the smaller set)."""
    x, y = _as_features(real, "real features"), _as_features(fake, "fake features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: real {x.shape[1]}, fake {y.shape[1]}")
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd2(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))


def _pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _knn_radii(x: np.ndarray, k: int, batch: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in its own set (itself excluded)."""
    radii = np.empty(len(x))
    for start in range(0, len(x), batch):
        d = _pairwise_distances(x[start : start + batch], x)
        # Index k, not k-1: position 0 of each sorted row is the point itself (distance 0).
        radii[start : start + batch] = np.partition(d, k, axis=1)[:, k]
    return radii


def _coverage(manifold: np.ndarray, radii: np.ndarray, probes: np.ndarray, batch: int) -> float:
    """Share of probes that fall inside at least one hypersphere of the manifold."""
    inside = np.zeros(len(probes), dtype=bool)
    for start in range(0, len(probes), batch):
        d = _pairwise_distances(probes[start : start + batch], manifold)
        inside[start : start + batch] = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3, batch: int = 1024) -> tuple[float, float]:
    """Precision: share of fakes inside the real manifold; recall: share of reals inside the fake one."""
    x, y = _as_features(real, "real features"), _as_features(fake, "fake features")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: real {x.shape[1]}, fake {y.shape[1]}")
    if k < 1 or k >= min(len(x), len(y)):
        raise ValueError(f"k={k} needs 1 <= k < the smaller set size ({min(len(x), len(y))})")
    precision = _coverage(x, _knn_radii(x, k, batch), y, batch)
    recall = _coverage(y, _knn_radii(y, k, batch), x, batch)
    return precision, recall


def inception_score(probabilities: np.ndarray, *, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of exp(E KL(p(y|x) || p(y))) over `splits` equal parts of the samples."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits:
        raise ValueError(f"expected [N, classes] probabilities with N >= splits={splits}, got {list(p.shape)}")
    if (p < 0).any() or not np.allclose(p.sum(1), 1, atol=1e-4):
        raise ValueError("inception_score takes class probabilities (rows >= 0 summing to 1), not logits")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        # 0 * log(0) counts as 0: confident predictions are the normal case, not an error.
        kl = np.where(
            part > 0, part * (np.log(np.where(part > 0, part, 1)) - np.log(np.where(marginal > 0, marginal, 1))), 0
        )
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
