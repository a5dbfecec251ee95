"""Video segmentation (Timetuning protocol) on in-memory toy clips whose features separate the objects trivially:
frame- and clip-wise clustering, per-unit Hungarian with unmatched clusters to background, DAVIS-instance vs
YouTube-VOS-category labels, batch-mean aggregation and determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mosic.config import VideoSegConfig
from mosic.evaluate.videoseg import sample_frames, unit_miou, video_segmentation

PALETTE = np.array([[20, 20, 20], [230, 40, 40], [40, 230, 40]], dtype=np.float32)  # background, 1, 2
SIZE = 32


class PixelExtractor:
    """A FeatureExtractor stand-in with one token per pixel (grid = input size, so upsampling is the identity):
    the one-hot nearest palette colour plus fixed Gaussian noise (σ = 0.05; it breaks the exact ties between
    duplicated points that make K-means inits degenerate). Every dimension carries signal: the z-score would
    blow a pure-noise dimension up to the signal's scale."""

    def __init__(self, input_size: int = SIZE) -> None:
        self.input_size, self.grid, self.dim, self.batch_size = input_size, input_size, len(PALETTE), 8

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images)).float()
        assert x.shape[1:] == (self.input_size, self.input_size, 3)
        nearest = ((x[..., None, :] - torch.as_tensor(PALETTE)) ** 2).sum(-1).argmin(-1)
        onehot = F.one_hot(nearest, len(PALETTE)).float()
        return onehot + 0.05 * torch.randn(onehot.shape, generator=torch.Generator().manual_seed(0))


