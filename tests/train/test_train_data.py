"""Training clips and loader: crop mapping, point sampling, the track controls, determinism, workers and ranks;
the batched views on the device against the one-clip helpers."""

import contextlib
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mosic.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ORIGINAL_STD,
    apply_photometric,
    apply_photometric_batch,
    crop_resize_frames,
)
from mosic.geometry import inside_image
from mosic.store import ClipRecord, ShardWriter, TrackStore
from mosic.train import data as data_module
from mosic.train.data import (
    ClipBatch,
    RawBatch,
    SlotBatch,
    SlotPool,
    TrainClips,
    collate,
    independent_motion,
    make_loader,
)
from mosic.train.presets import PRESETS
from mosic.train.step import step_seed, teacher_frame_indices

PROVENANCE = {
    "mosic_version": "0.1.0",
    "git_sha": "0123456789abcdef0123456789abcdef01234567",
    "config": {"grid": 8},
    "config_hash": "deadbeef",
    "tracker": {"name": "fake_tracker", "settings": {}},
}
T, H, W = 4, 40, 48
S = 32  # input size of most tests


def write_store(path: Path, clips: list[ClipRecord]) -> TrackStore:
    """One shard holding `clips` (same T, N, H, W), opened as a store."""
    t, h, w, _ = clips[0].frames.shape
    n = clips[0].tracks.shape[1]
    with ShardWriter(path, num_frames=t, height=h, width=w, num_points=n, attrs=PROVENANCE, chunk_clips=4) as wr:
        for c in clips:
            wr.add(c)
    return TrackStore([path])


def walk_clip(rng: np.random.Generator, clip_id: int, *, step: float = 3.0, occlude: float = 0.1) -> ClipRecord:
    """8 x 8 grid of points on random-walk trajectories (distinct), random frames, some points occluded."""
    gx, gy = np.meshgrid(np.linspace(1, W - 2, 8), np.linspace(1, H - 2, 8))
    start = np.stack([gx.ravel(), gy.ravel()], -1)
    tracks = start + np.cumsum(rng.normal(0, step, (T, 64, 2)) * (np.arange(T) > 0)[:, None, None], axis=0)
    tracks = np.clip(tracks, [0, 0], [W - 1, H - 1]).astype(np.float32)
    vis = rng.random((T, 64)) >= occlude
    return ClipRecord(
        video_id=f"v{clip_id // 3}",
        clip_id=clip_id,
        frame_indices=np.arange(T, dtype=np.int32),
        frames=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8),
        tracks=tracks,
        visibility=vis,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> TrackStore:
    """13 clips of random walks; the last one has no point visible at frame 0."""
    rng = np.random.default_rng(0)
    clips = [walk_clip(rng, i) for i in range(13)]
    clips[-1].visibility[0] = False
    return write_store(tmp_path_factory.mktemp("walk") / "shard.zarr", clips)


@pytest.fixture(scope="module")
def visible_store(tmp_path_factory) -> TrackStore:
    """6 clips whose points are all visible in the cache, with large steps (many leave any crop)."""
    rng = np.random.default_rng(1)
    return write_store(
        tmp_path_factory.mktemp("vis") / "shard.zarr", [walk_clip(rng, i, step=12.0, occlude=0.0) for i in range(6)]
    )


def dataset(store: TrackStore, **kw) -> TrainClips:
    args = dict(
        input_size=S,
        num_points=16,
        crop_scale=0.4,
        flip=True,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        track_source="cached",
        photometric=False,
        student_all_frames=False,
        seed=0,
    )
    return TrainClips(store, **{**args, **kw})


def views(ds: TrainClips, *indices) -> ClipBatch:
    """The views of items `indices` of `ds`, made as the training loop makes them (on the CPU here)."""
    return ds.transform(collate([ds[i] for i in indices]))


def view(ds: TrainClips, index) -> dict[str, torch.Tensor]:
    """Item `index` with its views: ``video``, ``student`` (and ``student_all``) of the clip alone."""
    batch = views(ds, index)
    out = {**ds[index], "video": batch.video[0], "student": batch.student[0]}
    if batch.student_all is not None:
        out["student_all"] = batch.student_all[0]
    return out


