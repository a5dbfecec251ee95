"""Hummingbird retrieval: exact top-k against brute force, rare-first memory sampling, label histograms with the
ignore label, and end-to-end label transfer on a toy set whose features identify the class."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mosic.config import HummingbirdConfig
from mosic.evaluate.hummingbird import (
    build_memory,
    hummingbird,
    knn_retrieve,
    knn_topk,
    patch_histograms,
    sample_patches,
)
from mosic.evaluate.metrics import confusion, miou

PALETTE = np.array([[20, 20, 20], [230, 40, 40], [40, 230, 40], [40, 40, 230]], dtype=np.float32)
SIZE, GRID = 64, 8  # 8 x 8 pixel cells


class ColourExtractor:
    """A FeatureExtractor stand-in: per patch, the fraction of pixels nearest to each palette colour."""

    def __init__(self, input_size: int = SIZE, grid: int = GRID, batch_size: int = 4) -> None:
        self.input_size, self.grid, self.dim, self.batch_size = input_size, grid, len(PALETTE), batch_size
        self.calls = 0

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        self.calls += 1
        x = torch.as_tensor(np.asarray(images)).float()
        assert x.shape[1:] == (self.input_size, self.input_size, 3)
        nearest = ((x[..., None, :] - torch.as_tensor(PALETTE)) ** 2).sum(-1).argmin(-1)
        onehot = F.one_hot(nearest, len(PALETTE)).float()
        b, p = len(x), self.input_size // self.grid
        return onehot.view(b, self.grid, p, self.grid, p, -1).mean((2, 4))


@dataclasses.dataclass
class ToySet:
    images: list[np.ndarray]
    masks: list[np.ndarray]
    num_classes: int = 3
    ignore_index: int | None = 255
    name: str = "toy"
    class_names: list[str] = dataclasses.field(default_factory=lambda: ["bg", "a", "b"])

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> np.ndarray:
        return self.images[i]

    def mask(self, i: int) -> np.ndarray:
        return self.masks[i]


def make_set(n: int, seed: int, *, size: int = SIZE, aligned: bool = False, permute: dict | None = None) -> ToySet:
    """Background with one rectangle of class 1 and one of class 2 (colour = PALETTE[class]); a 255 rim in
    the mask around each rectangle unless `aligned` (then rectangles sit on the 8-pixel cell grid)."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        mask = np.zeros((size, size), np.uint8)
        for c in (1, 2):
            if aligned:
                y, x = rng.integers(0, size // 8 - 3, 2) * 8
                h, w = rng.integers(2, 4, 2) * 8
            else:
                y, x = rng.integers(0, size - 24, 2)
                h, w = rng.integers(12, 24, 2)
            mask[y : y + h, x : x + w] = c
        image = PALETTE[mask].astype(np.uint8)
        if not aligned:
            rim = (F.max_pool2d(torch.as_tensor(mask > 0).float()[None, None], 3, 1, 1)[0, 0].numpy() > 0) & (mask == 0)
            mask = np.where(rim, 255, mask).astype(np.uint8)
        if permute:
            mask = np.vectorize(lambda v: permute.get(int(v), int(v)))(mask).astype(np.uint8)
        images.append(image)
        masks.append(mask)
    return ToySet(images, masks)


def cfg(**kw) -> HummingbirdConfig:
    base = dict(
        enabled=True, input_size=SIZE, memory_size=2000, augment_passes=2, train_fraction=1.0, k=5, temperature=0.02
    )
    return HummingbirdConfig(**{**base, **kw})


# --- exact retrieval -------------------------------------------------------------------------------------------


def brute_force(q: np.ndarray, keys: np.ndarray, values: np.ndarray, k: int, beta: float):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qn @ keys.T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(sims, idx, 1)
    w = np.exp((top - top.max(1, keepdims=True)) / beta)
    w /= w.sum(1, keepdims=True)
    return top, idx, w, np.einsum("qk,qkg->qg", w, values[idx])


@pytest.mark.parametrize("chunk,memory_chunk", [(1, None), (7, 13), (64, 500), (4096, None), (100, 2000)])
def test_knn_equals_bruteforce(chunk, memory_chunk):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(300, 16))
    keys = rng.normal(size=(2000, 16))
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    values = rng.dirichlet(np.ones(5), size=2000)
    top, idx, w, pred = brute_force(q, keys, values, k=7, beta=0.02)
    tq, tk, tv = torch.as_tensor(q), torch.as_tensor(keys), torch.as_tensor(values)
    sims, ind = knn_topk(tq, tk, k=7, chunk=chunk, memory_chunk=memory_chunk)
    np.testing.assert_array_equal(ind.numpy(), idx)
    np.testing.assert_allclose(sims.numpy(), top, rtol=0, atol=1e-12)
    out = knn_retrieve(tq, tk, tv, k=7, temperature=0.02, chunk=chunk, memory_chunk=memory_chunk)
    np.testing.assert_allclose(out.numpy(), pred, atol=1e-6)
    np.testing.assert_allclose(out.sum(1).numpy(), 1, atol=1e-6)


