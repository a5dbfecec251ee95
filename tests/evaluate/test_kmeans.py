"""K-means with faiss semantics (subsample, restarts, empty-cluster splits) and standardise + PCA."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import mosic.evaluate.kmeans as km
from mosic.evaluate.kmeans import assign, faiss_available, faiss_rand_perm_prefix, kmeans, standardize_pca

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")
BACKENDS = [False, pytest.param(True, marks=needs_faiss)]
STRIDE = 15486557  # faiss's seed offset between restarts


def mixture(n_per: int, centres: np.ndarray, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(centres)), n_per)
    x = centres[truth] + spread * rng.standard_normal((len(truth), centres.shape[1]))
    return x.astype(np.float32), truth


def matched_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest coordinate difference between two centroid sets after the best one-to-one row matching."""
    cost = ((a[:, None] - b[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.abs(a[rows] - b[cols]).max())


@pytest.mark.parametrize("use_faiss", BACKENDS)
def test_recovers_separable_mixture(use_faiss):
    # Random init can put two centres in one blob; 10 restarts find the right partition for every seed 0-9.
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=np.float32)
    x, truth = mixture(200, centres, 0.7, seed=0)
    c, labels = kmeans(x, 4, iters=50, restarts=10, seed=0, use_faiss=use_faiss)
    assert c.shape == (4, 2) and c.dtype == np.float32
    assert labels.shape == (800,) and labels.dtype == np.int64
    # each true cluster is exactly one label, and the labels are distinct
    mapping = {t: set(labels[truth == t].tolist()) for t in range(4)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len({next(iter(v)) for v in mapping.values()}) == 4
    assert matched_gap(c, centres) < 0.2


@pytest.mark.parametrize("use_faiss", BACKENDS)
def test_restarts_keep_the_lowest_objective(use_faiss):
    # 8 overlapping blobs and K = 6: random inits land in visibly different local optima.
    rng = np.random.default_rng(3)
    x, _ = mixture(60, rng.uniform(0, 6, size=(8, 2)).astype(np.float32), 0.6, seed=1)
    seed, restarts = 2, 4
    objective = []
    singles = []
    for r in range(restarts):  # restart r of seed s starts where a single run with seed s + r·stride does
        c, _ = kmeans(x, 6, iters=100, restarts=1, seed=seed + r * STRIDE, use_faiss=use_faiss)
        singles.append(c)
        objective.append(float(assign(x, c)[1].astype(np.float64).sum()))
    assert len({round(o, 3) for o in objective}) > 1, "the data should give different local optima"
    best, _ = kmeans(x, 6, iters=100, restarts=restarts, seed=seed, use_faiss=use_faiss)
    np.testing.assert_allclose(best, singles[int(np.argmin(objective))], atol=1e-5)


def test_restart_selection_is_strict_and_by_objective(monkeypatch):
    objectives = iter([3.0, 1.0, 1.0, 2.0])

    def fake_lloyd(x, x_sq, c, iters):
        return c, next(objectives)

    monkeypatch.setattr(km, "_lloyd", fake_lloyd)
    x = np.random.default_rng(0).standard_normal((100, 2)).astype(np.float32)
    c, _ = kmeans(x, 3, iters=5, restarts=4, seed=7, use_faiss=False)
    # restart 1 (objective 1.0) wins; restart 2 ties it and loses; its init is rand_perm(n, seed + 1 + stride)
    np.testing.assert_array_equal(c, x[faiss_rand_perm_prefix(100, 3, 7 + 1 + STRIDE)])


def test_trains_on_a_seeded_subsample_of_256_k_points(monkeypatch):
    seen = []
    real = km._lloyd

    def spy(x, x_sq, c, iters):
        seen.append(x.numpy().copy())
        return real(x, x_sq, c, iters)

    monkeypatch.setattr(km, "_lloyd", spy)
    x = np.random.default_rng(0).standard_normal((3000, 4)).astype(np.float32)
    _, labels = kmeans(x, 3, iters=5, restarts=2, seed=11, max_points_per_centroid=256, use_faiss=False)
    assert [len(s) for s in seen] == [768, 768]  # 256·K points, the same subsample for every restart
    assert labels.shape == (3000,)  # then every point is assigned
    expected = x[faiss_rand_perm_prefix(3000, 768, 11)]
    np.testing.assert_array_equal(seen[0], expected)
    seen.clear()
    kmeans(x, 3, iters=5, restarts=1, seed=12, use_faiss=False)
    assert not np.array_equal(seen[0], expected)  # another seed, another subsample
    seen.clear()
    kmeans(x, 3, iters=5, restarts=1, seed=11, max_points_per_centroid=2000, use_faiss=False)
    assert len(seen[0]) == 3000  # N ≤ 256·K: no subsample


def test_deterministic_per_seed():
    x, _ = mixture(400, np.random.default_rng(0).uniform(0, 4, (6, 5)).astype(np.float32), 1.0, seed=2)
    a = kmeans(x, 4, iters=20, restarts=2, seed=5, max_points_per_centroid=64, use_faiss=False)
    b = kmeans(x, 4, iters=20, restarts=2, seed=5, max_points_per_centroid=64, use_faiss=False)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_rand_perm_prefix_is_a_permutation_prefix():
    for n, m, seed in [(1, 1, 0), (10, 10, 3), (1000, 37, 2**32 + 5), (50, 0, 1)]:
        p = faiss_rand_perm_prefix(n, m, seed)
        assert len(p) == m and len(set(p.tolist())) == m and (p >= 0).all() and (p < n).all()
    np.testing.assert_array_equal(faiss_rand_perm_prefix(100, 100, 4)[:30], faiss_rand_perm_prefix(100, 30, 4))


def test_rand_perm_prefix_golden_values():
    # faiss 1.15.1 faiss.rand_perm outputs, so the RNG replica is checked where faiss is not installed
    assert faiss_rand_perm_prefix(1000, 8, 5).tolist() == [411, 49, 291, 695, 678, 515, 112, 606]
    expected = [79083, 42086, 35948, 67924, 61251, 19662, 44735, 51094]
    assert faiss_rand_perm_prefix(100000, 8, 1235).tolist() == expected


@needs_faiss
def test_rand_perm_prefix_matches_faiss():
    import faiss

    for n, seed in [(10, 0), (1000, 5), (54321, 1234), (77, 2**32 + 3)]:
        perm = np.empty(n, dtype=np.int32)
        faiss.rand_perm(faiss.swig_ptr(perm), n, seed)
        np.testing.assert_array_equal(faiss_rand_perm_prefix(n, min(n, 500), seed), perm[:500])


@needs_faiss
def test_torch_fallback_matches_faiss():
    # N > 256·K so both train on the same seeded subsample, from the same inits.
    centres = np.random.default_rng(4).uniform(-5, 5, size=(6, 8)).astype(np.float32)
    x, _ = mixture(500, centres, 1.0, seed=5)
    for seed in (0, 1):
        cf, lf = kmeans(x, 5, iters=30, restarts=3, seed=seed, max_points_per_centroid=64, use_faiss=True)
        ct, lt = kmeans(x, 5, iters=30, restarts=3, seed=seed, max_points_per_centroid=64, use_faiss=False)
        assert matched_gap(cf, ct) < 1e-4
        # labels agree up to the order of the centroids
        order = linear_sum_assignment(((cf[:, None] - ct[None]) ** 2).sum(-1))[1]
        assert (order[lf] == lt).mean() > 0.999


@needs_faiss
def test_empty_cluster_split_matches_faiss(monkeypatch):
    # 2,000 copies of one point: random inits pick it twice, the duplicate centroid goes empty and is split.
    # (The copies sit off their blob's mean so that no point is equidistant from the two halves of a split.)
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0]], dtype=np.float32)
    x = (np.repeat(centres, 1000, axis=0) + 0.5 * rng.normal(size=(3000, 3))).astype(np.float32)
    x = np.concatenate([x, np.repeat(x[:1] + np.float32(0.4), 2000, axis=0)])
    splits = []
    real = km._split_clusters
    monkeypatch.setattr(km, "_split_clusters", lambda c, h, n: splits.append(int((h == 0).sum())) or real(c, h, n))
    for seed in (1, 2, 4):
        cf, lf = kmeans(x, 5, iters=20, restarts=1, seed=seed, max_points_per_centroid=1000, use_faiss=True)
        ct, lt = kmeans(x, 5, iters=20, restarts=1, seed=seed, max_points_per_centroid=1000, use_faiss=False)
        np.testing.assert_allclose(ct, cf, atol=1e-5)
        np.testing.assert_array_equal(lt, lf)
        assert np.bincount(lt, minlength=5).min() > 0
    assert sum(splits) >= 4  # the fallback did split (faiss: 1, 3 and 6 splits for these seeds)


