"""The demo's image-pretrained start (``train.init: pretrain``): supervised patch classification on one face.

MoSiC post-trains an image-pretrained backbone; from a random initialisation its objective erodes the features
(``reference/synthetic_feasibility.md``). No pretrained weights can be assumed on a laptop, so the workflow makes
its own stand-in for image pretraining: the backbone, with a linear head on its patch tokens, learns to label every
patch of the synthetic images whose objects all show one face (``pretrain.face``; the split
``train_face<f>`` of :func:`mosic.data.synthetic.generate_synthetic`), by cross-entropy against the class of the
patch's centre pixel. Like an image-pretrained network, it then knows every class from its common view only; the
video stage has to learn from motion that the other faces belong to the same objects.

Each step draws ``pretrain.batch_size`` images (a seeded permutation per epoch), each with one random resized crop
(scale 0.4-1) and flip, at ``train.input_size``; AdamW (weight decay 0.01) with a cosine schedule. The result is
exported like any trained backbone (:func:`mosic.model.export.export_backbone`), with the patch accuracy on the
validation images of every face in its sidecar and in ``pretrain.json``: high on the pretraining face, lower on the
others, which is the gap the video stage should close.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mosic.config import PretrainConfig, to_dict
from mosic.data.augment import IMAGENET_MEAN, IMAGENET_STD, CropBox, random_resized_crop_box
from mosic.evaluate.base import SegmentationSet
from mosic.evaluate.datasets import image_dataset
from mosic.fsutil import write_text_atomic
from mosic.model.backbone import build_backbone, patch_tokens
from mosic.model.export import export_backbone, load_backbone_weights

__all__ = ["run_pretrain", "patch_labels"]

logger = logging.getLogger(__name__)


def patch_labels(mask: Tensor, grid: int, ignore_index: int) -> Tensor:
    """long [B, grid, grid]: the class of each patch's centre pixel of uint8 masks [B, S, S] (ignore -> -100)."""
    s = mask.shape[-1]
    centres = ((torch.arange(grid) + 0.5) * s / grid).long().clamp_max(s - 1)
    labels = mask[:, centres][:, :, centres].long()
    return labels.masked_fill(labels == ignore_index, -100)


def _crop(image: np.ndarray, mask: np.ndarray, box: CropBox, size: int, flip: bool) -> tuple[Tensor, Tensor]:
    """The image (bilinear, antialiased) and mask (nearest) of `box`, resized to size x size, optionally flipped."""
    img = torch.from_numpy(image[box.y0 : box.y0 + box.h, box.x0 : box.x0 + box.w]).permute(2, 0, 1).float()
    lab = torch.from_numpy(np.ascontiguousarray(mask[box.y0 : box.y0 + box.h, box.x0 : box.x0 + box.w]))
    img = F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    lab = F.interpolate(lab[None, None].float(), size=(size, size), mode="nearest-exact")[0, 0].to(torch.uint8)
    if flip:
        img, lab = img.flip(-1), lab.flip(-1)
    return img, lab


def _normalise(images: Tensor) -> Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
    return (images - mean) / std


@torch.no_grad()
def patch_accuracy(backbone: nn.Module, head: nn.Module, data: SegmentationSet, size: int) -> dict[str, float]:
    """Fraction of labelled patches whose class the backbone + head predict (whole images resized to size): over
    every patch (``all``) and over object patches only (``objects``: class > 0, background excluded)."""
    backbone.eval()
    right = total = right_fg = total_fg = 0
    for start in range(0, len(data), 32):
        idx = range(start, min(start + 32, len(data)))
        crops = []
        for i in idx:
            image = data.image(i)
            whole = CropBox(x0=0, y0=0, w=image.shape[1], h=image.shape[0])
            crops.append(_crop(image, data.mask(i), whole, size, False))
        images = _normalise(torch.stack([c[0] for c in crops]))
        tokens = patch_tokens(backbone, images)  # [B, g, g, D]
        labels = patch_labels(torch.stack([c[1] for c in crops]), tokens.shape[1], data.ignore_index or 255)
        pred = head(tokens).argmax(-1)
        valid = labels >= 0
        right += int((pred[valid] == labels[valid]).sum())
        total += int(valid.sum())
        objects = labels > 0
        right_fg += int((pred[objects] == labels[objects]).sum())
        total_fg += int(objects.sum())
    backbone.train()
    return {"all": round(right / max(total, 1), 4), "objects": round(right_fg / max(total_fg, 1), 4)}


