"""Tracking accuracy of the cache against the synthetic dataset's exact ground truth (TAP-Vid metrics).

For every cached clip, the clip's query grid (cache pixels) is mapped to the source video's pixels,
:func:`mosic.data.synthetic.ground_truth_tracks` renders the exact trajectories from the clip's first
frame, and the ground truth at the clip's frames is mapped back to cache pixels
(:func:`mosic.tracking.ground_truth.clip_ground_truth`, which the ``ground_truth`` tracker uses too). Cache
and source coordinates are related by the resize of pixel centres: ``x_src = (x + 0.5) * W_src / W - 0.5``.

Two baselines are scored next to the cached tracks so the figures can be read: ``static`` (every point
stays at its query position, visible: what a no-motion correspondence would give) and ``ground_truth``
(the metrics' ceiling, 1.0 by construction — a check of the plumbing).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mosic.data.synthetic import Scene, load_scene
from mosic.store import ShardReader
from mosic.tracking.ground_truth import clip_ground_truth
from mosic.tracking.metrics import tapvid_metrics

logger = logging.getLogger(__name__)

__all__ = ["clip_ground_truth", "evaluate_shards"]


def evaluate_shards(shard_paths: list[str | Path], scenes_dir: str | Path) -> dict[str, Any]:
    """TAP-Vid metrics (δ_avg, occlusion accuracy, average Jaccard) of every cached clip against ground truth.

    Args:
        shard_paths: track-store shards made from the synthetic dataset.
        scenes_dir: the dataset's ``Scenes/`` folder (one JSON per video).

    Returns:
        ``{"clips": n, "points_per_clip": N, "tracker": ..., "cached": metrics, "static": metrics,
        "ground_truth": metrics, "visible_fraction": {"cached": ..., "ground_truth": ...}}``; metrics are
        means over clips (TAP-Vid averages per video; clips play that role here).
    """
    scenes: dict[str, Scene] = {}
    pred_t, pred_v, gt_t, gt_v = [], [], [], []
    tracker = None
    for path in shard_paths:
        reader = ShardReader(path)
        tracker = tracker or reader.attrs.get("tracker")
        for i in range(len(reader)):
            clip = reader[i]
            scene = scenes.get(clip.video_id)
            if scene is None:
                scene = scenes[clip.video_id] = load_scene(Path(scenes_dir) / f"{clip.video_id}.json")
            _, h, w, _ = clip.frames.shape
            queries = clip.tracks[0]
            tracks, vis = clip_ground_truth(scene, clip.frame_indices, queries, (h, w))
            pred_t.append(clip.tracks)
            pred_v.append(clip.visibility)
            gt_t.append(tracks)
            gt_v.append(vis)
    if not pred_t:
        raise ValueError(f"no clips in {len(shard_paths)} shards; nothing to evaluate")
    p_t, p_v, g_t, g_v = (np.stack(a) for a in (pred_t, pred_v, gt_t, gt_v))  # [B, T, N, ...]
    image_size = (h, w)
    static = np.broadcast_to(p_t[:, :1], p_t.shape)

    def score(tracks: np.ndarray, visible: np.ndarray) -> dict[str, float]:
        return tapvid_metrics(tracks, visible, g_t, g_v, image_size=image_size)

    result = {
        "clips": int(p_t.shape[0]),
        "frames_per_clip": int(p_t.shape[1]),
        "points_per_clip": int(p_t.shape[2]),
        "tracker": tracker,
        "cached": score(p_t, p_v),
        "static": score(static, np.ones_like(p_v)),
        "ground_truth": score(g_t, g_v),
        "visible_fraction": {"cached": float(p_v[:, 1:].mean()), "ground_truth": float(g_v[:, 1:].mean())},
    }
    logger.info(
        "tracking accuracy over %d clips: delta_avg %.3f, AJ %.3f, OA %.3f (static baseline: %.3f / %.3f / %.3f)",
        result["clips"],
        result["cached"]["delta_avg"],
        result["cached"]["average_jaccard"],
        result["cached"]["occlusion_accuracy"],
        result["static"]["delta_avg"],
        result["static"]["average_jaccard"],
        result["static"]["occlusion_accuracy"],
    )
    return result
