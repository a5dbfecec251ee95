"""Unsupervised video object / semantic segmentation by clustering frozen features (Timetuning protocol).

Protocol (``reference/eval_spec.md`` §5; SMSD75/Timetuning ``evaluation.py``, ``clustering.py``, ``metrics.py``):

1. **Clips.** One clip per video, in the order of ``video_ids`` (sorted): T = ``frames`` annotated frames,
   ``sorted(random.sample(range(n), T))`` from one Python RNG seeded once (with replacement when n < T). Frames
   are square-resized to the input size (bilinear), labels with nearest.
2. **Features.** Frozen patch tokens at the token grid, [T, S, S, D] per clip.
3. **Per batch** of 16 videos (the reference's batch; the fit depends on the batch, a known reproducibility
   hazard the reference has): standardise (per-dimension z-score) and PCA to 50 dims, fitted on every patch of
   the batch, then each frame's 50 x S x S map is upsampled bilinearly (align_corners=False) to the input size,
   so every pixel is a 50-d vector (float32 here; the reference uses float64).
4. **K-means** (faiss semantics: ``cfg.iters`` iterations, ``cfg.restarts`` restarts, ≤ 256·K training points)
   with K = ``cfg.k`` either per frame (``mode="frame"``) or once per clip on its T frames' pixels
   (``mode="clip"``, the reference's "sample-wise": cluster identities are shared across the clip).
5. **Score per unit** (a frame, or a clip with its frames together): the GT labels present in the unit
   (background 0 included when present) against the clusters present, Hungarian matching on 1 − IoU; matched
   clusters take their label, unmatched ones become background (0); the unit's score is the mean IoU over its
   present GT labels (no ignore label: DAVIS and YouTube-VOS masks have none).
6. **Aggregate**: mean over the units of a batch, then the mean of the batch means (a smaller last batch weighs
   as much as a full one) — neither per-video nor dataset-level matching.

Labels are what the dataset gives: DAVIS-2017 instance ids (instance level), YouTube-VOS category ids from
meta.json (semantic level: two instances of one category are one label); see :mod:`mosic.evaluate.datasets`.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from mosic.config import VideoSegConfig
from mosic.evaluate.base import VideoSegmentationSet
from mosic.evaluate.features import FeatureExtractor
from mosic.evaluate.kmeans import kmeans, standardize_pca
from mosic.evaluate.metrics import confusion, fold, match_labels, miou

logger = logging.getLogger(__name__)

__all__ = ["sample_frames", "unit_miou", "video_segmentation"]

BATCH_VIDEOS = 16  # Timetuning --batch_size
PCA_DIM = 50


def sample_frames(num_frames: list[int], t: int, seed: int) -> list[list[int]]:
    """Sorted frame indices per video: T without replacement (with replacement when a video has fewer).

    One ``random.Random(seed)`` stream in video order, as the reference's Python RNG seeded once at import.

    Args:
        num_frames: annotated frames of each video, in evaluation order.
        t: frames per clip (T).
        seed: the stream's seed.
    """
    rng = random.Random(seed)
    return [sorted(rng.sample(range(n), t)) if n >= t else sorted(rng.choices(range(n), k=t)) for n in num_frames]


def unit_miou(
    gt: np.ndarray, clusters: np.ndarray, num_clusters: int, matching: Literal["hungarian", "many_to_one"] = "hungarian"
) -> float:
    """Score of one unit (a frame or a clip): matching over the labels present, mean IoU over present GT labels.

    Hungarian: ``linear_sum_assignment(1 − IoU)`` between the GT labels present and the clusters present;
    unmatched clusters become label 0 (background), as the reference does, even when 0 is not present.
    many_to_one: each present cluster takes the present label where its precision is highest (overclustering).

    Args:
        gt: int [...] label ids (0 = background), no ignore label.
        clusters: int [...] cluster ids in [0, num_clusters), same shape.
        num_clusters: K.
        matching: ``hungarian`` (the protocol) or ``many_to_one``.
    """
    gt = np.asarray(gt).astype(np.int64)
    num_labels = int(gt.max()) + 1
    c = confusion(gt, clusters, num_labels, num_clusters, None)  # [L, K] over every label id up to the largest
    rows, cols = np.flatnonzero(c.sum(1)), np.flatnonzero(c.sum(0))
    sub = c[np.ix_(rows, cols)]
    mapping = np.zeros(num_clusters, dtype=np.int64)  # unmatched clusters -> background
    if matching == "hungarian":
        sub_f = sub.astype(np.float64)
        union = sub_f.sum(1, keepdims=True) + sub_f.sum(0, keepdims=True) - sub_f
        iou = np.divide(sub_f, union, out=np.zeros_like(sub_f), where=union > 0)
        r, k = linear_sum_assignment(1.0 - iou)
        mapping[cols[k]] = rows[r]
    elif matching == "many_to_one":
        mapping[cols] = rows[match_labels(sub, "many_to_one")]
    else:
        raise ValueError(f"unknown matching {matching!r}")
    value, _ = miou(fold(c, mapping), present_only=True)
    return value


def _resize(frames: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [T, H, W, 3] frames (bilinear, antialiased) and [T, H, W] labels (nearest) to size x size."""
    if frames.shape[1:3] == (size, size) and labels.shape[1:] == (size, size):
        return frames, labels
    x = torch.as_tensor(frames).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    y = F.interpolate(torch.as_tensor(labels)[:, None], size=(size, size), mode="nearest-exact")[:, 0]
    return x.permute(0, 2, 3, 1).numpy(), y.numpy()