def test_knn_float32_and_k_above_memory(caplog):
    rng = np.random.default_rng(1)
    q = torch.as_tensor(rng.normal(size=(50, 8)), dtype=torch.float32)
    keys = F.normalize(torch.as_tensor(rng.normal(size=(20, 8)), dtype=torch.float32), dim=1)
    sims, ind = knn_topk(q, keys, k=30, chunk=16, memory_chunk=6)
    assert ind.shape == (50, 20) and "exceeds the memory size" in caplog.text
    np.testing.assert_array_equal(np.sort(ind.numpy(), 1), np.tile(np.arange(20), (50, 1)))  # all of them
    assert torch.all(sims[:, :-1] >= sims[:, 1:])
    full = F.normalize(q, dim=1) @ keys.T
    np.testing.assert_allclose(sims.numpy(), full.sort(1, descending=True).values.numpy(), atol=1e-6)


# --- labels and sampling ---------------------------------------------------------------------------------------


def test_patch_histograms_ignore():
    mask = np.zeros((16, 16), np.uint8)
    mask[:8, :8] = 2  # cell 0: constant class 2 -> one-hot
    mask[:8, 8:12] = 255  # cell 1: half ignored, half class 0
    mask[8:, :8] = 255  # cell 2: all ignored
    mask[8:, 8:] = 1
    mask[8:10, 8:] = 255  # cell 3: 1/4 ignored, 3/4 class 1
    folded = patch_histograms(mask, 2, 3, 255)
    np.testing.assert_allclose(folded.sum(1).numpy(), 1)
    np.testing.assert_allclose(folded.numpy(), [[0, 0, 1], [1, 0, 0], [1, 0, 0], [0.25, 0.75, 0]])
    kept = patch_histograms(mask, 2, 3, 255, fold_ignore=False)
    np.testing.assert_allclose(kept.numpy(), [[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]])
    for s in range(5):  # an all-ignored cell is never sampled
        assert 2 not in sample_patches(kept, 4, torch.Generator().manual_seed(s)).tolist()
    with pytest.raises(ValueError, match="outside"):
        patch_histograms(np.full((16, 16), 7, np.uint8), 2, 3, 255)
    ade = patch_histograms(np.zeros((16, 16), np.uint8), 2, 3, 0)  # ADE20K: ignore = 0 = class 0
    np.testing.assert_allclose(ade.numpy()[:, 0], 1)


def rare_mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[24:40, 24:40] = 1  # 4 of 64 cells, in the centre so that most crops keep it
    return mask


def test_sampling_over_represents_rare_class():
    hist = patch_histograms(rare_mask(), GRID, 2, 255)
    rare = hist[:, 1] > 0
    share = np.mean(
        [rare[sample_patches(hist, 8, torch.Generator().manual_seed(s))].float().mean() for s in range(200)]
    )
    uniform = float(rare.float().mean())  # 4 / 64
    assert uniform == pytest.approx(4 / 64)
    assert share > 0.45 > 5 * uniform  # the 4 rare cells are in nearly every sample of 8


def test_memory_over_represents_rare_class():
    ds = ToySet([PALETTE[rare_mask()].astype(np.uint8)] * 6, [rare_mask()] * 6, num_classes=2, class_names=["a", "b"])
    keys, values = build_memory(ds, ColourExtractor(), cfg(memory_size=6 * 2 * 8), seed=0)
    assert keys.shape == (96, 4) and values.shape == (96, 2)
    np.testing.assert_allclose(keys.norm(dim=1).numpy(), 1, atol=1e-6)
    np.testing.assert_allclose(values.sum(1).numpy(), 1, atol=1e-6)
    _, every = build_memory(ds, ColourExtractor(), cfg(memory_size=10**6), seed=0)  # all cells of the same crops
    assert every.shape[0] == 6 * 2 * GRID * GRID
    # Pure rare cells score low (their class is in few cells); the crops make most rare cells mixed with the
    # background, whose score is then higher than a pure background cell's, so the gain is ~2.5x, not 8x.
    assert float(values[:, 1].mean()) > 2 * float(every[:, 1].mean())