def real_slots(item: dict) -> int:
    """Number of sampled (not padded) points: they come first and are the ones visible at frame 0."""
    return int(item["visibility"][0].sum())


def test_constants_match_the_spec_and_presets():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    assert ORIGINAL_STD == (0.228, 0.224, 0.225)
    assert PRESETS["default"].std == IMAGENET_STD and PRESETS["faithful"].std == ORIGINAL_STD
    assert PRESETS["default"].mean == PRESETS["faithful"].mean == IMAGENET_MEAN


@pytest.mark.parametrize("std", [IMAGENET_STD, ORIGINAL_STD])
def test_normalisation_of_a_flat_colour(tmp_path, std):
    rgb = np.array([200, 100, 30], dtype=np.uint8)
    clip = walk_clip(np.random.default_rng(0), 0)
    clip.frames[:] = rgb
    item = view(dataset(write_store(tmp_path / "flat.zarr", [clip]), std=std), 0)
    expected = (torch.tensor(rgb / 255.0) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(std)
    torch.testing.assert_close(item["video"], expected.float().view(1, 3, 1, 1).expand(T, 3, S, S))


@pytest.mark.parametrize("flip", [False, True])
def test_tracks_land_on_the_bright_dot(tmp_path, flip):
    """A dot moving through a clip, cached as one track: after crop, resize (and flip) the track is on the dot."""
    from dots import blob_frames, dot_centre

    pos = np.array([[20.25, 17.5], [23.0, 19.75], [26.5, 21.0], [29.125, 22.5]], dtype=np.float32)
    clip = ClipRecord(
        video_id="dot",
        clip_id=0,
        frame_indices=np.arange(T, dtype=np.int32),
        frames=blob_frames(pos, H, W, sigma=1.5),
        tracks=pos[:, None, :],
        visibility=np.ones((T, 1), dtype=bool),
    )
    ds = dataset(write_store(tmp_path / "dot.zarr", [clip]), input_size=48, num_points=1, crop_scale=0.3, flip=flip)
    unflipped = dataset(ds.store, input_size=48, num_points=1, crop_scale=0.3, flip=False)
    checked, flipped = 0, 0
    for epoch in range(12):
        item = view(ds, (epoch, 0))
        flipped += not torch.equal(item["tracks"], unflipped[(epoch, 0)]["tracks"])
        grey = (item["video"][:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]).numpy()
        for t in np.flatnonzero(item["visibility"][:, 0].numpy()):
            xy = item["tracks"][t, 0].numpy()
            if (xy < 10).any() or (xy > 48 - 11).any():
                continue  # dot cut by the crop edge (sigma up to ~3.5 px after resizing): its centroid moves
            np.testing.assert_allclose(dot_centre(grey[t], xy, 10.0), xy, atol=0.05)
            checked += 1
    assert checked >= 10
    assert (flipped > 0) == flip


def test_flip_mirrors_frames_and_tracks(store):
    flip, plain = dataset(store, flip=True), dataset(store, flip=False)
    seen = set()
    for i in range(len(store)):
        a, b = view(flip, i), view(plain, i)
        is_flipped = not torch.equal(a["video"], b["video"])
        seen.add(is_flipped)
        if is_flipped:
            torch.testing.assert_close(a["video"], b["video"].flip(-1))
            torch.testing.assert_close(a["tracks"][..., 0], (S - 1) - b["tracks"][..., 0])
            torch.testing.assert_close(a["tracks"][..., 1], b["tracks"][..., 1])
            assert torch.equal(a["visibility"], b["visibility"])
        else:
            assert torch.equal(a["tracks"], b["tracks"])
    assert seen == {True, False}


def test_points_inside_the_crop_and_visible_at_frame_0(store):
    ds = dataset(store)
    for epoch in range(3):
        for i in range(len(store) - 1):
            item = ds[(epoch, i)]
            real = real_slots(item)
            assert real >= 1
            assert item["visibility"][0, :real].all() and not item["visibility"][:, real:].any()
            assert inside_image(item["tracks"][0, :real].numpy(), S, S).all()
            assert len(np.unique(item["tracks"][0, :real].numpy(), axis=0)) == real  # without replacement
            # Every visible point at every frame is inside the input.
            assert inside_image(item["tracks"].numpy(), S, S)[item["visibility"].numpy()].all()


def test_out_of_crop_points_are_not_visible(visible_store):
    """All cached points are visible, so a sampled point is visible at t exactly when it is inside the crop at t."""
    ds = dataset(visible_store, num_points=8, crop_scale=0.3)
    left = 0
    for epoch in range(4):
        for i in range(len(visible_store)):
            item = ds[(epoch, i)]
            real = real_slots(item)
            inside = inside_image(item["tracks"][:, :real].numpy(), S, S)
            np.testing.assert_array_equal(item["visibility"][:, :real].numpy(), inside)
            left += int((~inside).sum())
    assert left > 20  # the test does see points leaving the crop


def test_padding_never_fabricates_visible_points(store):
    item = dataset(store, num_points=100)[0]  # 64 cached points: fewer than 100 qualify
    real = real_slots(item)
    assert 1 <= real < 64
    vis, tracks = item["visibility"], item["tracks"]
    assert vis[0, :real].all() and not vis[:, real:].any()
    for n in range(real, 100):  # a padded slot repeats a sampled point's trajectory
        assert (tracks[:, n : n + 1] == tracks[:, :real]).all(-1).all(0).any()


def test_no_qualifying_point_gives_an_empty_but_finite_item(store):
    item = dataset(store)[len(store) - 1]
    assert not item["visibility"].any()
    assert torch.isfinite(item["tracks"]).all() and item["tracks"].shape == (T, 16, 2)


def test_static_control(store):
    cached, static = dataset(store), dataset(store, track_source="static")
    for i in range(len(store) - 1):
        a, b = view(cached, i), view(static, i)
        real = real_slots(a)
        assert torch.equal(a["tracks"][0], b["tracks"][0]) and torch.equal(a["video"], b["video"])
        assert torch.equal(b["tracks"], b["tracks"][:1].expand_as(b["tracks"]))
        assert b["visibility"][:, :real].all() and not b["visibility"][:, real:].any()


def test_shuffled_control(store):
    cached, shuffled = dataset(store), dataset(store, track_source="shuffled")
    for i in range(len(store) - 1):
        a, b = cached[i], shuffled[i]
        real = real_slots(a)
        assert torch.equal(a["tracks"][0], b["tracks"][0]) and torch.equal(a["visibility"][0], b["visibility"][0])
        # Frames >= 1 of each sampled point are those of another sampled point (trajectories are distinct).
        later_a, later_b = a["tracks"][1:, :real], b["tracks"][1:, :real]
        match = (later_b[:, :, None] == later_a[:, None, :]).all(-1).all(0)  # [real, real]: b's n is a's m
        assert (match.sum(1) == 1).all()
        source = match.float().argmax(1)
        assert (source != torch.arange(real)).all()  # a derangement
        assert sorted(source.tolist()) == list(range(real))
        assert torch.equal(b["visibility"][1:, :real], a["visibility"][1:, source])


def test_independent_motion_removes_the_shared_motion():
    t = np.arange(4.0)[:, None]
    pan = np.stack([2 * t, -t], -1)  # [T, 1, 2]: every point's share of the motion
    start = np.random.default_rng(0).uniform(0, 30, (1, 9, 2))
    own = np.zeros((4, 9, 2))
    own[:, 0, 1] = 5 * t[:, 0]  # point 0 moves 5 px per frame on its own
    own[:, 1, 0] = [0, 3, 9, 1]  # point 1 goes away and comes back: its largest own distance counts
    tracks = start + pan + own
    visible = np.ones((4, 9), dtype=bool)
    visible[3, 0] = False  # not seen at the last frame: its distance there does not count
    visible[1:, 2] = False  # never seen after frame 0
    tracks[2, 3] = np.nan  # an unknown position counts as not visible
    moved = independent_motion(tracks, visible)
    np.testing.assert_allclose(moved, [10, 9, 0, 0, 0, 0, 0, 0, 0], atol=1e-9)
    visible[0, 1] = False  # not visible at frame 0: nothing to measure from
    assert independent_motion(tracks, visible)[1] == 0


@pytest.fixture(scope="module")
def panning_store(tmp_path_factory) -> TrackStore:
    """4 clips of a 8 x 8 grid panning right and down 1 px per frame, every point visible; the top row (8 points)
    also moves down 4 px per frame on its own."""
    rng = np.random.default_rng(2)
    gx, gy = np.meshgrid(np.linspace(1, W - 2, 8), np.linspace(1, H - 2, 8))
    start = np.stack([gx.ravel(), gy.ravel()], -1)
    t = np.arange(T, dtype=np.float64)[:, None, None]
    tracks = start + t * np.array([1.0, 1.0])
    tracks[:, :8, 1] += 4 * t[:, 0]
    tracks = np.clip(tracks, [0, 0], [W - 1, H - 1]).astype(np.float32)
    visible = np.ones((T, 64), dtype=bool)
    frames = rng.integers(0, 256, (4, T, H, W, 3), dtype=np.uint8)
    index = np.arange(T, dtype=np.int32)
    clips = [ClipRecord(video_id=f"v{i}", clip_id=i, frame_indices=index, frames=frames[i], tracks=tracks,
                        visibility=visible) for i in range(4)]  # fmt: skip
    return write_store(tmp_path_factory.mktemp("pan") / "shard.zarr", clips)


def movers(item: dict) -> int:
    """Sampled points of the top row (they move down at least 4 x 3 x 0.8 input px more than the pan)."""
    down = item["tracks"][-1, :, 1] - item["tracks"][0, :, 1]
    return int((down > 6).sum())


def test_moving_points_are_sampled_first(panning_store):
    """With points: moving, every point that moves on its own is taken before any other; uniform takes 2 of 16 on
    average. The controls sample the same points; with fewer places than movers, only movers."""
    kw = dict(crop_scale=1.0, moving_threshold=4.0)  # the whole frame: every point qualifies, none leaves
    moving, uniform = dataset(panning_store, points="moving", **kw), dataset(panning_store, **kw)
    static = dataset(panning_store, points="moving", track_source="static", **kw)
    few = dataset(panning_store, points="moving", num_points=5, **kw)
    taken = []
    for epoch in range(3):
        for i in range(len(panning_store)):
            item = moving[(epoch, i)]
            assert movers(item) == 8 and real_slots(item) == 16
            assert len(np.unique(item["tracks"][0].numpy(), axis=0)) == 16
            assert torch.equal(static[(epoch, i)]["tracks"][0], item["tracks"][0])
            assert movers(few[(epoch, i)]) == 5
            taken.append(movers(uniform[(epoch, i)]))
    assert np.mean(taken) < 4
    # A threshold above every point's own motion makes it uniform-like: the movers are no longer preferred.
    assert np.mean([movers(dataset(panning_store, points="moving", crop_scale=1.0, moving_threshold=50.0)[i])
                    for i in range(4)]) < 8  # fmt: skip


def test_deterministic_per_seed_epoch_and_index(store):
    ds, again = dataset(store, photometric=True), dataset(store, photometric=True)
    for i in (0, 5):
        one, two = view(ds, (2, i)), view(again, (2, i))
        assert one.keys() == two.keys() and all(same(one[k], two[k]) for k in one)
        again.set_epoch(2)
        assert all(same(one[k], v) for k, v in view(again, i).items())
        other = view(ds, (3, i))
        assert not torch.equal(one["tracks"], other["tracks"]) and not torch.equal(one["video"], other["video"])
    assert not torch.equal(dataset(store, seed=1)[0]["tracks"], ds[(0, 0)]["tracks"])


def same(a, b) -> bool:
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_collate_and_views_shapes_dtypes(store):
    ds = dataset(store)
    raw = collate([ds[i] for i in range(3)])
    assert isinstance(raw, RawBatch)
    assert raw.frames.shape == (3, T, H, W, 3) and raw.frames.dtype == torch.uint8
    assert len(raw.boxes) == len(raw.flips) == 3 and raw.photometric is None
    assert raw.tracks.shape == (3, T, 16, 2) and raw.tracks.dtype == torch.float32
    assert raw.visibility.shape == (3, T, 16) and raw.visibility.dtype == torch.bool
    assert raw.clip_ids.tolist() == [0, 1, 2] and raw.clip_ids.dtype == torch.int64
    batch = ds.transform(raw)
    assert isinstance(batch, ClipBatch)
    assert batch.video.shape == (3, T, 3, S, S) and batch.video.dtype == torch.float32
    assert batch.video.is_contiguous()
    assert batch.student.shape == (3, 3, S, S) and torch.equal(batch.student, batch.video[:, 0])
    assert batch.student_all is None
    assert batch.tracks is raw.tracks and batch.visibility is raw.visibility and batch.clip_ids is raw.clip_ids

    both = views(dataset(store, student_all_frames=True), 0, 1)
    assert both.student_all is both.video  # no augmentation: one tensor for both views
    moved = both.to("cpu")
    assert moved.student_all is moved.video

    aug_ds = dataset(store, student_all_frames=True, photometric=True)
    raw = collate([aug_ds[i] for i in range(2)])
    assert len(raw.photometric) == 2
    aug = aug_ds.transform(raw)
    assert aug.student_all.shape == (2, T, 3, S, S) and torch.equal(aug.student, aug.student_all[:, 0])
    with pytest.raises(ValueError, match="photometric"):
        collate([aug_ds[0], ds[1]])


@contextlib.contextmanager
def torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_clip_views(item: dict, size: int, student_all: bool) -> dict[str, torch.Tensor]:
    """The views of one item as a loader worker made them before the device did: the augment helpers on one clip,
    normalised as ``x * (1 / (255 std)) + (-mean / std)`` in float32, in one thread (as a worker runs)."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in IMAGENET_STD]).view(3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]).view(3, 1, 1)

    def normalise(pixels):
        return torch.empty(pixels.shape, dtype=torch.float32).copy_(pixels).mul_(scale).add_(shift)

    with torch_threads(1):
        pixels = crop_resize_frames(item["frames"], item["box"], size, item["flip"])
        out = {"video": normalise(pixels)}
        if "photometric" in item:
            frames = pixels if student_all else pixels[:1]
            viewed = normalise(apply_photometric(frames.to(torch.float32).div_(255.0), item["photometric"]) * 255.0)
            out["student"], out["student_all"] = viewed[0], viewed
        else:
            out["student"], out["student_all"] = out["video"][0], out["video"]
    return out


@pytest.mark.parametrize(
    ("size", "photometric", "student_all"),
    [
        (S, False, False),
        (S, True, False),
        (S, True, True),
        (224, True, False),
        pytest.param(224, True, True, marks=pytest.mark.slow),
    ],  # fmt: skip
)
def test_device_views_equal_the_one_clip_helpers_bit_for_bit(store, size, photometric, student_all):
    """The batched views on the CPU are exactly the per-clip ones, whatever the batch (also a batch of one clip,
    where torch would sum a lone image's mean over its threads) and torch's thread count (2 here)."""
    ds = dataset(store, input_size=size, photometric=photometric, student_all_frames=student_all)
    for epoch, batches in ((0, [range(13)]), (1, [range(0, 13, 2), [7, 8]]), (2, [[i] for i in range(13)])):
        for indices in batches:
            items = [ds[(epoch, i)] for i in indices]
            with torch_threads(2):
                batch = ds.transform(collate(items))
            for b, item in enumerate(items):
                ref = one_clip_views(item, size, student_all)
                assert torch.equal(batch.video[b], ref["video"]), (epoch, b)
                assert torch.equal(batch.student[b], ref["student"]), (epoch, b)
                if student_all:
                    assert torch.equal(batch.student_all[b], ref["student_all"]), (epoch, b)
    if photometric:  # the batches did go through every jitter op, the grayscale and the blur
        draws = [ds[(e, i)]["photometric"] for e in range(3) for i in range(13)]
        assert {op for d in draws for op, _ in d.jitter} == {"brightness", "contrast", "saturation", "hue"}
        assert any(d.grayscale for d in draws) and any(d.blur_sigma for d in draws)


def twelve_frame_batch(ds: TrainClips, count: int) -> RawBatch:
    """The draws of `count` items of `ds` over 12 random frames per clip (the demo's T), tracks repeated."""
    raw = collate([ds[i] for i in range(count)])
    g = torch.Generator().manual_seed(5)
    frames = torch.randint(0, 256, (count, 12, H, W, 3), dtype=torch.uint8, generator=g)
    tracks = raw.tracks.repeat(1, 3, 1, 1) + torch.rand(count, 12, raw.tracks.shape[2], 2, generator=g)
    return replace(raw, frames=frames, tracks=tracks, visibility=raw.visibility.repeat(1, 3, 1),
                   frame_indices=torch.arange(12))  # fmt: skip


STEP_FRAMES = [teacher_frame_indices(12, k, seed) for k, seed in ((4, 0), (4, 1), (2, 7), (11, 3), (1, 0))]


@pytest.mark.parametrize(("photometric", "student_all"), [(False, False), (False, True), (True, False), (True, True)])
def test_views_of_the_step_frames_equal_all_views_cut_to_them(store, photometric, student_all):
    """Views of the step's frames only are bit for bit the views of every frame cut to them, the student's
    frame-0 view included (each frame is resized and augmented alone)."""
    ds = dataset(store, photometric=photometric, student_all_frames=student_all)
    raw = twelve_frame_batch(ds, 6)
    whole = ds.transform(raw)
    for frames in [*STEP_FRAMES, torch.arange(12), [0, 5, 9]]:
        ref = whole.select_frames(torch.as_tensor(frames))
        got = ds.transform(raw, frames)
        for key in ("video", "student", "tracks", "visibility", "clip_ids"):
            assert torch.equal(getattr(got, key), getattr(ref, key)), (key, frames)
        assert got.video.shape == (6, len(frames), 3, S, S) and got.video.is_contiguous()
        if student_all:
            assert torch.equal(got.student_all, ref.student_all) and torch.equal(got.student, got.student_all[:, 0])
            assert (got.student_all is got.video) == (not photometric)
        else:
            assert got.student_all is None
    for bad in ([1, 2], [], [[0, 1]]):
        with pytest.raises(ValueError, match="frame 0 first"):
            ds.transform(raw, bad)
    with pytest.raises(ValueError, match=re.escape("frames [0, 12] are not among")):
        ds.transform(raw, [0, 12])


def test_views_of_the_step_frames_resize_only_those_frames(store, monkeypatch):
    """The transform's work scales with the step's frames: T' frames per clip are resized and augmented."""
    ds = dataset(store, photometric=True, student_all_frames=True)
    raw = twelve_frame_batch(ds, 4)
    resized, augmented = [], []

    def counting_resize(frames, *args):
        resized.append(frames.shape[0])
        return crop_resize_frames(frames, *args)

    def counting_photometric(images, augs):
        augmented.append(images.shape[:2])
        return apply_photometric_batch(images, augs)

    monkeypatch.setattr(data_module, "crop_resize_frames", counting_resize)
    monkeypatch.setattr(data_module, "apply_photometric_batch", counting_photometric)
    ds.transform(raw, STEP_FRAMES[0])
    assert resized == [4] * 4 and augmented == [(4, 4)]
    resized.clear()
    augmented.clear()
    ds.transform(raw)
    assert resized == [12] * 4 and augmented == [(4, 12)]


def test_photometric_changes_only_the_student_view(store):
    plain, aug = dataset(store), dataset(store, photometric=True, student_all_frames=True)
    changed = 0
    for i in range(len(store)):
        a, b = view(plain, i), view(aug, i)
        for key in ("video", "tracks", "visibility", "clip_id"):
            assert torch.equal(a[key], b[key])
        changed += not torch.allclose(b["student"], a["student"])
        assert torch.equal(b["student"], b["student_all"][0])
    assert changed >= len(store) - 3  # each clip keeps its pixels with probability 0.2 * 0.8 * 0.5 = 0.08


def _batches(loader, sampler, ds, epochs):
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        out.append(list(loader))
    return out


def test_loader_is_independent_of_the_worker_count(store):
    results = {}
    for workers in (0, 2):
        ds = dataset(store, photometric=True)
        loader, sampler = make_loader(ds, batch_size_per_rank=4, workers=workers, seed=3, rank=0, world_size=1)
        results[workers] = _batches(loader, sampler, ds, epochs=2)
    assert [len(e) for e in results[0]] == [3, 3]  # 13 clips, batches of 4, last incomplete batch dropped
    for e0, e2 in zip(results[0], results[2], strict=True):
        for b0, b2 in zip(e0, e2, strict=True):
            for k in ("frames", "tracks", "visibility", "clip_ids"):
                assert torch.equal(getattr(b0, k), getattr(b2, k))
            assert (b0.boxes, b0.flips, b0.photometric) == (b2.boxes, b2.flips, b2.photometric)
    # The persistent workers saw epoch 1: its batches are the items of epoch 1.
    ref = dataset(store, photometric=True)
    first = results[2][1][0]
    expected = views(ref, *[(1, int(g)) for g in first.clip_ids])
    assert torch.equal(ref.transform(first).student, expected.student)


def assert_same_batch(a: RawBatch, b: RawBatch) -> None:
    for key in ("frames", "tracks", "visibility", "clip_ids", "frame_indices"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype and torch.equal(x, y), key
    assert (a.boxes, a.flips, a.photometric) == (b.boxes, b.flips, b.photometric)


def test_slot_pool_round_trip_equals_collate(store):
    ds = dataset(store, teacher_frames=2, photometric=True)
    items = [ds[(0, i, 5)] for i in (3, 7, 1)]
    frames, height, width, _ = items[0]["frames"].shape
    pool = SlotPool(slots=3, batch=4, frames=frames, height=height, width=width, points=16)
    assert pool.fits(items) and not pool.fits(items * 2)  # at most `batch` items
    assert not pool.fits([dataset(store, photometric=True)[(0, 3, 5)]])  # every frame: another shape
    sent = pool.put(2, items)
    assert isinstance(sent, SlotBatch) and (sent.slot, sent.size) == (2, 3)
    got = pool.take(sent)
    assert_same_batch(got, collate(items))
    assert got.frames.untyped_storage().data_ptr() != pool.frames.untyped_storage().data_ptr()  # a copy
    with pytest.raises(ValueError, match="different frames"):
        pool.put(0, [items[0], ds[(0, 4, 6)]])


def test_pooled_loader_sends_slots_and_matches_sending_tensors(store):
    """Workers write into the slot pool and send only the slot; every batch (all kept, so a slot reused too soon
    would show) equals the batch sent as tensors and the batch made without workers, over two epochs."""
    results, taken = {}, []
    for name, workers, slots in (("pool", 2, True), ("tensors", 2, False), ("none", 0, True)):
        ds = dataset(store, teacher_frames=2, photometric=True)
        loader, sampler = make_loader(ds, batch_size_per_rank=2, workers=workers, seed=1, rank=0, world_size=1,
                                      slots=slots)  # fmt: skip
        pool = getattr(loader, "slot_pool", None)
        assert (pool is not None) == (name == "pool")
        if pool is not None:
            assert pool.slots == 2 * 2 + 2  # prefetch factor x workers + 2
            slots_used = pool.slots
            pool.take = lambda batch, take=pool.take, **kw: taken.append(batch.slot) or take(batch, **kw)
        results[name] = _batches(loader, sampler, ds, epochs=2)
    assert [len(e) for e in results["none"]] == [6, 6]
    assert taken == [step % slots_used for step in range(12)]  # every batch came through its step's slot
    for name in ("pool", "tensors"):
        for e0, e1 in zip(results["none"], results[name], strict=True):
            for a, b in zip(e0, e1, strict=True):
                assert_same_batch(a, b)


def test_pool_that_cannot_be_allocated_falls_back_to_tensors(store, monkeypatch, caplog):
    def no_room(**shape):
        raise RuntimeError("unable to write to file </torch_1>: No space left on device")

    monkeypatch.setattr(data_module, "SlotPool", no_room)
    ds = dataset(store, teacher_frames=2)
    with caplog.at_level("WARNING", logger="mosic.train.data"):
        loader, sampler = make_loader(ds, batch_size_per_rank=4, workers=1, seed=0, rank=0, world_size=1)
    assert not hasattr(loader, "slot_pool")
    assert "slot pool" in caplog.text and "No space left" in caplog.text and "'batch': 4" in caplog.text
    (batches,) = _batches(loader, sampler, ds, epochs=1)
    assert len(batches) == 3 and all(isinstance(b, RawBatch) for b in batches)


@pytest.mark.parametrize("workers", [0, 2])
def test_items_of_a_step_hold_only_its_frames(store, workers):
    """With teacher_frames set, the loader's items hold only their step's frames (drawn as the training loop draws
    them, on every rank, after a mid-epoch resume too), and the views are bit for bit those of whole items."""
    cut, whole = dataset(store, teacher_frames=2, photometric=True), dataset(store, photometric=True)
    seen = set()
    for rank in (0, 1):
        loader, sampler = make_loader(cut, batch_size_per_rank=2, workers=workers, seed=0, rank=rank, world_size=2)
        steps_per_epoch = len(loader)
        for epoch, start in ((0, 0), (1, 2)):  # epoch 1 resumed after its first batch
            sampler.set_epoch(epoch, start=start)
            for b, raw in enumerate(loader):
                step = epoch * steps_per_epoch + start // 2 + b
                frames = teacher_frame_indices(T, 2, step_seed(0, step))
                seen.add(tuple(frames.tolist()))
                assert torch.equal(raw.frame_indices, frames) and raw.frames.shape[1] == 2
                full = collate([whole[(epoch, int(g))] for g in raw.clip_ids])
                assert torch.equal(raw.frames, full.frames[:, frames])
                assert torch.equal(raw.tracks, full.tracks[:, frames])
                assert torch.equal(raw.visibility, full.visibility[:, frames])
                assert (raw.boxes, raw.flips, raw.photometric) == (full.boxes, full.flips, full.photometric)
                a, b_ = cut.transform(raw, frames), whole.transform(full, frames)
                for key in ("video", "student", "tracks", "visibility"):
                    assert torch.equal(getattr(a, key), getattr(b_, key)), key
    assert len(seen) > 1  # the steps drew different frames
    # Items of steps with different frames do not make one batch.
    steps = [k for k in range(20) if not torch.equal(cut.frames_of_step(k), cut.frames_of_step(0))]
    with pytest.raises(ValueError, match="different frames"):
        collate([cut[(0, 0, 0)], cut[(0, 1, steps[0])]])


def test_distributed_sampler_splits_clips_over_ranks(store):
    orders = []
    for epoch in range(2):
        per_rank = []
        for rank in range(2):
            ds = dataset(store)
            loader, sampler = make_loader(ds, batch_size_per_rank=2, workers=0, seed=0, rank=rank, world_size=2)
            assert len(loader) == 3  # 13 clips -> 12 (drop_last) -> 6 per rank -> 3 batches of 2
            (batches,) = _batches_at(loader, sampler, ds, epoch)
            per_rank.append([int(g) for b in batches for g in b.clip_ids])
        assert all(len(ids) == 6 for ids in per_rank)
        assert not set(per_rank[0]) & set(per_rank[1])
        orders.append(per_rank)
    assert orders[0] != orders[1]  # a new permutation per epoch


def _batches_at(loader, sampler, ds, epoch):
    sampler.set_epoch(epoch)
    ds.set_epoch(epoch)
    return [list(loader)]


def test_bad_arguments_fail(store):
    with pytest.raises(ValueError, match="track_source"):
        dataset(store, track_source="random")
    with pytest.raises(ValueError, match="points"):
        dataset(store, points="edges")
    with pytest.raises(ValueError, match="moving_threshold"):
        dataset(store, moving_threshold=-1.0)
    with pytest.raises(ValueError, match="crop_scale"):
        dataset(store, crop_scale=0.0)
    with pytest.raises(IndexError):
        dataset(store)[len(store)]


def test_sampler_starts_mid_epoch_without_loading_the_skipped_batches(store):
    """A resumed run starts the epoch at its k-th index: the same batches as the tail of the full epoch."""
    ds = dataset(store)
    loader, sampler = make_loader(ds, batch_size_per_rank=2, workers=0, seed=0, rank=1, world_size=2)
    (full,) = _batches_at(loader, sampler, ds, 1)
    sampler.set_epoch(1, start=2)
    assert len(loader) == 2
    tail = list(loader)
    assert [b.clip_ids.tolist() for b in tail] == [b.clip_ids.tolist() for b in full[1:]]
    sampler.set_epoch(2)
    assert len(list(loader)) == 3
    with pytest.raises(ValueError, match="outside the epoch"):
        sampler.set_epoch(0, start=7)