def _upsample(z: np.ndarray, size: int) -> torch.Tensor:
    """[T, S, S, P] PCA features → [T, size, size, P] pixel vectors (bilinear, align_corners=False)."""
    t = torch.from_numpy(z).permute(0, 3, 1, 2)
    out = torch.stack([F.interpolate(f[None], size=(size, size), mode="bilinear", align_corners=False)[0] for f in t])
    return out.permute(0, 2, 3, 1)


def video_segmentation(
    videos: VideoSegmentationSet,
    extractor: FeatureExtractor,
    cfg: VideoSegConfig,
    *,
    seed: int,
    batch_videos: int | None = BATCH_VIDEOS,
    pca_dim: int = PCA_DIM,
    matching: Literal["hungarian", "many_to_one"] = "hungarian",
) -> dict:
    """Video segmentation mIoU of the extractor's features (module docstring).

    Args:
        videos: annotated videos (labels: DAVIS instances or YouTube-VOS categories, 0 = background).
        extractor: frozen features (``input_size`` = ``cfg.input_size``; ``grid``, ``dim``, ``__call__``).
        cfg: ``frames`` T, ``k`` K, ``mode`` (frame/clip), ``iters``, ``restarts``.
        seed: seeds the frame sampling and K-means (the reference: faiss seed 1).
        batch_videos: videos per standardise + PCA fit (reference: 16); None fits once on the whole split.
        pca_dim: PCA output dimension (reference: 50; capped at D).
        matching: ``hungarian`` (the protocol) or ``many_to_one`` (overclustering).

    Returns:
        ``miou`` (mean of batch means), ``miou_units`` (flat mean over units), ``batch_means``, ``per_video``
        ({video: mean of its units' scores}), ``frames`` ({video: sampled indices}), ``mode``, ``k``,
        ``num_videos``, ``num_units``, ``seconds``.
    """
    if cfg.input_size != extractor.input_size:
        raise ValueError(f"config input_size {cfg.input_size} differs from the extractor's {extractor.input_size}")
    t0 = time.perf_counter()
    size, grid = extractor.input_size, extractor.grid
    ids = list(videos.video_ids)
    if not ids:
        raise ValueError(f"{videos.name}: no videos")
    chosen = sample_frames([videos.num_frames(v) for v in ids], cfg.frames, seed)
    step = batch_videos or len(ids)
    dim = min(pca_dim, extractor.dim)
    batch_means, per_video, units = [], {}, []
    for start in range(0, len(ids), step):
        batch = ids[start : start + step]
        frames, labels = [], []
        for v, idx in zip(batch, chosen[start : start + step], strict=True):
            f, lab = videos.read(v, idx)
            f, lab = _resize(f, lab, size)
            frames.append(f)
            labels.append(lab)
        t = cfg.frames
        feats = extractor(np.concatenate(frames)).numpy()  # [B·T, S, S, D]
        z = standardize_pca(feats.reshape(-1, feats.shape[-1]), dim).reshape(len(batch), t, grid, grid, dim)
        scores = []
        for b, v in enumerate(batch):
            pix = _upsample(z[b], size)  # [T, size, size, P]
            if cfg.mode == "frame":
                vs = []
                for j in range(t):
                    _, lab = kmeans(pix[j].reshape(-1, dim), cfg.k, iters=cfg.iters, restarts=cfg.restarts, seed=seed)
                    vs.append(unit_miou(labels[b][j], lab, cfg.k, matching))
            elif cfg.mode == "clip":
                _, lab = kmeans(pix.reshape(-1, dim), cfg.k, iters=cfg.iters, restarts=cfg.restarts, seed=seed)
                vs = [unit_miou(labels[b], lab, cfg.k, matching)]
            else:
                raise ValueError(f"unknown mode {cfg.mode!r}")
            scores += vs
            per_video[v] = float(np.mean(vs))
        batch_means.append(float(np.mean(scores)))
        units += scores
        logger.debug("video segmentation batch %d: %d videos, mean %.4f", len(batch_means), len(batch), batch_means[-1])
    result = {
        "miou": float(np.mean(batch_means)),
        "miou_units": float(np.mean(units)),
        "batch_means": batch_means,
        "per_video": per_video,
        "frames": dict(zip(ids, chosen, strict=True)),
        "mode": cfg.mode,
        "k": cfg.k,
        "matching": matching,
        "num_videos": len(ids),
        "num_units": len(units),
        "seconds": time.perf_counter() - t0,
    }
    logger.info(
        "video segmentation %s (%s-wise, K=%d): mIoU %.4f over %d videos",
        videos.name,
        cfg.mode,
        cfg.k,
        result["miou"],
        len(ids),
    )
    return result