# --- end to end ------------------------------------------------------------------------------------------------


def test_memory_size_and_determinism():
    train = make_set(5, seed=1)
    ex = ColourExtractor()
    keys, values = build_memory(train, ex, cfg(memory_size=300), seed=3)  # 300 // 10 = 30 per image
    assert keys.shape[0] == 5 * 2 * 30
    again = build_memory(train, ex, cfg(memory_size=300), seed=3)
    torch.testing.assert_close(keys, again[0], rtol=0, atol=0)
    torch.testing.assert_close(values, again[1], rtol=0, atol=0)
    other = build_memory(train, ex, cfg(memory_size=300), seed=4)
    assert not torch.equal(values, other[1])
    capped, _ = build_memory(train, ex, cfg(memory_size=10**6), seed=3)  # n_s > S²: every cell once
    assert capped.shape[0] == 5 * 2 * GRID * GRID
    half, _ = build_memory(train, ex, cfg(memory_size=10**6, train_fraction=0.4, augment_passes=1), seed=3)
    assert half.shape[0] == 2 * GRID * GRID
    with pytest.raises(ValueError, match="smaller than"):
        build_memory(train, ex, cfg(memory_size=5), seed=0)


def oracle_miou(val: ToySet, classes: list[int]) -> float:
    """Label transfer from the validation set's own patch histograms (spec §11.4): what perfect retrieval gives.
    Not 1: bilinear upsampling of the soft labels rounds off the objects' corners."""
    c = np.zeros((val.num_classes,) * 2, np.int64)
    for m in val.masks:
        hist = patch_histograms(m, GRID, val.num_classes, val.ignore_index).T.reshape(1, -1, GRID, GRID)
        pred = F.interpolate(hist, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0].argmax(0).numpy()
        c += confusion(m, pred, val.num_classes, val.num_classes, val.ignore_index)
    return float(miou(c)[1][classes].mean())