def run_pretrain(
    cfg: PretrainConfig,
    voc_root: str | Path,
    out_path: str | Path,
    *,
    model: str,
    input_size: int,
    faces: int,
    provenance: dict[str, Any],
    split: str | None = None,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """Pretrain `model` on the labelled images of face ``cfg.face`` and export its backbone to `out_path`.

    Args:
        cfg: the pretrain section.
        model, input_size: ``train.model`` and ``train.input_size``, the backbone every run starts from.
        voc_root: the synthetic generator's output folder (or its ``voc/``).
        out_path: the exported ``.safetensors`` backbone; ``pretrain.json`` goes beside it.
        faces: ``synthetic.faces``; accuracy is reported on the validation images of every face.
        provenance: config, version and git sha, stored with the export.
        split: the labelled training split instead of ``train_face<cfg.face>``; ``"train"`` shows each object on a
            random face, so the labels say that every face of a class is that class (the motion study's labelled
            reference: what labels teach where motion should).
        init: continue from this exported backbone instead of a fresh initialisation (the head starts fresh).

    Returns:
        The record of ``pretrain.json``: losses, accuracy per face, settings.
    """
    out_path = Path(out_path)
    torch.manual_seed(cfg.seed)
    if split is None:
        split = f"train_face{cfg.face}" if faces > 1 else "train"
    data = image_dataset("synthetic", voc_root, split)
    backbone = build_backbone(model, pretrained=False, input_size=input_size)
    if init is not None:
        load_backbone_weights(backbone, init, model_name=model)
    head = nn.Linear(backbone.num_features, data.num_classes)
    matrices = [p for p in backbone.parameters() if p.ndim >= 2] + [head.weight]
    vectors = [p for p in backbone.parameters() if p.ndim < 2] + [head.bias]  # biases, norms: no weight decay
    params = [{"params": matrices, "weight_decay": 0.01}, {"params": vectors, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    order: list[int] = []
    losses = []
    logger.info("pretraining %s%s on %d images of split %s: %d steps of %d", model, f" from {init}" if init else "",
                len(data), split, cfg.steps, cfg.batch_size)  # fmt: skip
    for step in range(cfg.steps):
        for g in optimizer.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        while len(order) < cfg.batch_size:
            order.extend(rng.permutation(len(data)).tolist())
        batch, order = order[: cfg.batch_size], order[cfg.batch_size :]
        crops = []
        for i in batch:
            image, mask = data.image(i), data.mask(i)
            box = random_resized_crop_box(rng, image.shape[0], image.shape[1], (0.4, 1.0))
            crops.append(_crop(image, mask, box, input_size, bool(rng.random() < 0.5)))
        tokens = patch_tokens(backbone, _normalise(torch.stack([c[0] for c in crops])))
        labels = patch_labels(torch.stack([c[1] for c in crops]), tokens.shape[1], data.ignore_index or 255)
        loss = F.cross_entropy(head(tokens).flatten(0, 2), labels.flatten(), ignore_index=-100)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step == 0 or step + 1 == cfg.steps:
            logger.info("pretrain step %d/%d loss %.4f", step + 1, cfg.steps, losses[-1])
    accuracy = {}
    for face in range(faces):
        val = image_dataset("synthetic", voc_root, f"val_face{face}" if faces > 1 else "val")
        accuracy[f"face{face}"] = patch_accuracy(backbone, head, val, input_size)
    record = {
        "steps": cfg.steps,
        "images": len(data),
        "face": cfg.face,
        "split": split,
        "init": str(init) if init is not None else None,
        "final_loss": round(float(np.mean(losses[-10:])), 4),
        "val_patch_accuracy": accuracy,
        "pretrain": to_dict(cfg),
        "model": model,
        "input_size": input_size,
    }
    export_backbone(backbone, out_path, model_name=model, input_size=input_size,
                    meta={**provenance, "pretrain": record})  # fmt: skip
    write_text_atomic(out_path.with_name("pretrain.json"), json.dumps({**record, "provenance": provenance}, indent=2))
    logger.info("pretrained start: patch accuracy %s (split %s labelled)", accuracy, split)
    return record
