"""Segmentation metrics: a streaming confusion matrix, label matchings, and mIoU with an ignore label.

Notation (``reference/eval_spec.md`` §2.3): G ground-truth classes, P predicted labels, C ∈ ℕ^{G×P} the
confusion matrix over valid pixels (GT ≠ ignore). Per pair, IoU(g, p) = C[g,p] / (Σ_p' C[g,p'] + Σ_g' C[g',p]
− C[g,p]) and precision(g, p) = C[g,p] / Σ_g' C[g',p]. A matching maps every predicted label to a class:

- ``identity``: label i is class i (linear probe);
- ``hungarian``: one-to-one assignment maximising Σ IoU (``scipy.optimize.linear_sum_assignment`` on 1 − IoU);
  unmatched labels go to class 0 (background), as in the reference implementations;
- ``many_to_one``: each label goes to the class where its precision is highest (ties to the lowest class).

After folding C by the matching, IoU_g = TP_g / max(TP_g + FP_g + FN_g, 1e-8) and mIoU is the mean over all G
classes (a class with neither GT nor prediction counts 0, as the references do) — or over the classes present
in the GT with ``present_only`` (the Timetuning video protocol).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["confusion", "match_labels", "fold", "miou", "score"]


def confusion(
    gt: np.ndarray, pred: np.ndarray, num_classes: int, num_labels: int, ignore_index: int | None
) -> np.ndarray:
    """C [G, P] (int64) counting (gt, pred) pairs over pixels whose gt is not `ignore_index`.

    Args:
        gt: int array of class ids (any shape), values in [0, G) or `ignore_index`.
        pred: int array of predicted labels, same shape, values in [0, P).
    """
    gt = np.asarray(gt).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred sizes differ: {gt.shape} vs {pred.shape}")
    keep = gt != ignore_index if ignore_index is not None else np.ones_like(gt, dtype=bool)
    gt, pred = gt[keep], pred[keep]
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
        raise ValueError(f"ground-truth class outside [0, {num_classes}) and not the ignore index {ignore_index}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_labels):
        raise ValueError(f"predicted label outside [0, {num_labels})")
    return np.bincount(gt * num_labels + pred, minlength=num_classes * num_labels).reshape(num_classes, num_labels)


def _iou_matrix(c: np.ndarray) -> np.ndarray:
    c = c.astype(np.float64)
    union = c.sum(1, keepdims=True) + c.sum(0, keepdims=True) - c
    return np.divide(c, union, out=np.zeros_like(c), where=union > 0)


def match_labels(c: np.ndarray, how: Literal["identity", "hungarian", "many_to_one"]) -> np.ndarray:
    """The class each predicted label maps to: int64 [P] (see the module docstring)."""
    g, p = c.shape
    if how == "identity":
        if p != g:
            raise ValueError(f"identity matching needs as many labels as classes, got {p} labels for {g} classes")
        return np.arange(p)
    if how == "hungarian":
        rows, cols = linear_sum_assignment(1.0 - _iou_matrix(c))
        mapping = np.zeros(p, dtype=np.int64)  # unmatched labels -> class 0 (background)
        mapping[cols] = rows
        return mapping
    if how == "many_to_one":
        col = c.sum(0, keepdims=True).astype(np.float64)
        precision = np.divide(c, col, out=np.zeros(c.shape), where=col > 0)
        return precision.argmax(0)  # argmax keeps the lowest class on ties
    raise ValueError(f"unknown matching {how!r}")


def fold(c: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """C [G, P] folded into [G, G] by sending label p's column to class mapping[p]."""
    g = c.shape[0]
    out = np.zeros((g, g), dtype=c.dtype)
    np.add.at(out.T, mapping, c.T)
    return out


def miou(c_folded: np.ndarray, *, present_only: bool = False) -> tuple[float, np.ndarray]:
    """(mIoU, per-class IoU [G]) of a square confusion matrix."""
    tp = np.diag(c_folded).astype(np.float64)
    fp = c_folded.sum(0) - tp
    fn = c_folded.sum(1) - tp
    iou = tp / np.maximum(tp + fp + fn, 1e-8)
    if present_only:
        present = c_folded.sum(1) > 0
        return (float(iou[present].mean()) if present.any() else float("nan")), iou
    return float(iou.mean()), iou


def score(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    num_classes: int,
    num_labels: int | None = None,
    ignore_index: int | None = 255,
    how: Literal["identity", "hungarian", "many_to_one"] = "identity",
    present_only: bool = False,
) -> dict[str, object]:
    """mIoU of predictions after matching: ``{"miou", "iou" (list [G]), "mapping" (list [P])}``."""
    p = num_labels if num_labels is not None else num_classes
    c = confusion(gt, pred, num_classes, p, ignore_index)
    mapping = match_labels(c, how)
    value, iou = miou(fold(c, mapping), present_only=present_only)
    return {"miou": value, "iou": iou.tolist(), "mapping": mapping.tolist()}