def test_hummingbird_features_identify_class():
    train, val = make_set(8, seed=1), make_set(4, seed=2, aligned=True)
    res = hummingbird(train, val, ColourExtractor(), cfg(), seed=0)
    assert res["miou"] == pytest.approx(oracle_miou(val, [0, 1, 2]), abs=1e-9) and res["miou"] > 0.94
    assert res["miou_identity"] == res["miou_hungarian"] == res["miou"]
    assert res["matching"] == "identity" and res["memory_size"] == 8 * 2 * min(2000 // 16, GRID**2)
    # objects off the cell grid (mixed cells, a 255 rim): close to the oracle; and at another resolution
    val = make_set(4, seed=5)
    assert hummingbird(train, val, ColourExtractor(), cfg(), seed=0)["miou"] == pytest.approx(
        oracle_miou(val, [0, 1, 2]), abs=0.05
    )
    assert hummingbird(train, make_set(4, seed=5, size=80), ColourExtractor(), cfg(), seed=0)["miou"] > 0.7


def test_parity_uses_hungarian_clean_uses_identity():
    swap = {1: 2, 2: 1}  # the memory's labels are the validation classes permuted
    train, val = make_set(8, seed=1, permute=swap), make_set(4, seed=2, aligned=True)
    clean = hummingbird(train, val, ColourExtractor(), cfg(), seed=0)
    parity = hummingbird(train, val, ColourExtractor(), cfg(), seed=0, parity=True)
    assert clean["miou"] == clean["miou_identity"] < 0.5
    assert clean["miou_hungarian"] == pytest.approx(oracle_miou(val, [0, 1, 2]), abs=1e-9)
    assert parity["miou"] == parity["miou_hungarian"] == clean["miou_hungarian"]
    assert parity["matching"] == "hungarian"


def test_ade_style_ignore_class():
    """Ignore label 0 that is also class 0: parity averages over all 3 classes (class 0 scores 0), clean over 2."""

    def ade(ds: ToySet) -> ToySet:
        masks = [np.where(m == 255, 0, m).astype(np.uint8) for m in ds.masks]
        return dataclasses.replace(ds, masks=masks, ignore_index=0)

    train, val = ade(make_set(8, seed=1)), ade(make_set(4, seed=2, aligned=True))
    clean = hummingbird(train, val, ColourExtractor(), cfg(), seed=0)
    parity = hummingbird(train, val, ColourExtractor(), cfg(), seed=0, parity=True)
    assert clean["miou"] == pytest.approx(oracle_miou(val, [1, 2]), abs=1e-9) and clean["classes_averaged"] == 2
    assert parity["miou"] == pytest.approx(2 / 3 * parity["miou_hungarian"] * 3 / 2)  # class 0's IoU is 0
    assert parity["miou"] == pytest.approx(2 / 3 * clean["miou"]) and parity["classes_averaged"] == 3


# --- parity: masks resized as the reference resizes label tensors ----------------------------------------------


def make_rect_set(n: int, seed: int, height: int, width: int) -> ToySet:
    """Non-square images: background, a rectangle of class 1 and one of class 2 off the cell grid, a 255 rim."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        mask = np.zeros((height, width), np.uint8)
        for c in (1, 2):
            y, x = rng.integers(0, height - 24), rng.integers(0, width - 24)
            mask[y : y + rng.integers(10, 24), x : x + rng.integers(10, 24)] = c
        images.append(PALETTE[mask].astype(np.uint8))
        rim = (F.max_pool2d(torch.as_tensor(mask > 0).float()[None, None], 3, 1, 1)[0, 0].numpy() > 0) & (mask == 0)
        masks.append(np.where(rim, 255, mask).astype(np.uint8))
    return ToySet(images, masks)


def reference_resize(mask: np.ndarray, size: int) -> np.ndarray:
    """open-hummingbird-eval's mask resize: torchvision NEAREST on a label tensor, i.e. torch's floor `nearest`."""
    return F.interpolate(torch.as_tensor(mask)[None, None], size=(size, size), mode="nearest")[0, 0].numpy()


def test_parity_scores_against_masks_resized_as_the_reference():
    """70x110 validation masks: parity scores against torch-`nearest` masks; clean mode uses other pixels."""
    train, val = make_rect_set(6, seed=1, height=80, width=120), make_rect_set(4, seed=2, height=70, width=110)
    parity = hummingbird(train, val, ColourExtractor(), cfg(), seed=0, parity=True, examples=len(val))
    clean = hummingbird(train, val, ColourExtractor(), cfg(), seed=0, examples=len(val))
    c = np.zeros((3, 3), np.int64)
    clean_differs = False
    for ex, ex_clean, mask in zip(parity["examples"], clean["examples"], val.masks, strict=True):
        ref = reference_resize(mask, SIZE)
        np.testing.assert_array_equal(ex["gt"], ref)
        c += confusion(ref, ex["pred"], 3, 3, 255)
        clean_differs |= bool((ex_clean["gt"] != ref).any())
    assert parity["miou_identity"] == pytest.approx(float(miou(c)[1].mean()), abs=1e-12)
    assert clean_differs  # the test can tell the two resizes apart


def rows(values: np.ndarray) -> np.ndarray:
    """The rows of [n, G] in lexicographic order (the memory's cell order within an image is the sampler's)."""
    return values[np.lexsort(values.T[::-1])]


def test_parity_memory_holds_crops_resized_as_the_reference():
    """Each memory value is the histogram of a cell of the crop's mask resized with torch's `nearest`."""
    from mosic.data.augment import random_resized_crop_box
    from mosic.evaluate.hummingbird import CROP_RATIO, CROP_SCALE

    train, passes = make_rect_set(3, seed=1, height=80, width=120), 2
    config = cfg(memory_size=10**6, augment_passes=passes)  # every cell of every crop
    _, values = build_memory(train, ColourExtractor(), config, seed=0, parity=True)
    _, clean_values = build_memory(train, ColourExtractor(), config, seed=0)
    blocks = values.numpy().reshape(passes * len(train), GRID * GRID, 3)  # one block of cells per (pass, image)
    clean_blocks = clean_values.numpy().reshape(passes * len(train), GRID * GRID, 3)
    differs = False
    for unit, (e, i) in enumerate(itertools.product(range(passes), range(len(train)))):
        box = random_resized_crop_box(np.random.default_rng([0, e, i]), 80, 120, CROP_SCALE, CROP_RATIO)
        crop = train.masks[i][box.y0 : box.y0 + box.h, box.x0 : box.x0 + box.w]
        expected = patch_histograms(reference_resize(crop, SIZE), GRID, 3, 255).numpy()
        np.testing.assert_allclose(rows(blocks[unit]), rows(expected), atol=1e-6)
        differs |= not np.allclose(rows(clean_blocks[unit]), rows(expected), atol=1e-6)
    assert differs  # clean mode's nearest-exact picks other pixels of these crops
