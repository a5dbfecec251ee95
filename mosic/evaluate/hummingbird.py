"""Hummingbird in-context scene understanding: dense nearest-neighbour label transfer from a memory of patches.

Protocol (``reference/eval_spec.md`` §6; Balažević et al., NeurIPS 2023, as re-implemented in
vpariza/open-hummingbird-eval and copied by MoSiC's ``evaluation/evaluation.py``):

1. **Memory.** For E augmentation passes over the training images (file order), each image gets a colour jitter
   (brightness, contrast, saturation, hue, each applied with p = 0.5 at strength 0.1) and a paired
   RandomResizedCrop to input x input (scale (0.5, 2.0) — draws above 1 are rejected, so 50–100 % of the area —
   ratio (3/4, 4/3); bilinear image, nearest mask (see 5.); no flip). Its S x S patch tokens are the keys
   (L2-normalised); the value of a patch is its class histogram over the p x p pixels of its cell (sums to 1).
   The reference folds the ignore label (VOC 255) into class 0 first.
2. **Bounded memory, rare classes first.** Each image contributes n_s = ⌊M / (N · E)⌋ cells (capped at S²; the
   reference crashes when n_s > S²): with freq[c] the number of the image's cells that contain class c, a cell
   scores Σ_{c in cell} freq[c] times u ~ U(0, 1), and the n_s lowest scores are kept, so cells holding the
   image's rare classes are favoured, with a random tie-break.
3. **Retrieval.** Each validation patch q (image square-resized to the input size) takes its k = 30 nearest
   keys by inner product; the reference uses ScaNN (approximate), here the search is exact (chunked matmul +
   top-k, :func:`knn_topk`). Weights a_j = softmax_j(cos(q, K_j) / β), β = 0.02; the prediction is Σ_j a_j ℓ_j.
4. **Scoring.** The G x S x S soft labels are upsampled bilinearly (align_corners=False) to the input size and
   arg-maxed; mIoU against the mask nearest-resized to the input size, ignore pixels removed. The reference
   applies Hungarian matching to these already-labelled predictions (a small optimistic bias) and averages over
   all G classes (ADE20K: /151 including the always-ignored class 0). ``parity=True`` reproduces both; the
   clean mode reports identity matching (and the Hungarian value beside it) and leaves a class that is the
   ignore label out of the mean.
5. **Mask resizing** (memory crops in 1., validation masks in 4.). The reference turns masks into tensors and
   resizes them with torchvision's NEAREST, which on a tensor is torch's ``F.interpolate(mode="nearest")``:
   source pixel ``floor(i * h / size)``, shifted by up to a pixel from the pixel centres. ``parity=True`` does
   the same; the clean mode uses ``nearest-exact``, the source pixel whose centre is nearest
   (``floor((i + 0.5) * h / size)``, the rule of PIL's NEAREST). The two agree when ``size`` is a whole
   multiple of the mask side and differ otherwise (any downsizing, e.g.). Compared with the reference on
   80x120 training and 70x110 validation images, ``nearest-exact`` is 2.0 mIoU points off, ``nearest`` 1.5e-4.

**Cross-view Hummingbird** (:func:`hummingbird_xview`, ours): on the synthetic image set with F > 1 faces per
class, the memory is built from ``train_face<a>`` (every object shows face a) and the queries are
``val_face<b>`` (every object shows face b), for every ordered pair a ≠ b, with the same settings and seed as
above; the number is the mean mIoU over the pairs. Faces of a class share no pattern or colour statistics,
so only features that tie a class's faces together, which the turning objects' tracks teach, transfer labels
across them; the standard protocol, whose memory holds every face, cannot tell.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mosic.config import HummingbirdConfig
from mosic.data.augment import CropBox, Photometric, apply_photometric, crop_resize_frames, random_resized_crop_box
from mosic.evaluate.base import SegmentationSet
from mosic.evaluate.features import FeatureExtractor
from mosic.evaluate.metrics import confusion, fold, match_labels, miou

logger = logging.getLogger(__name__)

__all__ = [
    "patch_histograms",
    "sample_patches",
    "build_memory",
    "knn_topk",
    "knn_retrieve",
    "hummingbird",
    "hummingbird_xview",
]

CROP_SCALE = (0.5, 2.0)  # as the reference; torchvision rejects draws above 1
CROP_RATIO = (3 / 4, 4 / 3)
JITTER_P = 0.5
JITTER_STRENGTH = 0.1
_SIM_BUDGET = 2**25  # elements of one query-chunk x memory-block similarity matrix (128 MiB in float32)


def patch_histograms(
    mask: np.ndarray | Tensor, grid: int, num_classes: int, ignore_index: int | None, *, fold_ignore: bool = True
) -> Tensor:
    """Per-cell class histograms of a mask whose side is ``grid`` cells of p x p pixels.

    Args:
        mask: int [H, W] class ids with H = W = grid · p; `ignore_index` where unlabelled.
        grid: S, cells per side.
        num_classes: G.
        ignore_index: the unlabelled value, or None.
        fold_ignore: count ignored pixels as class 0 (the reference: VOC's 255 boundary becomes background);
            otherwise leave them out and normalise each cell over its labelled pixels.

    Returns:
        float32 [S·S, G], row-major cells; rows sum to 1 (a cell with no labelled pixel, when not folding: 0).
    """
    m = torch.as_tensor(np.asarray(mask)).long()
    h, w = m.shape
    if h != w or h % grid:
        raise ValueError(f"mask {h}x{w} is not a square of {grid} cells")
    p = h // grid
    cell = torch.arange(h).div(p, rounding_mode="floor")[:, None] * grid + torch.arange(w).div(p, rounding_mode="floor")
    if ignore_index is not None:
        ignored = m == ignore_index
        if fold_ignore:
            m = m.masked_fill(ignored, 0)
        else:
            m, cell = m[~ignored], cell[~ignored]
    m, cell = m.reshape(-1), cell.reshape(-1)
    if m.numel() and (m.min() < 0 or m.max() >= num_classes):
        raise ValueError(f"mask class outside [0, {num_classes}) and not the ignore index {ignore_index}")
    counts = torch.bincount(cell * num_classes + m, minlength=grid * grid * num_classes).view(grid * grid, -1)
    counts = counts.float()
    if fold_ignore or ignore_index is None:
        return counts / (p * p)
    return counts / counts.sum(1, keepdim=True).clamp_min(1)


def sample_patches(hist: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """Indices of `n` cells of one image, rare classes first (spec §6.2 step 5).

    freq[c] = number of cells containing class c; score(cell) = Σ_{c in cell} freq[c] · u with u ~ U(0, 1) per
    cell; the `n` lowest scores are kept. Empty cells (no labelled pixel) are never taken.

    Args:
        hist: float [S², G] per-cell class histograms (:func:`patch_histograms`).
        n: cells to keep (capped at the number of non-empty cells).
        generator: torch CPU generator (the reference's u comes from torch's CPU stream).

    Returns:
        int64 [min(n, non-empty cells)] cell indices.
    """
    present = hist > 0
    freq = present.sum(0).float()  # [G]
    score = (present.float() * freq).sum(1) * torch.rand(hist.shape[0], generator=generator)
    nonempty = present.any(1)
    score = score.masked_fill(~nonempty, math.inf)
    n = min(n, int(nonempty.sum()))
    return score.topk(n, largest=False).indices


def _resize_mask(mask: Tensor, size: int, *, parity: bool = False) -> Tensor:
    """Nearest resize of uint8 [h, w] to [size, size] (module docstring, 5.).

    ``parity``: torch's ``nearest`` (``floor(i * h / size)``), as the reference resizes its label tensors;
    otherwise ``nearest-exact`` (the source pixel whose centre is nearest).
    """
    if mask.shape == (size, size):
        return mask
    mode = "nearest" if parity else "nearest-exact"
    return F.interpolate(mask[None, None], size=(size, size), mode=mode)[0, 0]


def _jitter(rng: np.random.Generator) -> Photometric:
    """The reference's image-only transforms: brightness, contrast, saturation, hue, each with p = 0.5."""
    u = rng.random(4)
    s = JITTER_STRENGTH
    factors = (rng.uniform(1 - s, 1 + s), rng.uniform(1 - s, 1 + s), rng.uniform(1 - s, 1 + s), rng.uniform(-s, s))
    ops = ("brightness", "contrast", "saturation", "hue")
    jitter = tuple((op, float(f)) for op, f, ui in zip(ops, factors, u, strict=True) if ui < JITTER_P)
    return Photometric(jitter=jitter, grayscale=False, blur_sigma=None)


def _augment(
    image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator, *, parity: bool = False
) -> tuple[Tensor, Tensor]:
    """Jittered, paired random resized crop: uint8 [size, size, 3] image and uint8 [size, size] mask.

    ``parity``: the mask crop is resized as the reference does (:func:`_resize_mask`).
    """
    h, w = mask.shape
    box = random_resized_crop_box(rng, h, w, CROP_SCALE, CROP_RATIO)
    img = crop_resize_frames(torch.as_tensor(image)[None], box, size, flip=False)  # [1, 3, S, S] uint8
    aug = _jitter(rng)
    if aug.jitter:
        img = (apply_photometric(img.float() / 255, aug) * 255).round().clamp(0, 255).to(torch.uint8)
    m = torch.as_tensor(mask)[box.y0 : box.y0 + box.h, box.x0 : box.x0 + box.w]
    return img[0].permute(1, 2, 0).contiguous(), _resize_mask(m, size, parity=parity)


def _train_subset(n: int, fraction: float, seed: int) -> list[int]:
    if fraction >= 1.0:
        return list(range(n))
    count = max(1, round(fraction * n))
    rng = np.random.default_rng([seed, 0x4842])  # its own stream: the subset does not depend on anything else
    return sorted(rng.choice(n, size=count, replace=False).tolist())


def build_memory(
    train: SegmentationSet,
    extractor: FeatureExtractor,
    cfg: HummingbirdConfig,
    *,
    seed: int,
    fold_ignore: bool = True,
    parity: bool = False,
) -> tuple[Tensor, Tensor]:
    """The retrieval memory: keys (patch features) and values (patch label distributions).

    Args:
        train: training images and masks (``train.num_classes`` = G).
        extractor: features at the token grid (``input_size``, ``grid``, ``dim``, ``batch_size``, ``__call__``).
        cfg: ``memory_size`` M, ``augment_passes`` E, ``train_fraction``, ``input_size`` (must equal the
            extractor's).
        seed: seeds the training subset, the crops, the jitter and the sampling; each image and pass draws from
            its own stream ``(seed, pass, index)``, so the memory does not depend on batching.
        fold_ignore: ignore pixels count as class 0, as the reference (right for VOC's 255 boundary; not for
            COCO, whose class 0 is a real class); otherwise they are left out of the histograms.
        parity: resize the mask crops with torch's ``nearest``, as the reference (module docstring, 5.);
            otherwise ``nearest-exact``.

    Returns:
        keys float32 [M', D], L2-normalised; values float32 [M', G]; M' = N · E · min(⌊M / (N · E)⌋, S²) at most
        (fewer when cells without labelled pixels are skipped).
    """
    if cfg.input_size != extractor.input_size:
        raise ValueError(f"config input_size {cfg.input_size} differs from the extractor's {extractor.input_size}")
    size, grid, g = extractor.input_size, extractor.grid, train.num_classes
    if size % grid:
        raise ValueError(f"input size {size} is not a multiple of the token grid {grid}")
    index = _train_subset(len(train), cfg.train_fraction, seed)
    units = [(e, i) for e in range(cfg.augment_passes) for i in index]
    per_image = cfg.memory_size // len(units)
    if per_image < 1:
        raise ValueError(f"memory_size {cfg.memory_size} is smaller than the {len(units)} augmented images")
    if per_image > grid * grid:
        logger.warning("memory: %d patches per image exceed the %d of the grid; keeping all", per_image, grid**2)
    per_image = min(per_image, grid * grid)
    keys = torch.empty(len(units) * per_image, extractor.dim)
    values = torch.empty(len(units) * per_image, g)
    filled = 0
    t0 = time.perf_counter()
    for start in range(0, len(units), extractor.batch_size):
        batch = units[start : start + extractor.batch_size]
        images, hists = [], []
        for e, i in batch:
            rng = np.random.default_rng([seed, e, i])
            img, m = _augment(train.image(i), train.mask(i), size, rng, parity=parity)
            images.append(img)
            hists.append(patch_histograms(m, grid, g, train.ignore_index, fold_ignore=fold_ignore))
        feats = extractor(torch.stack(images).numpy()).reshape(len(batch), grid * grid, -1)
        for (e, i), f, hist in zip(batch, feats, hists, strict=True):
            gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, e, i, 1]).integers(2**63)))
            cells = sample_patches(hist, per_image, gen)
            keys[filled : filled + len(cells)] = F.normalize(f[cells].float(), dim=-1)
            values[filled : filled + len(cells)] = hist[cells]
            filled += len(cells)
    logger.info(
        "hummingbird memory: %d patches from %d images x %d passes (%d per image) in %.1f s",
        filled,
        len(index),
        cfg.augment_passes,
        per_image,
        time.perf_counter() - t0,
    )
    return keys[:filled], values[:filled]


