"""Linear segmentation probe on frozen patch tokens (NeCo recipe, ``reference/eval_spec.md`` §3).

Recipe (NeCo ``experiments/linear_segmentation/linear_finetune.py``, which MoSiC's README points to): a 1×1
convolution D → G (a per-pixel linear classifier with bias) reads the frozen last-layer tokens bilinearly
upsampled (``align_corners=False``) to ``mask_size``² (NeCo: 100), and is trained with cross-entropy
(``ignore_index`` = the set's ignore label) against the masks nearest-resized to ``mask_size``²; SGD (lr 0.01,
momentum 0.9, weight decay 1e-4) on the head only, the rate ×0.1 at epoch ``drop_at`` (20) of ``epochs`` (25),
batches of 128 images. Validation: argmax of the upsampled logits against the nearest-resized masks, identity
mapping, ignore pixels removed.

Deliberate deviations, all documented in the result:

- **No augmentation.** NeCo trains on a fresh RandomResizedCrop(scale 0.8–1) + flip per epoch; here the train
  and val features are extracted once through :func:`mosic.evaluate.features.extract` (cached per dataset and
  resolution), so every epoch sees the same square-resized images. This is what makes the probe cheap (one
  forward pass per image instead of one per image per epoch); adding the augmentation back means extracting
  per epoch and is a config change the protocol could grow later.
- **Shuffled batches, last partial batch kept** (seeded). NeCo does not shuffle VOC/ADE and drops the last
  VOC batch; with fixed features a fixed order would make every epoch identical.
- **Head before upsampling.** Bilinear weights sum to one, so upsample-then-1×1-conv equals 1×1-conv-then-
  upsample exactly (up to rounding); applying the head at the token grid keeps the activations at G rather
  than D channels per output pixel.
- **Reported numbers.** ``miou`` is the last epoch; ``miou_best_epoch`` is NeCo's checkpoint selection on the
  validation set, kept for comparison with published tables but biased upward.

Class averaging (:func:`averaged_classes`): ADE20K's ignore label is class 0, whose IoU is always 0. Clean mode
averages over the G − 1 real classes; ``parity`` averages over all G as the references do (so a parity ADE
number is 150/151 of the clean one). Mask resizing: clean mode resizes the native mask straight to
``mask_size`` with centre-aligned nearest sampling; parity reproduces the reference chain (PIL NEAREST to the
input size, then torch ``nearest`` to ``mask_size``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mosic.config import LinearConfig
from mosic.evaluate.base import SegmentationSet
from mosic.evaluate.features import FeatureExtractor, extract
from mosic.evaluate.metrics import confusion, miou

__all__ = ["linear_probe", "dataset_features", "resized_masks", "averaged_classes", "resize_labels"]

logger = logging.getLogger(__name__)

# Float elements of one [b, G, M, M] logit block (about 128 MiB); bounds the memory of training and evaluation.
_LOGIT_BUDGET = 1 << 25


def dataset_features(ds: SegmentationSet, extractor: FeatureExtractor, cache_dir: Path | None) -> np.ndarray:
    """Frozen features of every image of `ds`, float16 [N, S, S, D], cached under `cache_dir` when given.

    The cache file is named after the dataset and input size; its key also records the grid and width. The
    model is not part of the key: `cache_dir` must belong to one model (the workflow keeps one per checkpoint).
    """
    cache = None
    if cache_dir is not None:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", ds.name).strip("_") or "dataset"
        cache = Path(cache_dir) / f"{slug}_{extractor.input_size}.npy"
    key = {
        "dataset": ds.name,
        "images": len(ds),
        "input_size": extractor.input_size,
        "grid": extractor.grid,
        "dim": extractor.dim,
    }
    return extract(extractor, len(ds), ds.image, cache, key=key)


def resize_labels(labels: np.ndarray | torch.Tensor, size: int, *, mode: str = "nearest-exact") -> np.ndarray:
    """Nearest-neighbour resize of integer label maps [B, h, w] to [B, size, size] (int64).

    ``nearest-exact`` samples the source pixel whose centre is nearest (PIL's rule); ``nearest`` is torch's
    legacy floor(i·scale), which the reference code uses for its last resize.
    """
    t = (
        torch.as_tensor(labels).float()
        if isinstance(labels, torch.Tensor)
        else torch.from_numpy(np.array(labels, np.float32))
    )
    t = t[:, None]  # float is exact for ids < 2**24
    return F.interpolate(t, size=(size, size), mode=mode)[:, 0].long().numpy()


def resized_masks(ds: SegmentationSet, mask_size: int, *, input_size: int, parity: bool = False) -> np.ndarray:
    """Every mask of `ds` nearest-resized to uint8 [N, mask_size, mask_size] (see the module docstring).

    Args:
        ds: the segmentation set.
        mask_size: output side M.
        input_size: the square input size of the features (used by the parity chain only).
        parity: PIL NEAREST to ``input_size`` then torch ``nearest`` to M, as NeCo; otherwise one
            centre-aligned nearest resize from the native resolution.
    """
    out = np.empty((len(ds), mask_size, mask_size), dtype=np.uint8)
    for i in range(len(ds)):
        mask = np.asarray(ds.mask(i), dtype=np.uint8)
        if parity:
            mask = np.asarray(Image.fromarray(mask).resize((input_size, input_size), Image.NEAREST))
            out[i] = resize_labels(mask[None], mask_size, mode="nearest")[0]
        else:
            out[i] = resize_labels(mask[None], mask_size, mode="nearest-exact")[0]
    return out


def averaged_classes(num_classes: int, ignore_index: int | None, *, parity: bool) -> np.ndarray:
    """Indices of the classes the mIoU averages: all G in parity mode, else all but an in-range ignore class."""
    keep = np.ones(num_classes, dtype=bool)
    if not parity and ignore_index is not None and 0 <= ignore_index < num_classes:
        keep[ignore_index] = False
    return np.flatnonzero(keep)


def _tokens(feats: np.ndarray, idx: np.ndarray | slice, device: torch.device) -> torch.Tensor:
    """float32 [b, D, S, S] on `device` from float16 [N, S, S, D] features."""
    x = torch.from_numpy(np.ascontiguousarray(feats[idx], dtype=np.float32))
    return x.permute(0, 3, 1, 2).contiguous().to(device)


def _logits(head: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor:
    """[b, G, size, size]: the 1×1 head at the token grid, then bilinear upsampling (commutes with the head)."""
    return F.interpolate(head(x), size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def _evaluate(
    head: nn.Module, feats: np.ndarray, masks: np.ndarray, g: int, ignore: int | None, chunk: int
) -> np.ndarray:
    """Confusion matrix [G, G] of argmax predictions at the mask size against `masks`."""
    head.eval()
    device = next(head.parameters()).device
    c = np.zeros((g, g), dtype=np.int64)
    for s in range(0, len(feats), chunk):
        pred = _logits(head, _tokens(feats, slice(s, s + chunk), device), masks.shape[-1]).argmax(1).cpu().numpy()
        c += confusion(masks[s : s + chunk], pred, g, g, ignore)
    head.train()
    return c


def linear_probe(
    train: SegmentationSet,
    val: SegmentationSet,
    extractor: FeatureExtractor,
    cfg: LinearConfig,
    *,
    seed: int,
    cache_dir: Path | None = None,
    parity: bool = False,
) -> dict:
    """Train a linear head on frozen features of `train` and score it on `val` (see the module docstring).

    Args:
        train: training split (masks give the targets).
        val: validation split, same classes.
        extractor: frozen feature extractor (or anything with ``input_size``, ``grid``, ``dim``, ``batch_size``,
            ``__call__``; ``device`` is used for the head when present).
        cfg: epochs, SGD settings, batch size and mask size.
        seed: seeds the head's initialisation and the batch order.
        cache_dir: where features are cached (one directory per model).
        parity: reference class averaging (ADE20K over all 151 classes) and mask resizing.

    Returns:
        ``{"miou", "iou" (list [G]), "miou_best_epoch", "best_epoch", "history" (val mIoU per epoch), "epochs",
        "train_images", "val_images", "num_classes", "averaged_classes", "mask_size", "augmentation",
        "parity"}``; "miou" and "iou" are the last epoch's.
    """
    g = train.num_classes
    if val.num_classes != g:
        raise ValueError(f"train has {g} classes but val has {val.num_classes}")
    m = cfg.mask_size
    ignore = train.ignore_index
    ce_ignore = ignore if ignore is not None else -100
    keep = averaged_classes(g, ignore, parity=parity)
    device = torch.device(getattr(extractor, "device", "cpu"))

    f_train = dataset_features(train, extractor, cache_dir)
    f_val = dataset_features(val, extractor, cache_dir)
    y_train = torch.from_numpy(resized_masks(train, m, input_size=extractor.input_size, parity=parity))
    y_val = resized_masks(val, m, input_size=extractor.input_size, parity=parity)
    for ds, y in ((train, y_train), (val, torch.from_numpy(y_val))):
        bad = (y >= g) & (y != ce_ignore)
        if bool(bad.any()):
            raise ValueError(f"{ds.name}: mask value {int(y[bad].max())} is neither a class in [0, {g}) nor {ignore}")
    d = f_train.shape[-1]
    chunk = max(1, _LOGIT_BUDGET // (g * m * m))

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Conv2d(d, g, kernel_size=1).to(device)
    opt = torch.optim.SGD(head.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.drop_at, gamma=0.1)

    history: list[float] = []
    iou = np.zeros(g)
    for epoch in range(cfg.epochs):
        total, pixels = 0.0, 0
        for batch in torch.randperm(len(f_train), generator=gen).split(cfg.batch_size):
            idx = np.sort(batch.numpy())  # sorted reads are kinder to a memmap; the batch is the same set
            y = y_train[idx].long().to(device)
            valid = int((y != ce_ignore).sum())
            if valid == 0:
                continue
            opt.zero_grad(set_to_none=True)
            # Micro-batches accumulate Σ CE / (valid pixels of the whole batch): the batch-mean loss exactly.
            for s in range(0, len(idx), chunk):
                logits = _logits(head, _tokens(f_train, idx[s : s + chunk], device), m)
                loss = F.cross_entropy(logits, y[s : s + chunk], ignore_index=ce_ignore, reduction="sum") / valid
                loss.backward()
                total += float(loss.detach()) * valid
            pixels += valid
            opt.step()
        sched.step()
        _, iou = miou(_evaluate(head, f_val, y_val, g, ignore, chunk))
        history.append(float(iou[keep].mean()))
        logger.info(
            "linear probe epoch %d/%d: loss %.4f, val mIoU %.4f",
            epoch + 1,
            cfg.epochs,
            total / max(pixels, 1),
            history[-1],
        )
    best = int(np.argmax(history))
    return {
        "miou": history[-1],
        "iou": iou.tolist(),
        "miou_best_epoch": history[best],
        "best_epoch": best + 1,
        "history": history,
        "epochs": cfg.epochs,
        "train_images": len(train),
        "val_images": len(val),
        "num_classes": g,
        "averaged_classes": len(keep),
        "mask_size": m,
        "augmentation": "none (features extracted once; NeCo uses RandomResizedCrop(0.8-1) + flip per epoch)",
        "parity": parity,
    }
