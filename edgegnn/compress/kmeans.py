"""Seeded, deterministic k-means (k-means++ initialization, Lloyd iterations) in numpy.

The product-quantization pass clusters each sub-space of a table's rows (R points of D
dims, K <= 256 centroids). Written here rather than taken from a library: neither
scikit-learn nor faiss is a dependency of edgegnn (and neither is installed in its
environment), the problem is small (a [R, K] distance matrix per iteration), and owning
it keeps the result a pure function of (points, K, seed, iterations): same inputs, same
bytes, on every machine.

    init (k-means++): c_0 = a uniformly drawn point; c_j = a point drawn with probability
        ∝ w_p · min_{i<j} ‖p - c_i‖² (a point already chosen has probability 0).
    Lloyd: assign a(p) = argmin_k ‖p - c_k‖² (ties: the lower k), then
        c_k = Σ_{a(p)=k} w_p p / Σ_{a(p)=k} w_p; an emptied cluster takes the point farthest
        from its centroid. Stops after `iterations` or when no assignment changes.
If there are at most K distinct points, they are the centroids (exact; the rest are zero).
"""

from __future__ import annotations

import numpy as np

from edgegnn.errors import ConfigError

ASSIGN_CELLS = 1 << 24      # distance-matrix cells per chunk of `assign` (64 MB of float32)


def kmeans(points: np.ndarray, k: int, *, seed: int = 0, iterations: int = 25,
           weights: np.ndarray | None = None, seeding_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centroids float32 [k, D] and assignments int64 [N] of `points` [N, D].

    Args:
        points: the N points (any float dtype; computed in float64 for stable sums).
        k: number of centroids, >= 1.
        seed: seed of the k-means++ draws.
        iterations: at most this many Lloyd iterations.
        weights: optional non-negative weight per point [N] (None: all 1).
        seeding_points: draw the k-means++ centroids from a seeded sample of at most this many
            points (None: all). The seeding is k sequential passes over its points; with
            thousands of centroids (inverted lists) a sample of ~16 points per centroid seeds
            as well, and the Lloyd iterations then run on every point.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise ConfigError("kmeans.points", points.shape, "need a non-empty [N, D] array")
    if k < 1:
        raise ConfigError("kmeans.k", k, "need at least one centroid")
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=np.float64)
    distinct, inverse = np.unique(points, axis=0, return_inverse=True)
    if len(distinct) <= k:
        centroids = np.zeros((k, points.shape[1]))
        centroids[:len(distinct)] = distinct
        return centroids.astype(np.float32), inverse.reshape(-1).astype(np.int64)
    rng = np.random.default_rng(seed)
    if seeding_points is not None and len(points) > seeding_points:
        drawn = np.sort(rng.choice(len(points), seeding_points, replace=False))
        centroids = _plus_plus(points[drawn], k, weights[drawn], rng)
    else:
        centroids = _plus_plus(points, k, weights, rng)
    labels = assign(points, centroids)
    for _ in range(iterations):
        centroids = _update(points, labels, centroids, weights)
        new = assign(points, centroids)
        if np.array_equal(new, labels):
            break
        labels = new
    return centroids.astype(np.float32), labels


def assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """int64 [N]: the nearest centroid of each point (squared Euclidean; ties: the lower index).

    argmin_k ‖p - c_k‖² = argmin_k (‖c_k‖² - 2 p·c_k): ‖p‖² is dropped, and the [N, K]
    matrix is float32 (this is the inner loop of Lloyd's iterations).
    """
    p32, c32 = points.astype(np.float32), centroids.astype(np.float32)
    norms = (c32 ** 2).sum(1)[None, :]
    step = max(1, ASSIGN_CELLS // max(len(c32), 1))       # [step, K] float32 at a time
    return np.concatenate([np.argmin(norms - 2.0 * (p32[i:i + step] @ c32.T), axis=1)
                           for i in range(0, len(p32), step)] or [np.zeros(0, np.int64)])


def _sq_distances(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """[N, K] ‖p - c‖² = ‖p‖² - 2 p·c + ‖c‖² (clamped at 0 against rounding)."""
    out = (points ** 2).sum(1)[:, None] - 2.0 * points @ centroids.T + (centroids ** 2).sum(1)[None, :]
    return np.maximum(out, 0.0)


def _sq_distance(points: np.ndarray, point_norms: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """[N] ‖p - c‖² to one centroid [D], from the points' ‖p‖² (a matrix-vector product: the
    seeding's inner loop, k times over the same points)."""
    return np.maximum(point_norms - 2.0 * (points @ centroid) + centroid @ centroid, 0.0)


def _plus_plus(points: np.ndarray, k: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each new centroid drawn ∝ weight · squared distance to the nearest chosen one."""
    norms = (points ** 2).sum(1)          # once: k draws over the same points
    chosen = [int(rng.integers(len(points)))]
    nearest = _sq_distance(points, norms, points[chosen[0]])
    for _ in range(1, k):
        mass = weights * nearest
        total = mass.sum()
        index = int(rng.choice(len(points), p=mass / total)) if total > 0 else int(np.argmax(nearest))
        chosen.append(index)
        nearest = np.minimum(nearest, _sq_distance(points, norms, points[index]))
    return points[chosen].copy()


def _update(points: np.ndarray, labels: np.ndarray, centroids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted means of the clusters; an empty cluster takes the worst-fitted point."""
    k, dim = centroids.shape
    mass = np.bincount(labels, weights=weights, minlength=k)
    sums = np.stack([np.bincount(labels, weights=weights * points[:, j], minlength=k) for j in range(dim)], axis=1)
    out = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-300)[:, None], centroids)
    empty = np.flatnonzero(mass == 0)
    if len(empty):
        error = ((points - out[labels]) ** 2).sum(1)
        worst = np.argsort(-error, kind="stable")[:len(empty)]
        out[empty] = points[worst]
    return out