def knn_topk(
    queries: Tensor, keys: Tensor, *, k: int, chunk: int = 4096, memory_chunk: int | None = None
) -> tuple[Tensor, Tensor]:
    """Exact top-k by cosine similarity: queries are L2-normalised, keys are taken as they are (normalised).

    For each block of `chunk` queries, the similarity to each block of `memory_chunk` keys is one matmul; its
    top-k is merged into the running top-k (concatenate, top-k again), so memory stays at
    ``chunk x memory_chunk`` similarities whatever the memory size. The result equals a full sort of the
    similarity rows (up to the order of exactly equal similarities).

    Args:
        queries: [Q, D] (any scale).
        keys: [M, D], L2-normalised rows.
        k: neighbours (capped at M).
        chunk: queries per block.
        memory_chunk: keys per block; default ``max(k, 2**25 // chunk)``.

    Returns:
        sims [Q, k'] (float, descending) and indices int64 [Q, k'] into `keys`, k' = min(k, M).
    """
    m = keys.shape[0]
    if m == 0:
        raise ValueError("empty memory")
    if k > m:
        logger.warning("k = %d exceeds the memory size %d; using k = %d", k, m, m)
        k = m
    dtype = torch.float32 if keys.dtype in (torch.float16, torch.bfloat16) and keys.device.type == "cpu" else keys.dtype
    memory_chunk = memory_chunk or max(k, _SIM_BUDGET // chunk)
    q_all = F.normalize(queries.to(device=keys.device, dtype=dtype), dim=-1)
    out_v = torch.empty(len(q_all), k, dtype=dtype, device=keys.device)
    out_i = torch.empty(len(q_all), k, dtype=torch.long, device=keys.device)
    for qs in range(0, len(q_all), chunk):
        q = q_all[qs : qs + chunk]
        best_v = best_i = None
        for ms in range(0, m, memory_chunk):
            sims = q @ keys[ms : ms + memory_chunk].to(dtype).T
            v, i = sims.topk(min(k, sims.shape[1]), dim=1)
            i += ms
            if best_v is not None:
                v, i = torch.cat([best_v, v], 1), torch.cat([best_i, i], 1)
                v, sel = v.topk(min(k, v.shape[1]), dim=1)
                i = i.gather(1, sel)
            best_v, best_i = v, i
        out_v[qs : qs + chunk], out_i[qs : qs + chunk] = best_v, best_i
    return out_v, out_i


def knn_retrieve(
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    *,
    k: int,
    temperature: float,
    chunk: int = 4096,
    memory_chunk: int | None = None,
) -> Tensor:
    """Soft labels of the queries: ŷ(q) = Σ_j softmax_j(cos(q, K_j) / β) ℓ_j over the k nearest keys.

    Args:
        queries: [Q, D] patch features (normalised here).
        keys: [M, D] L2-normalised memory features.
        values: [M, G] memory label distributions.
        k: neighbours (capped at M).
        temperature: β.
        chunk, memory_chunk: block sizes of the exact search (:func:`knn_topk`).

    Returns:
        float32 [Q, G] label distributions (rows sum to the neighbours' row sums, 1 for histograms).
    """
    sims, idx = knn_topk(queries, keys, k=k, chunk=chunk, memory_chunk=memory_chunk)
    out = torch.empty(len(idx), values.shape[1], dtype=torch.float32, device=values.device)
    for qs in range(0, len(idx), chunk):  # the [chunk, k, G] gather is the largest buffer
        w = torch.softmax(sims[qs : qs + chunk].float() / temperature, dim=1)
        out[qs : qs + chunk] = torch.einsum("qk,qkg->qg", w, values[idx[qs : qs + chunk]].float())
    return out


def _mean_iou(c_folded: np.ndarray, classes: np.ndarray) -> tuple[float, np.ndarray]:
    _, iou = miou(c_folded)
    return float(iou[classes].mean()), iou


def hummingbird(
    train: SegmentationSet,
    val: SegmentationSet,
    extractor: FeatureExtractor,
    cfg: HummingbirdConfig,
    *,
    seed: int,
    parity: bool = False,
    fold_ignore: bool = True,
    examples: int = 0,
    memory: tuple[Tensor, Tensor] | None = None,
) -> dict:
    """Hummingbird mIoU of the extractor's features (module docstring).

    Args:
        train: memory images and masks.
        val: evaluation images and masks (same classes and ignore label).
        extractor: frozen features (``input_size`` = ``cfg.input_size``); with a CUDA ``device`` the memory moves
            there and the exact search runs on the GPU.
        cfg: memory size, augmentation passes, training fraction, k, temperature.
        seed: seeds the memory (:func:`build_memory`); retrieval and scoring are deterministic.
        parity: as the reference: masks (memory crops and validation) resized with torch's ``nearest``,
            Hungarian matching and the mean over all G classes (ADE20K: /151). Otherwise ``nearest-exact``,
            identity matching and, when the ignore label is a class id (ADE20K's 0), the mean over the other
            classes.
        fold_ignore: how memory histograms treat ignore pixels (:func:`build_memory`).
        examples: keep the predictions of the first `examples` val images (for figures).
        memory: keys and values that :func:`build_memory` made of `train` with these settings, to score several
            query sets against one memory; None builds it.

    Returns:
        ``miou`` (the protocol's number: Hungarian in parity mode, identity otherwise), ``miou_identity``,
        ``miou_hungarian``, ``iou`` (per class [G], of the reported matching), ``matching``, ``classes_averaged``,
        ``parity``, ``memory_size`` (realised), ``num_train``, ``num_val``, ``k`` (used), ``temperature``,
        ``input_size``, ``seconds`` (memory, total); with `examples`, ``examples``: a list of
        ``{"index", "image" uint8 [size, size, 3], "gt" uint8 [size, size], "pred" uint8 [size, size]}``.
    """
    if train.num_classes != val.num_classes or train.ignore_index != val.ignore_index:
        raise ValueError("train and val sets differ in classes or ignore label")
    t0 = time.perf_counter()
    if memory is None:
        memory = build_memory(train, extractor, cfg, seed=seed, fold_ignore=fold_ignore, parity=parity)
    keys, values = memory
    t_memory = time.perf_counter() - t0
    device = torch.device(getattr(extractor, "device", "cpu"))
    if device.type == "cuda":  # exact search on the GPU: float32 memory (42 GB for ViT-L at 10.24M) and GEMMs
        keys, values = keys.to(device), values.to(device)
    num_train = len(_train_subset(len(train), cfg.train_fraction, seed))
    size, grid, g = extractor.input_size, extractor.grid, val.num_classes
    conf = np.zeros((g, g), dtype=np.int64)
    kept: list[dict] = []
    for start in range(0, len(val), extractor.batch_size):
        idx = range(start, min(start + extractor.batch_size, len(val)))
        images = []
        for i in idx:
            image = torch.as_tensor(val.image(i))[None]
            box = CropBox(x0=0, y0=0, w=image.shape[2], h=image.shape[1])
            images.append(crop_resize_frames(image, box, size, flip=False)[0].permute(1, 2, 0))
        feats = extractor(torch.stack(images).numpy())
        soft = knn_retrieve(feats.reshape(-1, feats.shape[-1]), keys, values, k=cfg.k, temperature=cfg.temperature)
        soft = soft.view(len(idx), grid, grid, g).permute(0, 3, 1, 2)
        for j, i in enumerate(idx):  # one image at a time: G x size² floats each (160 MB for ADE at 518)
            up = F.interpolate(soft[j : j + 1], size=(size, size), mode="bilinear", align_corners=False)
            pred = up[0].argmax(0).cpu().numpy()
            gt = _resize_mask(torch.as_tensor(val.mask(i)), size, parity=parity).numpy()
            conf += confusion(gt, pred, g, g, val.ignore_index)
            if i < examples:
                image = images[j].numpy().astype(np.uint8)
                kept.append({"index": i, "image": image, "gt": gt.astype(np.uint8), "pred": pred.astype(np.uint8)})
    ignore_is_class = val.ignore_index is not None and 0 <= val.ignore_index < g
    classes = np.arange(g)
    if not parity and ignore_is_class:
        classes = classes[classes != val.ignore_index]
    miou_id, iou_id = _mean_iou(fold(conf, match_labels(conf, "identity")), classes)
    miou_hu, iou_hu = _mean_iou(fold(conf, match_labels(conf, "hungarian")), classes)
    matching = "hungarian" if parity else "identity"
    result = {
        "miou": miou_hu if parity else miou_id,
        "miou_identity": miou_id,
        "miou_hungarian": miou_hu,
        "iou": (iou_hu if parity else iou_id).tolist(),
        "matching": matching,
        "classes_averaged": len(classes),
        "parity": parity,
        "memory_size": int(keys.shape[0]),
        "num_train": num_train,
        "num_val": len(val),
        "k": min(cfg.k, int(keys.shape[0])),
        "temperature": cfg.temperature,
        "input_size": size,
        "seconds": {"memory": t_memory, "total": time.perf_counter() - t0},
    }
    if examples:
        result["examples"] = kept
    logger.info(
        "hummingbird %s: mIoU %.4f (%s; identity %.4f, hungarian %.4f), memory %d",
        val.name,
        result["miou"],
        matching,
        miou_id,
        miou_hu,
        result["memory_size"],
    )
    return result


def hummingbird_xview(
    train_faces: list[SegmentationSet],
    val_faces: list[SegmentationSet],
    extractor: FeatureExtractor,
    cfg: HummingbirdConfig,
    *,
    seed: int,
    parity: bool = False,
    fold_ignore: bool = True,
) -> dict:
    """Cross-view Hummingbird (module docstring): memory of one face, queries of another, every ordered pair.

    Each face's memory is built once and scores the queries of every other face. All memories use the same seed
    and the per-face splits list the same scenes in the same order, so two faces' memories hold the same crops
    and differ only in the faces shown.

    Args:
        train_faces: F >= 2 training sets, set f showing face f (``train_face<f>``).
        val_faces: F validation sets, set f showing face f (``val_face<f>``).
        extractor, cfg, seed, parity, fold_ignore: as :func:`hummingbird`.

    Returns:
        ``miou`` (mean over the F·(F−1) directions), ``miou_face<a>_to_face<b>`` (memory face a, queries face
        b) for each direction, ``directions`` (each direction's full :func:`hummingbird` result) and ``faces``.
    """
    faces = len(train_faces)
    if faces < 2 or len(val_faces) != faces:
        raise ValueError(f"cross-view Hummingbird needs F >= 2 training and F validation sets, got {faces} and "
                         f"{len(val_faces)}")  # fmt: skip
    directions = {}
    for a, train in enumerate(train_faces):
        memory = build_memory(train, extractor, cfg, seed=seed, fold_ignore=fold_ignore, parity=parity)
        for b, val in enumerate(val_faces):
            if b != a:
                directions[f"face{a}_to_face{b}"] = hummingbird(
                    train, val, extractor, cfg, seed=seed, parity=parity, fold_ignore=fold_ignore, memory=memory
                )
    result = {"miou": float(np.mean([r["miou"] for r in directions.values()]))}
    result |= {f"miou_{name}": r["miou"] for name, r in directions.items()}
    logger.info("cross-view hummingbird: mIoU %.4f over %d directions", result["miou"], len(directions))
    return result | {"directions": directions, "faces": faces}