def test_input_checks():
    x = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="K <= N"):
        kmeans(x, 6, iters=1, restarts=1, seed=0, use_faiss=False)
    with pytest.raises(ValueError, match="seed"):
        kmeans(x, 2, iters=1, restarts=1, seed=-1, use_faiss=False)


def test_n_equal_k_copies_the_points():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    c, labels = kmeans(x, 4, iters=10, restarts=2, seed=0, use_faiss=False)
    np.testing.assert_array_equal(c, x)
    np.testing.assert_array_equal(labels, np.arange(4))


def test_standardize_pca_shapes_and_variance():
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((6, 6))
    x = (rng.standard_normal((3000, 6)) * [5, 3, 1, 0.5, 0.2, 0.1]) @ mixing + 100.0
    x = np.concatenate([x, np.full((3000, 1), 7.0)], axis=1).astype(np.float16)  # a constant dimension
    y = standardize_pca(x, 3)
    assert y.shape == (3000, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-3)
    var = y.var(0)
    assert (np.diff(var) <= 1e-6).all()  # components sorted by explained variance
    full = standardize_pca(x, 7)
    # standardised non-constant dims have unit variance each: the total is 6 (the constant one adds 0)
    assert full.var(0).sum() == pytest.approx(6.0, rel=1e-3)
    np.testing.assert_allclose(full[:, :3], y, atol=1e-4)
    # against an SVD of the z-scored data, up to the sign of each axis
    z = x.astype(np.float64)
    std = z.std(0)
    std[std == 0] = 1
    z = (z - z.mean(0)) / std
    ref = z @ np.linalg.svd(z, full_matrices=False)[2][:3].T
    np.testing.assert_allclose(np.abs(y), np.abs(ref), atol=2e-3)
    with pytest.raises(ValueError, match="PCA dimension"):
        standardize_pca(x, 8)
