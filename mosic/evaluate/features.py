"""Frozen dense features: last-layer normalised patch tokens of a timm backbone or of an exported checkpoint.

Every protocol reads the same features (``reference/eval_spec.md`` §2.1): the output of the last block after
the model's final norm, patch tokens only (class and register tokens dropped), from a square resize of the
image. :class:`FeatureExtractor` does that in batches under ``torch.inference_mode``; :func:`extract` runs it
over a dataset and caches the result as a float16 ``.npy`` file per (model, dataset, resolution), so the
protocols share one extraction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mosic.data.augment import IMAGENET_MEAN, IMAGENET_STD
from mosic.fsutil import atomic_file
from mosic.model.backbone import build_backbone, patch_size
from mosic.model.export import load_exported

logger = logging.getLogger(__name__)

__all__ = ["FeatureExtractor", "load_model", "extract"]


def load_model(source: str, *, input_size: int, pretrained: bool = False) -> nn.Module:
    """A backbone in eval mode: an exported checkpoint (a ``.safetensors`` path) or a timm model name.

    Exported checkpoints are rebuilt at the size they were trained at and then set to `input_size`
    (timm resamples the position embedding), as the reference evaluation does.
    """
    if source.endswith(".safetensors"):
        model = load_exported(Path(source))
        if hasattr(model, "set_input_size"):
            model.set_input_size(img_size=input_size)
    else:
        model = build_backbone(source, pretrained=pretrained, input_size=input_size)
    return model.eval()


class FeatureExtractor:
    """Patch-token features of a frozen backbone.

    Args:
        model: a timm ViT (``forward_features`` returning [B, prefix + S·S, D]).
        input_size: square input size (a multiple of the patch size).
        mean, std: normalisation of [0, 1] pixels.
        device: where the model runs.
        batch_size: images per forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
    ) -> None:
        self.model = model.to(device).eval()
        self.input_size = input_size
        self.grid = input_size // patch_size(model)
        self.dim = int(model.num_features)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Features of uint8 RGB images [B, H, W, 3] (any H, W: square-resized) → float32 [B, S, S, D] on CPU."""
        x = torch.as_tensor(np.asarray(images)).to(self.device).permute(0, 3, 1, 2).float().div_(255)
        out = []
        for chunk in x.split(self.batch_size):
            if chunk.shape[-2:] != (self.input_size, self.input_size):
                chunk = F.interpolate(chunk, size=(self.input_size,) * 2, mode="bilinear", antialias=True)
            chunk = (chunk - self._mean) / self._std
            amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
            with amp:
                tokens = self.model.forward_features(chunk)[:, self.model.num_prefix_tokens :]
            out.append(tokens.float().reshape(len(chunk), self.grid, self.grid, self.dim).cpu())
        return torch.cat(out)


def extract(
    extractor: FeatureExtractor,
    num_images: int,
    load_image: Callable[[int], np.ndarray],
    cache: str | Path | None = None,
    *,
    key: dict | None = None,
) -> np.ndarray:
    """Features of a whole dataset, float16 [num_images, S, S, D], cached in `cache` (a ``.npy`` path).

    Args:
        extractor: the feature extractor.
        num_images: dataset size.
        load_image: index → uint8 [H, W, 3] image.
        cache: where to keep the features; reused when its sidecar key matches (model, size, dataset).
        key: what identifies the features (model source, input size, dataset); stored in ``<cache>.json``.
    """
    if cache is not None:
        cache = Path(cache)
        sidecar = cache.with_suffix(cache.suffix + ".json")
        want = json.dumps(key or {}, sort_keys=True)
        if cache.exists() and sidecar.exists() and json.loads(sidecar.read_text()).get("key") == want:
            logger.info("reusing cached features %s", cache)
            return np.load(cache, mmap_mode="r")
    s, d = extractor.grid, extractor.dim
    feats = np.empty((num_images, s, s, d), dtype=np.float16)
    step = extractor.batch_size
    for start in tqdm(range(0, num_images, step), desc="features", unit="batch"):
        idx = range(start, min(start + step, num_images))
        images = [load_image(i) for i in idx]
        size = images[0].shape[:2]
        if any(im.shape[:2] != size for im in images):  # square-resize per image when sizes differ
            images = [_square(im, extractor.input_size) for im in images]
        feats[start : start + len(idx)] = extractor(np.stack(images)).numpy().astype(np.float16)
    if cache is not None:
        with atomic_file(cache) as tmp, open(tmp, "wb") as f:
            np.save(f, feats)  # to a file object: np.save would append .npy to a name
        digest = hashlib.sha256(want.encode()).hexdigest()[:16]
        sidecar.write_text(json.dumps({"key": want, "key_hash": digest, "shape": list(feats.shape)}))
    return feats


def _square(image: np.ndarray, size: int) -> np.ndarray:
    t = torch.as_tensor(image).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
