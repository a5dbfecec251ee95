"""K-means with faiss's semantics (faiss when installed, a torch re-implementation otherwise), and standardise + PCA.

The clustering protocols (``reference/eval_spec.md`` §4, §5) use ``faiss.Kmeans(d, K, niter, nredo, seed)`` on
the CPU. Its behaviour, read from faiss 1.15 ``Clustering.cpp`` / ``impl/ClusteringHelpers.cpp`` /
``utils/random.cpp``, is what :func:`kmeans` reproduces when faiss is missing:

1. **Subsample.** With N > K·max_points_per_centroid (256), train on the first 256·K entries of a Fisher–Yates
   permutation of the N points drawn from ``std::mt19937(seed)`` (``rand_perm``): K = 21 trains on 5,376
   points whatever N is. All N points are assigned to the trained centroids afterwards.
2. **Init.** Restart r starts from K training points: the first K of ``rand_perm(n_train, seed + 1 + r·15486557)``
   (plain random sampling, not k-means++).
3. **Lloyd.** Each iteration assigns every training point to its nearest centroid (squared L2; the objective is
   the sum of these distances, taken *before* the update), recomputes centroids as means (sum times the float32
   reciprocal of the count) and re-seeds empty clusters by splitting a donor drawn with probability ∝ its size
   from ``mt19937(1234)``, perturbing the copy and the donor by ±1/1024 on alternating coordinates. faiss stops
   early when the objective repeats; here it stops when the assignment repeats (then the update is a no-op).
4. **Restarts.** With nredo > 1 the run with the strictly lowest final objective is kept (ties keep the first).

numpy's legacy ``RandomState(seed)`` seeds MT19937 exactly as ``std::mt19937(seed)`` does, so the fallback draws
the same subsample, the same initial centroids and the same split donors as faiss, and sums centroids in
index order as faiss does. What differs is the last bits of the point-to-centroid distances (faiss's own
SIMD/BLAS kernels): a point equidistant to rounding can go to the other centroid, after which the two Lloyd
trajectories drift apart slightly (``benchmarks/clustering.py``: identical results at K ≤ 100, 99.9% equal
labels at K = 300-500 on 205k points), and restarts whose objectives tie to rounding may rank differently.

:func:`standardize_pca` is NeCo's ``normalize_and_transform``: sklearn ``StandardScaler`` (population std) then
``faiss.PCAMatrix(D, dim)``. It fits on every vector (chunked covariance, float64 totals); faiss's PCAMatrix fits
on a seeded subsample of at most 1000·D vectors, a difference far below the K-means noise.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch
from torch import Tensor

__all__ = ["kmeans", "assign", "standardize_pca", "faiss_available", "faiss_rand_perm_prefix"]

logger = logging.getLogger(__name__)

# faiss ClusteringParameters defaults and constants (Clustering.h, impl/ClusteringHelpers.cpp).
_MIN_POINTS_PER_CENTROID = 39
_REDO_SEED_STRIDE = 15486557
_SPLIT_SEED = 1234
_SPLIT_EPS = np.float32(1.0 / 1024.0)
# Elements of one [chunk, K] distance block (64 MiB in float32): bounds the memory of every assignment pass.
_BLOCK_ELEMENTS = 1 << 24


@functools.cache
def faiss_available() -> bool:
    """Whether ``import faiss`` works (checked once per process)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def kmeans(
    x: Tensor | np.ndarray,
    k: int,
    *,
    iters: int,
    restarts: int,
    seed: int,
    max_points_per_centroid: int = 256,
    use_faiss: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """K-means on the rows of `x` with faiss ``Kmeans`` semantics (see the module docstring).

    Args:
        x: float [N, d] vectors (converted to contiguous float32).
        k: number of clusters K (N ≥ K).
        iters: Lloyd iterations per restart (faiss ``niter``).
        restarts: runs from different random inits; the lowest objective wins (faiss ``nredo``).
        seed: faiss ``seed`` (≥ 0): fixes the training subsample and the inits.
        max_points_per_centroid: train on at most K times this many points (faiss default 256).
        use_faiss: True requires faiss, False forces the torch fallback, None uses faiss when importable.

    Returns:
        ``(centroids [K, d] float32, labels [N] int64)``, the labels being every point's nearest centroid.

    Raises:
        ValueError: N < K, K < 1 or a negative seed.
        ImportError: ``use_faiss=True`` without faiss.
    """
    xs = np.ascontiguousarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float32)
    if xs.ndim != 2:
        raise ValueError(f"kmeans expects [N, d] vectors, got shape {xs.shape}")
    n, d = xs.shape
    if k < 1 or n < k:
        raise ValueError(f"kmeans needs 1 <= K <= N, got K={k} for N={n} points")
    if seed < 0:
        raise ValueError(f"seed must be >= 0 (faiss draws a clock seed for negative ones), got {seed}")
    if use_faiss is None:
        use_faiss = faiss_available()
    if use_faiss:
        import faiss  # ImportError here is the documented behaviour of use_faiss=True

        km = faiss.Kmeans(d, k, niter=iters, nredo=restarts, seed=seed, max_points_per_centroid=max_points_per_centroid)
        km.train(xs)
        _, idx = km.index.search(xs, 1)
        return np.asarray(km.centroids, dtype=np.float32), idx[:, 0].astype(np.int64)
    centroids = _train_torch(torch.from_numpy(xs), k, iters, restarts, seed, max_points_per_centroid)
    labels, _ = _assign(torch.from_numpy(xs), centroids)
    return centroids.numpy(), labels.numpy()


