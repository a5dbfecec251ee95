"""(Over)clustering: separable toy features give mIoU ≈ 1 with Hungarian (K = G) and many-to-one (K > G)."""

import numpy as np
import pytest
from eval_toys import ColourExtractor, ToySet

import mosic.evaluate.clustering as clustering
from mosic.config import ClusteringConfig
from mosic.evaluate.clustering import overcluster, score_clusters
from mosic.evaluate.kmeans import faiss_available


def config(**kw) -> ClusteringConfig:
    base = dict(enabled=True, ks=[0, 8, 12], pca_dim=8, iters=20, restarts=5, seeds=2, mask_size=16)
    return ClusteringConfig(**(base | kw))


@pytest.fixture(params=[False, pytest.param(True, marks=pytest.mark.skipif(not faiss_available(), reason="no faiss"))])
def backend(request, monkeypatch):
    monkeypatch.setattr(clustering, "faiss_available", lambda: request.param)
    return "faiss" if request.param else "torch"


def test_separable_features_cluster_perfectly(backend):
    val = ToySet(12, 5, 255, seed=0)
    out = overcluster(val, ColourExtractor(), config())
    assert out["backend"] == backend
    assert list(out["k"]) == [5, 8, 12]  # K = 0 means G = 5
    assert out["k"][5]["matching"] == "hungarian"
    assert out["k"][8]["matching"] == out["k"][12]["matching"] == "many_to_one"
    for k, res in out["k"].items():
        assert len(res["per_seed"]) == 2
        assert res["miou"] == pytest.approx(1.0, abs=1e-9), k
    assert (out["images"], out["vectors"], out["pca_dim"], out["num_classes"]) == (12, 12 * 16, 8, 5)


def test_ade_like_clean_vs_parity():
    # ignore label 0 is also class 0, never present in the GT: parity averages it in as a zero
    val = ToySet(12, 5, 0, seed=0, first_class=1)
    clean = overcluster(val, ColourExtractor(), config(ks=[0, 9], seeds=1))
    parity = overcluster(val, ColourExtractor(), config(ks=[0, 9], seeds=1), parity=True)
    assert clean["averaged_classes"] == 4 and parity["averaged_classes"] == 5
    assert clean["k"][9]["miou"] == pytest.approx(1.0)  # many-to-one: every cluster is pure
    # K = G = 5 for 4 colours: a colour's second cluster is matched to the absent class 0 and costs IoU
    assert clean["k"][5]["miou"] < 1.0
    for k in (5, 9):
        assert parity["k"][k]["miou"] == pytest.approx(clean["k"][k]["miou"] * 4 / 5)


def test_pca_dim_is_capped_at_the_feature_width():
    out = overcluster(ToySet(6, 5, 255, seed=1), ColourExtractor(), config(ks=[5], pca_dim=64, seeds=1))
    assert out["pca_dim"] == 16


def test_score_clusters_by_hand():
    # 2×2 label grid upsampled to 4×4; cluster 1 is class 0, cluster 0 is class 1 (a permutation)
    labels = np.array([[[1, 0], [1, 1]]])
    masks = np.kron(np.array([[0, 1], [0, 0]]), np.ones((2, 2), dtype=np.uint8))[None].astype(np.uint8)
    out = score_clusters(labels, masks, num_clusters=2, num_classes=2, ignore_index=255)
    assert out["matching"] == "hungarian" and out["miou"] == pytest.approx(1.0)
    masks[0, 0, 0] = 255  # ignored pixels do not count
    assert score_clusters(labels, masks, num_clusters=2, num_classes=2, ignore_index=255)["miou"] == 1.0
    # three clusters for two classes: many-to-one by precision
    labels3 = np.array([[[2, 0], [1, 1]]])
    out = score_clusters(labels3, masks, num_clusters=3, num_classes=2, ignore_index=255)
    assert out["matching"] == "many_to_one" and out["miou"] == pytest.approx(1.0)


def test_real_backbone_smoke_with_cache(tmp_path):
    from mosic.evaluate.features import FeatureExtractor, load_model

    extractor = FeatureExtractor(load_model("test_vit", input_size=32), input_size=32, batch_size=4)
    val = ToySet(6, 5, 255, seed=2, name="toy/val")
    cfg = config(ks=[0, 7], pca_dim=8, iters=5, restarts=1, seeds=1)
    out = overcluster(val, extractor, cfg, cache_dir=tmp_path)
    assert (tmp_path / "toy_val_32.npy").exists()
    assert out["vectors"] == 6 * 2 * 2 and set(out["k"]) == {5, 7}
    assert all(0.0 <= res["miou"] <= 1.0 for res in out["k"].values())
    assert overcluster(val, extractor, cfg, cache_dir=tmp_path)["k"] == out["k"]
