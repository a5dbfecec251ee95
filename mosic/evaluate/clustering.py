"""K-means (over)clustering of frozen validation features (NeCo recipe, ``reference/eval_spec.md`` §4).

Recipe (NeCo ``experiments/overcluster/eval_overcluster.py`` + ``experiments/utils.py``, inherited from Leopart):

1. Features of every validation image at the token grid (S×S, *not* upsampled): N·S·S vectors of width D.
2. Standardise each dimension and project to ``pca_dim`` (50) with PCA fitted on all N·S·S vectors
   (:func:`mosic.evaluate.kmeans.standardize_pca`).
3. For each K in ``ks`` (0 means K = G, the number of classes) and each seed s in 0..seeds−1: K-means with
   faiss semantics (``iters`` = 100, ``restarts`` = 5, seed s; at most 256·K training points,
   :func:`mosic.evaluate.kmeans.kmeans`), every vector assigned to its nearest centroid.
4. The S×S label grid of each image is nearest-upsampled to ``mask_size``² (100) and scored against the masks
   nearest-resized to the same size, ignore pixels removed: Hungarian matching on IoU when K = G (unmatched
   clusters → class 0), many-to-one by precision otherwise (NeCo uses it for every K ≠ G).
5. The reported value per K is the mean mIoU over seeds.

Class averaging and mask resizing follow :mod:`mosic.evaluate.linear`: clean mode averages ADE20K over its 150
real classes and resizes with centre-aligned nearest sampling; ``parity`` averages over all 151 and uses the
reference's resize chain (PIL NEAREST to the input size, torch ``nearest`` to ``mask_size``, torch ``nearest``
for the label grid). The confusion matrix is accumulated over image chunks, so no per-pixel array of the whole
set is ever held.

**Cross-view clustering** (:func:`cluster_xview`, ours). The standard protocol's K = 0 (K = G, background
included, Hungarian matching) already clusters the synthetic ``val`` split, whose objects show random faces,
so a K = G run there is not a new protocol. The cross-view variant clusters the union of ``val_face<f>`` for
every face f instead: each val scene once per face, every class seen equally often with each face in the same
scenes. Only K = G is run (the overclustering Ks would let a class own one cluster per face and score anyway);
the rest is the standard recipe with the ``clustering`` settings. Features that keep a class's faces apart make
more groups than there are clusters: a class then spreads over several clusters or shares one with another
class, and loses IoU either way.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np

from mosic.config import ClusteringConfig
from mosic.evaluate.base import SegmentationSet
from mosic.evaluate.features import FeatureExtractor
from mosic.evaluate.kmeans import faiss_available, kmeans, standardize_pca
from mosic.evaluate.linear import averaged_classes, dataset_features, resize_labels, resized_masks
from mosic.evaluate.metrics import confusion, fold, match_labels, miou

__all__ = ["overcluster", "score_clusters", "cluster_xview", "ConcatSet"]

logger = logging.getLogger(__name__)

# Images per confusion-matrix chunk (labels upsampled to mask_size² as int64 only for these).
_CHUNK = 256


def score_clusters(
    labels: np.ndarray,
    masks: np.ndarray,
    *,
    num_clusters: int,
    num_classes: int,
    ignore_index: int | None,
    parity: bool = False,
) -> dict:
    """mIoU of cluster label grids against masks after matching (Hungarian when K = G, else many-to-one).

    Args:
        labels: int [N, S, S] cluster ids in [0, K).
        masks: uint8 [N, M, M] class ids (``ignore_index`` where unlabelled).
        num_clusters: K.
        num_classes: G.
        ignore_index: the unlabelled value, or None.
        parity: reference resizing of the label grid (torch ``nearest``) and class averaging.

    Returns:
        ``{"miou", "iou" (list [G]), "matching"}``.
    """
    m = masks.shape[-1]
    mode = "nearest" if parity else "nearest-exact"
    c = np.zeros((num_classes, num_clusters), dtype=np.int64)
    for s in range(0, len(labels), _CHUNK):
        pred = resize_labels(labels[s : s + _CHUNK], m, mode=mode)
        c += confusion(masks[s : s + _CHUNK], pred, num_classes, num_clusters, ignore_index)
    how = "hungarian" if num_clusters == num_classes else "many_to_one"
    _, iou = miou(fold(c, match_labels(c, how)))
    keep = averaged_classes(num_classes, ignore_index, parity=parity)
    return {"miou": float(iou[keep].mean()), "iou": iou.tolist(), "matching": how}


def overcluster(
    val: SegmentationSet,
    extractor: FeatureExtractor,
    cfg: ClusteringConfig,
    *,
    cache_dir: Path | None = None,
    parity: bool = False,
) -> dict:
    """Cluster the validation features for each K and seed and score the clusters (see the module docstring).

    Args:
        val: the validation split.
        extractor: frozen feature extractor (or anything with ``input_size``, ``grid``, ``dim``, ``batch_size``,
            ``__call__``).
        cfg: K values, PCA dimension, K-means iterations/restarts, number of seeds, mask size.
        cache_dir: where features are cached (one directory per model).
        parity: reference class averaging and resizing.

    Returns:
        ``{"k": {K: {"miou": mean over seeds, "per_seed": [...], "matching": ...}}, "num_classes", "images",
        "vectors", "pca_dim", "backend", "iters", "restarts", "seeds", "mask_size", "averaged_classes",
        "parity"}``; K = 0 in ``cfg.ks`` appears under its value G.
    """
    g = val.num_classes
    feats = dataset_features(val, extractor, cache_dir)
    n, s, _, d = feats.shape
    dim = cfg.pca_dim
    if dim > d:
        logger.warning("pca_dim %d exceeds the feature width %d; using %d", dim, d, d)
        dim = d
    t0 = time.perf_counter()
    x = standardize_pca(feats.reshape(-1, d), dim)
    logger.info("standardised + PCA %d -> %d on %d vectors in %.1f s", d, dim, len(x), time.perf_counter() - t0)
    masks = resized_masks(val, cfg.mask_size, input_size=extractor.input_size, parity=parity)
    use_faiss = faiss_available()
    backend = "faiss" if use_faiss else "torch"

    ks = list(dict.fromkeys(g if k == 0 else k for k in cfg.ks))
    results: dict[int, dict] = {}
    for k in ks:
        if k > len(x):
            raise ValueError(f"K={k} exceeds the {len(x)} feature vectors of {val.name}")
        per_seed = []
        for seed in range(cfg.seeds):
            t0 = time.perf_counter()
            _, labels = kmeans(x, k, iters=cfg.iters, restarts=cfg.restarts, seed=seed, use_faiss=use_faiss)
            out = score_clusters(
                labels.reshape(n, s, s),
                masks,
                num_clusters=k,
                num_classes=g,
                ignore_index=val.ignore_index,
                parity=parity,
            )
            per_seed.append(out["miou"])
            logger.info("K=%d seed %d: mIoU %.4f (%s, %.1f s)", k, seed, out["miou"], backend, time.perf_counter() - t0)
        results[k] = {"miou": float(np.mean(per_seed)), "per_seed": per_seed, "matching": out["matching"]}
    return {
        "k": results,
        "num_classes": g,
        "images": n,
        "vectors": len(x),
        "pca_dim": dim,
        "backend": backend,
        "iters": cfg.iters,
        "restarts": cfg.restarts,
        "seeds": cfg.seeds,
        "mask_size": cfg.mask_size,
        "averaged_classes": len(averaged_classes(g, val.ignore_index, parity=parity)),
        "parity": parity,
    }


class ConcatSet:
    """Segmentation sets of the same classes read one after another, named ``<kind>/<split>+<split>...``."""

    def __init__(self, sets: list[SegmentationSet]) -> None:
        first = sets[0]
        if any((s.num_classes, s.ignore_index) != (first.num_classes, first.ignore_index) for s in sets):
            raise ValueError("the sets differ in classes or ignore label")
        kind = first.name.split("/", 1)[0]
        self.name = f"{kind}/" + "+".join(s.name.split("/", 1)[-1] for s in sets)
        self.num_classes, self.ignore_index, self.class_names = first.num_classes, first.ignore_index, first.class_names
        self._items = [(s, i) for s in sets for i in range(len(s))]

    def __len__(self) -> int:
        return len(self._items)

    def image(self, i: int) -> np.ndarray:
        s, j = self._items[i]
        return s.image(j)

    def mask(self, i: int) -> np.ndarray:
        s, j = self._items[i]
        return s.mask(j)


def cluster_xview(
    val_faces: list[SegmentationSet],
    extractor: FeatureExtractor,
    cfg: ClusteringConfig,
    *,
    cache_dir: Path | None = None,
    parity: bool = False,
) -> dict:
    """Cross-view clustering (module docstring): K = G over the union of the per-face val sets.

    Args:
        val_faces: F >= 2 validation sets, set f showing face f (``val_face<f>``).
        extractor, cache_dir, parity: as :func:`overcluster`.
        cfg: the clustering settings; its ``ks`` is replaced by [0] (K = G).

    Returns:
        :func:`overcluster`'s result on the union (``k`` holds G only), plus ``miou`` (that of K = G),
        ``faces`` and ``sets`` (the union's parts).
    """
    if len(val_faces) < 2:
        raise ValueError(f"cross-view clustering needs F >= 2 validation sets, got {len(val_faces)}")
    union = ConcatSet(val_faces)
    out = overcluster(union, extractor, dataclasses.replace(cfg, ks=[0]), cache_dir=cache_dir, parity=parity)
    return out | {"miou": out["k"][union.num_classes]["miou"], "faces": len(val_faces), "sets": union.name}