def assign(x: Tensor | np.ndarray, centroids: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row, computed in blocks so memory stays bounded.

    Args:
        x: float [N, d].
        centroids: float [K, d].

    Returns:
        ``(labels [N] int64, squared distances [N] float32)``; ties go to the lowest centroid index.
    """
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x).float()
    ct = torch.as_tensor(centroids).float()
    labels, dist = _assign(xt, ct)
    return labels.numpy(), dist.numpy()


def faiss_rand_perm_prefix(n: int, m: int, seed: int) -> np.ndarray:
    """The first `m` entries of faiss ``rand_perm(perm, n, seed)`` (int64 [m]).

    faiss shuffles ``0..n-1`` with Fisher–Yates, swapping position i with ``i + mt() % (n - i)`` where ``mt`` is
    ``std::mt19937((unsigned) seed)``. Positions before i are final after step i, so the prefix needs m steps
    and a dictionary of displaced entries, not the whole permutation.
    """
    if not 0 <= m <= n:
        raise ValueError(f"prefix length {m} outside [0, {n}]")
    steps = min(m, n - 1)
    raw = np.random.RandomState(seed % 2**32)._bit_generator.random_raw(steps)  # MT19937 == std::mt19937
    i = np.arange(steps, dtype=np.uint64)
    targets = (i + raw % (np.uint64(n) - i)).astype(np.int64).tolist()
    moved: dict[int, int] = {}
    out = np.empty(m, dtype=np.int64)
    for pos, j in enumerate(targets):
        vi, vj = moved.get(pos, pos), moved.get(j, j)
        out[pos] = vj
        moved[j] = vi
    if m > steps:  # m == n: the last entry is whatever was left in place
        out[m - 1] = moved.get(m - 1, m - 1)
    return out


def _assign(x: Tensor, c: Tensor, x_sq: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(labels [N] int64, squared distances [N] float32) by ‖x‖² + ‖c‖² − 2·x·c, as faiss's BLAS path."""
    n, k = x.shape[0], c.shape[0]
    c_sq = (c * c).sum(1)
    labels = torch.empty(n, dtype=torch.int64)
    dist = torch.empty(n, dtype=torch.float32)
    step = max(1, _BLOCK_ELEMENTS // max(k, 1))
    for s in range(0, n, step):
        xb = x[s : s + step]
        xb_sq = x_sq[s : s + step] if x_sq is not None else (xb * xb).sum(1)
        d2 = torch.addmm(c_sq[None, :], xb, c.T, alpha=-2.0)  # [chunk, K]: ‖c‖² − 2·x·c
        best, idx = d2.min(1)
        labels[s : s + step] = idx
        dist[s : s + step] = (best + xb_sq).clamp_min_(0.0)
    return labels, dist


def _train_torch(x: Tensor, k: int, iters: int, restarts: int, seed: int, max_points_per_centroid: int) -> Tensor:
    """faiss ``Clustering::train`` on [N, d] float32: subsample, restarts, Lloyd; returns centroids [K, d]."""
    n = x.shape[0]
    if n > k * max_points_per_centroid:
        x = x[torch.from_numpy(faiss_rand_perm_prefix(n, k * max_points_per_centroid, seed))]
        n = x.shape[0]
    elif n < k * _MIN_POINTS_PER_CENTROID:
        logger.warning("clustering %d points to %d centroids: faiss asks for at least %d", n, k, k * 39)
    if n == k:  # faiss's corner case: the points are the centroids
        return x.clone()
    x_sq = (x * x).sum(1)
    best, best_obj = None, float("inf")
    for redo in range(restarts):
        init = torch.from_numpy(faiss_rand_perm_prefix(n, k, seed + 1 + redo * _REDO_SEED_STRIDE))
        centroids, obj = _lloyd(x, x_sq, x[init].clone(), iters)
        logger.debug("k-means K=%d restart %d/%d: objective %.6g", k, redo + 1, restarts, obj)
        if best is None or obj < best_obj:  # strict: ties keep the earlier restart, as faiss does
            best, best_obj = centroids, obj
    return best


def _lloyd(x: Tensor, x_sq: Tensor, c: Tensor, iters: int) -> tuple[Tensor, float]:
    """Lloyd iterations from centroids `c`; returns (centroids, objective of the last assignment step)."""
    n, k = x.shape[0], c.shape[0]
    prev = None
    obj = 0.0
    for _ in range(iters):
        labels, dist = _assign(x, c, x_sq)
        obj = float(dist.sum(dtype=torch.float64))
        if prev is not None and torch.equal(labels, prev):
            break  # the update would reproduce c: every later iteration is a no-op
        counts = torch.bincount(labels, minlength=k).to(torch.float32)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        recip = torch.where(counts > 0, 1.0 / counts.clamp_min(1.0), torch.zeros_like(counts))
        c = sums * recip[:, None]
        if bool((counts == 0).any()):
            c = _split_clusters(c, counts.numpy().astype(np.float32), n)
        prev = labels
    return c, obj


def _split_clusters(c: Tensor, hassign: np.ndarray, n: int) -> Tensor:
    """faiss ``split_clusters``: give every empty cluster half of a donor drawn ∝ size (rng ``mt19937(1234)``)."""
    k = c.shape[0]
    cn = c.numpy().copy()
    raw_rng = np.random.RandomState(_SPLIT_SEED)._bit_generator
    mt_max = np.float32(4294967295.0)  # float(mt.max()) rounds to 2**32 in float32, as in faiss
    denom = float(np.float32(n - k))
    for ci in range(k):
        if hassign[ci] != 0:
            continue
        cj, found = 0, False
        for _ in range(10 * k):
            p = (float(hassign[cj]) - 1.0) / denom
            r = float(np.float32(raw_rng.random_raw()) / mt_max)
            if r < p:
                found = True
                break
            cj = (cj + 1) % k
        if not found:  # faiss's deterministic fallback: the largest cluster
            cj = int(np.argmax(hassign))
        cn[ci] = cn[cj]
        up, down = np.float32(1) + _SPLIT_EPS, np.float32(1) - _SPLIT_EPS
        cn[ci, 0::2] *= up
        cn[cj, 0::2] *= down
        cn[ci, 1::2] *= down
        cn[cj, 1::2] *= up
        hassign[ci] = hassign[cj] / 2
        hassign[cj] -= hassign[ci]
    return torch.from_numpy(cn)


def standardize_pca(x: np.ndarray, dim: int) -> np.ndarray:
    """Per-dimension z-score (population std) then PCA to `dim` components, float32 [N, dim].

    z = (x − μ) / σ with σ = 1 where a dimension is constant (sklearn's rule); the principal axes are the top
    `dim` eigenvectors of Cov(z) = diag(σ)⁻¹ Cov(x) diag(σ)⁻¹; the covariance is summed over row chunks
    (float32 products, float64 totals), so a float16 memmap of millions of vectors is never copied whole. The
    projection is of the centred z (the PCA re-centring is exact because z has mean zero by construction).
    Each axis's sign is fixed so that its largest-magnitude coordinate is positive; K-means ignores it anyway.

    Args:
        x: [N, D] vectors (any float dtype; a memmap is fine).
        dim: output dimension (≤ D).

    Returns:
        float32 [N, dim].
    """
    n, d = x.shape
    if not 1 <= dim <= d:
        raise ValueError(f"PCA dimension {dim} outside [1, {d}]")
    step = max(1, (1 << 22) // d)
    mean = np.zeros(d)
    for s in range(0, n, step):
        mean += x[s : s + step].astype(np.float64).sum(0)
    mean /= n
    mean32 = mean.astype(np.float32)
    cov = np.zeros((d, d))
    for s in range(0, n, step):  # float32 products per chunk (BLAS speed), float64 sums across chunks
        xc = x[s : s + step].astype(np.float32) - mean32
        cov += (xc.T @ xc).astype(np.float64)
    cov /= n
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    std[std < 10 * np.finfo(np.float64).eps] = 1.0  # sklearn _handle_zeros_in_scale
    cov_z = cov / np.outer(std, std)
    _, vecs = np.linalg.eigh(cov_z)  # ascending eigenvalues
    axes = vecs[:, ::-1][:, :dim]
    axes *= np.sign(axes[np.abs(axes).argmax(0), np.arange(dim)])
    proj = (axes / std[:, None]).astype(np.float32)  # z·A = (x − μ)·(A / σ)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, step):
        out[s : s + step] = (x[s : s + step].astype(np.float32) - mean32) @ proj
    return out