@dataclasses.dataclass
class ToyVideos:
    """An in-memory VideoSegmentationSet: {video: (frames uint8 [N, H, W, 3], labels uint8 [N, H, W])}."""

    clips: dict[str, tuple[np.ndarray, np.ndarray]]
    name: str = "toy"

    @property
    def video_ids(self) -> list[str]:
        return sorted(self.clips)

    def num_frames(self, video_id: str) -> int:
        return len(self.clips[video_id][0])

    def read(self, video_id: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        frames, labels = self.clips[video_id]
        return frames[indices], labels[indices]


def two_objects(n: int, seed: int, *, size: int = SIZE, swap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Frames with two moving, non-overlapping rectangles of about a third of the frame each: instance 1
    (colour 1, the larger) and instance 2 (colour 2); with `swap`, odd frames swap the two colours (labels
    unchanged)."""
    rng = np.random.default_rng(seed)
    frames, labels = np.zeros((n, size, size, 3), np.uint8), np.zeros((n, size, size), np.uint8)
    s = size / 32
    for t in range(n):
        y1, x1 = rng.integers(0, 3, 2)
        labels[t, round(y1 * s) : round((y1 + 14) * s), round(x1 * s) : round((x1 + 22) * s)] = 1
        y2, x2 = rng.integers(16, 19), rng.integers(0, 13)
        labels[t, round(y2 * s) : round((y2 + 13) * s), round(x2 * s) : round((x2 + 19) * s)] = 2
        colour = labels[t].copy()
        if swap and t % 2:
            colour = np.choose(colour, [0, 2, 1]).astype(np.uint8)
        frames[t] = PALETTE[colour].astype(np.uint8)
    return frames, labels


def cfg(**kw) -> VideoSegConfig:
    base = dict(enabled=True, input_size=SIZE, frames=4, k=3, mode="frame", iters=20, restarts=5)
    return VideoSegConfig(**{**base, **kw})


def test_sample_frames():
    picked = sample_frames([10, 2, 4], 4, seed=1)
    assert [len(p) for p in picked] == [4, 4, 4]
    assert all(p == sorted(p) for p in picked)
    assert len(set(picked[0])) == 4 and set(picked[1]) <= {0, 1} and picked[2] == [0, 1, 2, 3]
    assert picked == sample_frames([10, 2, 4], 4, seed=1) != sample_frames([10, 2, 4], 4, seed=2)


def test_unit_miou_matching():
    gt = np.array([0, 0, 3, 3, 3, 3])
    assert unit_miou(gt, np.array([1, 1, 0, 0, 0, 0]), 2) == 1.0  # absent labels 1, 2 do not count
    # an extra cluster is unmatched -> background: IoU(0) = 2/3, IoU(3) = 3/4
    assert unit_miou(gt, np.array([1, 1, 0, 0, 0, 2]), 3) == pytest.approx((2 / 3 + 3 / 4) / 2)
    # background absent from the GT: the unmatched half becomes 0, which is not scored, and label 2 loses it
    assert unit_miou(np.full(4, 2), np.array([0, 0, 1, 1]), 2) == 0.5
    # overclustering: many-to-one sends both clusters of label 3 to it
    assert unit_miou(gt, np.array([1, 1, 0, 0, 2, 2]), 3, "many_to_one") == 1.0


@pytest.mark.parametrize("mode", ["frame", "clip"])
def test_two_object_clip_separable(mode):
    videos = ToyVideos({"a": two_objects(6, seed=0), "b": two_objects(3, seed=1)})
    res = video_segmentation(videos, PixelExtractor(), cfg(mode=mode), seed=1)
    assert res["miou"] == 1.0 and res["per_video"] == {"a": 1.0, "b": 1.0}
    assert res["mode"] == mode and res["k"] == 3
    assert res["num_units"] == (8 if mode == "frame" else 2)
    assert len(res["frames"]["a"]) == 4 and len(res["frames"]["b"]) == 4  # b: with replacement


def test_clip_wise_shares_clusters_across_frames():
    """Colours swap between frames: each frame alone is perfect, one matching for the clip is not."""
    videos = ToyVideos({"a": two_objects(8, seed=0, swap=True)})
    frame = video_segmentation(videos, PixelExtractor(), cfg(mode="frame", frames=6), seed=0)
    clip = video_segmentation(videos, PixelExtractor(), cfg(mode="clip", frames=6), seed=0)
    assert frame["miou"] == 1.0
    assert clip["miou"] < 0.85


def test_davis_instances_vs_ytvos_categories():
    """The same clip scored with instance labels (DAVIS) and with both instances as one category (YouTube-VOS)."""
    frames, instances = two_objects(5, seed=3)
    categories = np.minimum(instances, 1)  # both objects are of category 1
    davis = video_segmentation(ToyVideos({"v": (frames, instances)}), PixelExtractor(), cfg(), seed=0)
    ytvos = video_segmentation(ToyVideos({"v": (frames, categories)}), PixelExtractor(), cfg(), seed=0)
    assert davis["miou"] == 1.0
    # K = 3 clusters (bg, object 1, object 2) against labels {0, 1}: Hungarian gives category 1 the larger
    # instance's cluster; the other is unmatched and becomes background.
    expected = []
    for t in davis["frames"]["v"]:
        a, b = (instances[t] == 1).sum(), (instances[t] == 2).sum()
        g = (instances[t] == 0).sum()
        expected.append((g / (g + b) + a / (a + b)) / 2)
    assert ytvos["miou"] == pytest.approx(np.mean(expected))
    assert ytvos["frames"] == davis["frames"]


def test_batch_mean_aggregation():
    frames, instances = two_objects(4, seed=5)
    videos = ToyVideos(
        {"a": two_objects(4, seed=0), "b": two_objects(4, seed=1), "c": (frames, np.minimum(instances, 1))}
    )
    res = video_segmentation(videos, PixelExtractor(), cfg(), seed=0, batch_videos=2)
    pv = res["per_video"]
    assert pv["a"] == pv["b"] == 1.0 and pv["c"] < 1.0
    assert res["batch_means"] == pytest.approx([1.0, pv["c"]])
    assert res["miou"] == pytest.approx((1.0 + pv["c"]) / 2)  # mean of batch means ...
    assert res["miou_units"] == pytest.approx((2.0 + pv["c"]) / 3)  # ... not the flat mean
    whole = video_segmentation(videos, PixelExtractor(), cfg(), seed=0, batch_videos=None)
    assert whole["batch_means"] == pytest.approx([whole["miou_units"]])


def test_determinism_and_resizing():
    videos = ToyVideos({"a": two_objects(20, seed=0, size=48), "b": two_objects(20, seed=1, size=48)})
    one = video_segmentation(videos, PixelExtractor(), cfg(mode="clip"), seed=7)
    assert one == {**video_segmentation(videos, PixelExtractor(), cfg(mode="clip"), seed=7), "seconds": one["seconds"]}
    other = video_segmentation(videos, PixelExtractor(), cfg(mode="clip"), seed=8)
    assert other["frames"] != one["frames"]
    assert one["miou"] > 0.9  # frames at 48 px, resized to the 32 px input: blended rims only
    with pytest.raises(ValueError, match="input_size"):
        video_segmentation(videos, PixelExtractor(), cfg(input_size=64), seed=0)
