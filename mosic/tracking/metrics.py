"""TAP-Vid point-tracking metrics: position accuracy δ^x_avg, occlusion accuracy (OA) and average Jaccard (AJ).

Reference: C. Doersch et al., "TAP-Vid: A Benchmark for Tracking Any Point in a Video", NeurIPS 2022
Datasets and Benchmarks, Sec. 3 ("Metrics"), and its reference implementation
``tapnet/evaluation_datasets.py::compute_tapvid_metrics``. The formulas, for one clip, with queries on
frame 0 and the evaluation set E = {(t, n) : t >= 1} (TAP-Vid's "query first" mode never scores the
query frame itself, where the answer is given):

    v_tn     GT visible,  v^_tn predicted visible,  d_tn = || p^_tn - p_tn ||_2  (in 256x256 pixels)
    within_tn(δ) = d_tn < δ

    δ^δ      = sum_E [v & within(δ)] / sum_E [v]                         (share of GT-visible points within δ;
                                                                          predicted visibility is ignored)
    δ^x_avg  = mean_{δ in {1, 2, 4, 8, 16}} δ^δ
    OA       = sum_E [v^ == v] / |E|
    TP(δ)    = sum_E [v & v^ & within(δ)]
    FP(δ)    = sum_E [v^ & (~v | ~within(δ))]
    FN(δ)    = sum_E [v & (~v^ | ~within(δ))]
    J(δ)     = TP / (TP + FP + FN)          (TP + FN = sum_E [v], as TAP-Vid writes it)
    AJ       = mean_δ J(δ)

Thresholds are in pixels of a 256x256 frame: TAP-Vid resizes every video to 256x256 before scoring. Here
the distances are scaled instead (``resize_to``): a displacement (dx, dy) in a W x H frame becomes
(dx * 256 / W, dy * 256 / H). The half-pixel offset between pixel-centre and pixel-corner conventions
cancels in a difference, so it does not matter here. TAP-Vid computes each metric per video and averages
over videos; batched input is treated the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TAPVID_THRESHOLDS", "tapvid_metrics"]

# δ thresholds of TAP-Vid, in pixels of a 256x256 frame.
TAPVID_THRESHOLDS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den per clip, nan where den == 0 (the metric is undefined for that clip)."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _key(threshold: float) -> str:
    return f"{threshold:g}"


def tapvid_metrics(
    pred_tracks: np.ndarray,
    pred_visibility: np.ndarray,
    gt_tracks: np.ndarray,
    gt_visibility: np.ndarray,
    *,
    image_size: tuple[int, int] | None = None,
    resize_to: tuple[int, int] | None = (256, 256),
    thresholds: Sequence[float] = TAPVID_THRESHOLDS,
    exclude_query_frame: bool = True,
) -> dict[str, float]:
    """TAP-Vid metrics of predicted tracks against ground truth (formulas in the module docstring).

    All queries are on frame 0 (the contract of :mod:`mosic.tracking.base`), so with
    ``exclude_query_frame`` frame 0 is left out of every metric, as TAP-Vid's "query first" mode does.

    Args:
        pred_tracks: float [T, N, 2] or [B, T, N, 2] predicted ``(x, y)`` pixel positions.
        pred_visibility: bool [T, N] or [B, T, N].
        gt_tracks: float, same shape as ``pred_tracks``; positions where the GT point is not visible are
            ignored (they may be nan).
        gt_visibility: bool, same shape as ``pred_visibility``.
        image_size: ``(H, W)`` of the frames the coordinates refer to; required when ``resize_to`` is set.
        resize_to: ``(H', W')`` the thresholds refer to: distances are scaled by ``W'/W`` in x and ``H'/H``
            in y. ``(256, 256)`` (default) is TAP-Vid's protocol; None measures in the given pixels.
        thresholds: the δ values in (scaled) pixels.
        exclude_query_frame: leave frame 0 out (TAP-Vid "query first"); False scores every frame.

    Returns:
        ``{"delta_avg", "occlusion_accuracy", "average_jaccard", "delta_<δ>", "jaccard_<δ>" for each δ}``
        (e.g. ``"delta_1"``, ``"jaccard_16"``), each a float in [0, 1]: the per-clip value averaged over
        clips. A clip where a metric is undefined (0 / 0: no GT-visible point for δ, nothing to score for
        OA) is left out of that metric's average; nan if no clip defines it.

    Raises:
        ValueError: on mismatched shapes, or ``resize_to`` without ``image_size``.
    """
    pred_tracks = np.asarray(pred_tracks, dtype=np.float64)
    gt_tracks = np.asarray(gt_tracks, dtype=np.float64)
    pred_vis = np.asarray(pred_visibility, dtype=bool)
    gt_vis = np.asarray(gt_visibility, dtype=bool)
    if pred_tracks.shape != gt_tracks.shape or pred_tracks.shape[-1] != 2 or pred_tracks.ndim not in (3, 4):
        raise ValueError(f"tracks must both be [T, N, 2] or [B, T, N, 2], got {pred_tracks.shape}, {gt_tracks.shape}")
    if pred_vis.shape != pred_tracks.shape[:-1] or gt_vis.shape != pred_vis.shape:
        raise ValueError(
            f"visibility must be {pred_tracks.shape[:-1]}, got {pred_vis.shape} (pred), {gt_vis.shape} (gt)"
        )
    if pred_tracks.ndim == 3:  # one clip -> a batch of one
        pred_tracks, gt_tracks, pred_vis, gt_vis = pred_tracks[None], gt_tracks[None], pred_vis[None], gt_vis[None]

    scale = np.ones(2)
    if resize_to is not None:
        if image_size is None:
            raise ValueError("image_size (H, W) is needed to scale distances to resize_to")
        scale = np.array([resize_to[1] / image_size[1], resize_to[0] / image_size[0]])  # (x, y)

    evaluated = np.ones(gt_vis.shape, dtype=bool)  # [B, T, N]
    if exclude_query_frame:
        evaluated[:, 0] = False
    sum_bn = (1, 2)  # reduce over T and N, keep B

    oa = _ratio(((pred_vis == gt_vis) & evaluated).sum(sum_bn), evaluated.sum(sum_bn))
    visible = gt_vis & evaluated
    pred_visible = pred_vis & evaluated
    num_visible = visible.sum(sum_bn)
    with np.errstate(invalid="ignore"):  # nan GT positions where GT is occluded
        dist_sq = (((pred_tracks - gt_tracks) * scale) ** 2).sum(-1)  # [B, T, N]

    out: dict[str, float] = {}
    deltas, jaccards = [], []
    for thr in thresholds:
        # Same strict comparison of squared distances as the TAP-Vid reference implementation.
        with np.errstate(invalid="ignore"):
            within = dist_sq < float(thr) ** 2
        correct = visible & within  # GT visible and close enough
        delta = _ratio(correct.sum(sum_bn), num_visible)
        tp = (correct & pred_vis).sum(sum_bn)
        fp = (pred_visible & ~correct).sum(sum_bn)  # predicted visible and (GT occluded or too far)
        fn = (visible & ~(pred_vis & within)).sum(sum_bn)  # GT visible and (predicted occluded or too far)
        jaccard = _ratio(tp, tp + fp + fn)
        deltas.append(delta)
        jaccards.append(jaccard)
        out[f"delta_{_key(thr)}"] = _nanmean(delta)
        out[f"jaccard_{_key(thr)}"] = _nanmean(jaccard)
    out["delta_avg"] = _nanmean(np.mean(deltas, axis=0))
    out["occlusion_accuracy"] = _nanmean(oa)
    out["average_jaccard"] = _nanmean(np.mean(jaccards, axis=0))
    return out


def _nanmean(values: np.ndarray) -> float:
    """Mean over clips of the defined (non-nan) values; nan if there are none."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")
