"""Tests of the procedural synthetic dataset: layout, determinism, exact ground truth, motion, drift, turning faces."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mosic.config import SyntheticConfig
from mosic.data.synthetic import (
    OBJECTS_FORMAT,
    SCENE_FORMAT,
    check_turning,
    draw_scene,
    face_at,
    generate_synthetic,
    ground_truth_tracks,
    image_ids,
    instance_at,
    load_scene,
    render_image,
    render_scene,
    render_video,
    voc_palette,
)
from mosic.data.textures import CLASSES, SHAPES, class_names, texture, texture_families
from mosic.geometry import grid_queries

TINY = SyntheticConfig(
    seed=3,
    num_videos=3,
    num_frames=12,
    height=64,
    width=64,
    num_classes=6,
    min_objects=2,
    max_objects=4,
    max_speed=3.0,
    camera_speed=1.0,
    scale_change=2.0,
    appearance_drift=0.5,
    faces=1,
    turn_frames=1,
    turn_travel=0.0,
    texture_seed=0,
    noise=2.0,
    track_grid=8,
    write_mp4=True,
    images_train=6,
    images_val=4,
)

# The demo setting of config.yaml (128 x 128, 36 frames), for the statistics of motion and drift.
DEMO = dataclasses.replace(
    TINY, seed=0, num_videos=4, num_frames=36, height=128, width=128, track_grid=16, write_mp4=False
)
PROVENANCE = {"stage": "test", "config": {"seed": 3}}

# Turning objects: the faces settings of config.yaml (2 faces, 12-frame turns travelling 32 px).
TURNING = dataclasses.replace(DEMO, faces=2, turn_frames=12, turn_travel=32.0, texture_seed=0)
# A small turning dataset to write to disk.
TINY_TURNING = dataclasses.replace(
    TINY, num_frames=16, faces=2, turn_frames=6, turn_travel=12.0, write_mp4=False, images_train=4, images_val=3
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(TINY, root, provenance=PROVENANCE)
    return root


@pytest.fixture(scope="module")
def demo_videos():
    return [render_video(DEMO, i) for i in range(DEMO.num_videos)]


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _image(path: Path) -> Image.Image:
    """A fully loaded image whose file is already closed."""
    with Image.open(path) as im:
        im.load()
    return im


def _inside(tracks: np.ndarray, h: int, w: int) -> np.ndarray:
    x, y = tracks[..., 0], tracks[..., 1]
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def _at(arr: np.ndarray, tracks: np.ndarray) -> np.ndarray:
    """arr [T, H, W, ...] sampled at the rounded (x, y) of tracks [T, N, 2] (clipped to the frame)."""
    t_len, h, w = arr.shape[:3]
    xi = np.clip(np.rint(tracks[..., 0]).astype(int), 0, w - 1)
    yi = np.clip(np.rint(tracks[..., 1]).astype(int), 0, h - 1)
    return arr[np.arange(t_len)[:, None], yi, xi]


def _hue(rgb: np.ndarray) -> float:
    """Hue angle (radians) of an RGB colour in the chroma plane; invariant to gain and grey offsets."""
    r, g, b = rgb
    return math.atan2(math.sqrt(3.0) / 2.0 * (g - b), r - (g + b) / 2.0)


# --- layout and files ----------------------------------------------------------------------------------


def test_ytvos_layout(generated: Path) -> None:
    ytvos = generated / "ytvos"
    vids = [f"synth_{i:05d}" for i in range(TINY.num_videos)]
    assert sorted(p.name for p in (ytvos / "JPEGImages").iterdir()) == vids
    for vid in vids:
        frames = sorted(p.name for p in (ytvos / "JPEGImages" / vid).iterdir())
        assert frames == [f"{t:05d}.jpg" for t in range(TINY.num_frames)]
        annots = sorted(p.name for p in (ytvos / "Annotations" / vid).iterdir())
        assert annots == [f"{t:05d}.png" for t in range(TINY.num_frames)]
        im = _image(ytvos / "JPEGImages" / vid / "00000.jpg")
        assert im.mode == "RGB" and im.size == (TINY.width, TINY.height)
        png = _image(ytvos / "Annotations" / vid / "00000.png")
        assert png.mode == "P" and png.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
        with np.load(ytvos / "Tracks" / f"{vid}.npz") as z:
            n, t_len = TINY.track_grid**2, TINY.num_frames
            assert z["queries"].shape == (n, 2) and z["queries"].dtype == np.float32
            assert z["tracks"].shape == (t_len, n, 2) and z["tracks"].dtype == np.float32
            assert z["visibility"].shape == (t_len, n) and z["visibility"].dtype == bool
            assert z["instance"].shape == (n,) and z["instance"].dtype == np.int16
            np.testing.assert_array_equal(z["tracks"][0], z["queries"])  # a point starts at its query
        assert (generated / "videos" / f"{vid}.mp4").is_file()
    assert json.loads((ytvos / "provenance.json").read_text()) == PROVENANCE
    assert json.loads((generated / "voc" / "provenance.json").read_text()) == PROVENANCE


def test_meta_json_agrees_with_masks(generated: Path) -> None:
    ytvos = generated / "ytvos"
    meta = json.loads((ytvos / "meta.json").read_text())
    assert sorted(meta["videos"]) == [f"synth_{i:05d}" for i in range(TINY.num_videos)]
    for i, (vid, entry) in enumerate(sorted(meta["videos"].items())):
        video = render_video(TINY, i)
        masks = np.stack([np.array(_image(ytvos / "Annotations" / vid / f"{t:05d}.png")) for t in range(12)])
        np.testing.assert_array_equal(masks, video.masks)  # PNGs are lossless
        ids = set(np.unique(masks).tolist()) - {0}
        assert {int(k) for k in entry["objects"]} == ids
        for key, obj in entry["objects"].items():
            assert obj["category"] == video.categories[int(key)]
            present = [f"{t:05d}" for t in range(TINY.num_frames) if (masks[t] == int(key)).any()]
            assert obj["frames"] == present


def test_generation_is_deterministic(generated: Path, tmp_path: Path) -> None:
    generate_synthetic(TINY, tmp_path, provenance=PROVENANCE)
    first, second = _all_files(generated), _all_files(tmp_path)
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert not different


def test_video_does_not_depend_on_num_videos() -> None:
    a = render_video(dataclasses.replace(TINY, num_videos=1, images_train=1), 0)
    b = render_video(TINY, 0)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.scene == b.scene
    c = render_video(TINY, 1)
    assert not np.array_equal(a.frames, c.frames)
    d = render_video(dataclasses.replace(TINY, seed=4), 0)
    assert not np.array_equal(a.frames, d.frames)


def test_mp4_decodes_with_all_frames(generated: Path) -> None:
    with av.open(str(generated / "videos" / "synth_00000.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == TINY.num_frames
    assert frames[0].shape == (TINY.height, TINY.width, 3)
    video = render_video(TINY, 0)
    err = np.abs(np.stack(frames).astype(float) - video.frames).mean()
    assert err < 12.0, err  # lossy (crf 18 + chroma subsampling), but the same video


def test_mp4_odd_frame_size(tmp_path: Path) -> None:
    cfg = dataclasses.replace(TINY, num_videos=1, num_frames=5, height=33, width=47, images_train=1, images_val=1)
    generate_synthetic(cfg, tmp_path)
    with av.open(str(tmp_path / "videos" / "synth_00000.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5
    assert frames[0].shape == (34, 48, 3)  # padded by one replicated row and column
    assert not (tmp_path / "ytvos" / "provenance.json").exists()


# --- ground truth ---------------------------------------------------------------------------------------


def test_visible_tracks_land_on_their_instance(generated: Path) -> None:
    agree, total = 0, 0
    for i in range(TINY.num_videos):
        vid = f"synth_{i:05d}"
        masks = np.stack(
            [np.array(_image(generated / "ytvos" / "Annotations" / vid / f"{t:05d}.png")) for t in range(12)]
        )
        with np.load(generated / "ytvos" / "Tracks" / f"{vid}.npz") as z:
            tracks, vis, inst = z["tracks"], z["visibility"], z["instance"]
        assert (inst > 0).any() and (inst == 0).any()
        under = _at(masks, tracks)  # [T, N]
        agree += int((under == inst[None])[vis].sum())
        total += int(vis.sum())
    assert agree / total >= 0.97, agree / total


def test_masks_are_the_analytic_instance_at_pixel_centres() -> None:
    video = render_video(TINY, 2)
    ys, xs = np.mgrid[0 : TINY.height, 0 : TINY.width]
    centres = np.stack([xs, ys], axis=-1).astype(np.float64)  # [H, W, 2] (x, y)
    for t in (0, TINY.num_frames // 2, TINY.num_frames - 1):
        np.testing.assert_array_equal(instance_at(video.scene, centres, t), video.masks[t])


def test_tracks_from_scene_json_are_exact(generated: Path) -> None:
    for i in range(TINY.num_videos):
        vid = f"synth_{i:05d}"
        scene = load_scene(generated / "ytvos" / "Scenes" / f"{vid}.json")
        video = render_video(TINY, i)
        assert scene == video.scene
        frames, masks = render_scene(scene)
        np.testing.assert_array_equal(frames, video.frames)
        np.testing.assert_array_equal(masks, video.masks)
        with np.load(generated / "ytvos" / "Tracks" / f"{vid}.npz") as z:
            tracks, vis = ground_truth_tracks(scene, z["queries"])
            np.testing.assert_array_equal(tracks, z["tracks"])
            np.testing.assert_array_equal(vis, z["visibility"])
            np.testing.assert_array_equal(instance_at(scene, z["queries"], 0), z["instance"])


def test_load_scene_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"format": "something/else"}))
    with pytest.raises(ValueError, match=SCENE_FORMAT):
        load_scene(path)


def test_tracks_from_a_later_query_frame_agree() -> None:
    video = render_video(TINY, 0)
    queries = grid_queries(TINY.height, TINY.width, TINY.track_grid)
    tracks, vis = ground_truth_tracks(video.scene, queries, 0)
    t0 = 5
    keep = vis[t0]
    again, vis_again = ground_truth_tracks(video.scene, tracks[t0, keep], query_frame=t0)
    np.testing.assert_allclose(again, tracks[:, keep], atol=1e-3)
    np.testing.assert_array_equal(vis_again, vis[:, keep])


def test_points_leave_the_frame_and_get_occluded(demo_videos) -> None:
    queries = grid_queries(DEMO.height, DEMO.width, DEMO.track_grid)
    left, occluded = 0, 0
    for video in demo_videos:
        tracks, vis = ground_truth_tracks(video.scene, queries)
        inside = _inside(tracks, DEMO.height, DEMO.width)
        assert not (vis & ~inside).any()
        left += int((~inside).any(axis=0).sum())
        occluded += int((inside & ~vis).any(axis=0).sum())
    n = len(demo_videos) * len(queries)
    assert left / n > 0.05 and occluded / n > 0.05, (left / n, occluded / n)


def _bilinear(frames: np.ndarray, points: np.ndarray) -> np.ndarray:
    """frames [T, H, W, 3] sampled bilinearly at points [T, N, 2] (x, y), clamped to the frame -> [T, N, 3]."""
    t_len, h, w = frames.shape[:3]
    x = np.clip(points[..., 0], 0, w - 1)
    y = np.clip(points[..., 1], 0, h - 1)
    x0 = np.minimum(np.floor(x).astype(int), w - 2)
    y0 = np.minimum(np.floor(y).astype(int), h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    t = np.arange(t_len)[:, None]
    f = frames.astype(np.float64)
    top = f[t, y0, x0] * (1 - fx) + f[t, y0, x0 + 1] * fx
    bottom = f[t, y0 + 1, x0] * (1 - fx) + f[t, y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def test_colour_along_tracks_varies_less_than_static_points(demo_videos) -> None:
    # Object points, 3 frames apart (the demo's clip step): following the track must beat staying put, even
    # though appearance drifts along the track.
    queries = grid_queries(DEMO.height, DEMO.width, DEMO.track_grid)
    tracked, static = [], []
    for video in demo_videos:
        tracks, vis = ground_truth_tracks(video.scene, queries)
        obj = instance_at(video.scene, queries, 0) > 0
        on_track = _bilinear(video.frames, tracks)
        still = _bilinear(video.frames, np.broadcast_to(queries, tracks.shape))
        pair = vis[3:] & vis[:-3] & obj[None]
        tracked.append(np.abs(on_track[3:] - on_track[:-3]).mean(-1)[pair])
        static.append(np.abs(still[3:] - still[:-3]).mean(-1)[:, obj].ravel())
    tracked_err, static_err = np.concatenate(tracked).mean(), np.concatenate(static).mean()
    assert tracked_err < 0.6 * static_err, (tracked_err, static_err)


def test_motion_spans_several_patches(demo_videos) -> None:
    # A 12-frame clip at step 3 (the demo's clips): mean displacement of visible object points from frame 0.
    queries = grid_queries(DEMO.height, DEMO.width, DEMO.track_grid)
    clip = np.arange(0, 34, 3)
    disp = []
    for video in demo_videos:
        tracks, vis = ground_truth_tracks(video.scene, queries)
        obj = instance_at(video.scene, queries, 0) > 0
        d = np.linalg.norm(tracks[clip] - tracks[0], axis=-1)
        disp.append(d[vis[clip] & obj[None]])
    mean = np.concatenate(disp).mean()
    assert mean > 2.5 * 8, mean


def test_objects_scale_by_up_to_scale_change(demo_videos) -> None:
    ratios = [math.exp(abs(o.log_scale_rate) * (DEMO.num_frames - 1)) for v in demo_videos for o in v.scene.objects]
    assert max(ratios) <= DEMO.scale_change + 1e-9
    assert min(ratios) >= DEMO.scale_change**0.6 - 1e-9
    # And on the pixels: the mask area of an object grows or shrinks accordingly while it is fully in view.
    video = demo_videos[0]
    obj = video.scene.objects[-1]  # the top object is never occluded
    areas = (video.masks == obj.instance).sum(axis=(1, 2)).astype(float)
    expected = np.exp(2 * (obj.log_scale + obj.log_scale_rate * np.arange(DEMO.num_frames)))
    full = areas > 0
    ratio = areas[full] / expected[full]
    assert ratio.max() / ratio[0] < 1.15  # never larger than the scale predicts (up to edge pixels)


def _object_hue_change(videos) -> float:
    changes = []
    for video in videos:
        for obj in video.scene.objects:
            m = video.masks == obj.instance
            # Interior pixels only: anti-aliased edges blend in the background.
            core = m.copy()
            core[:, 1:-1, 1:-1] &= m[:, :-2, 1:-1] & m[:, 2:, 1:-1] & m[:, 1:-1, :-2] & m[:, 1:-1, 2:]
            frames = [t for t in range(video.masks.shape[0]) if core[t].sum() >= 40]
            if len(frames) < 2:
                continue
            first, last = frames[0], frames[-1]
            h0 = _hue(video.frames[first][core[first]].mean(0))
            h1 = _hue(video.frames[last][core[last]].mean(0))
            changes.append(abs((h1 - h0 + math.pi) % (2 * math.pi) - math.pi))
    return float(np.mean(changes))


def test_object_appearance_drifts(demo_videos) -> None:
    drift = _object_hue_change(demo_videos)
    still = _object_hue_change([render_video(dataclasses.replace(DEMO, appearance_drift=0.0), i) for i in range(4)])
    assert drift > math.radians(25), math.degrees(drift)
    assert drift > 2 * still, (math.degrees(drift), math.degrees(still))


# --- classes and the VOC image set -----------------------------------------------------------------------


def test_classes_differ_by_texture_and_shape_not_colour() -> None:
    assert len({texture for _, texture, _ in CLASSES}) == len(CLASSES) == 6
    assert len({shape for _, _, shape in CLASSES}) == 6
    assert class_names(5) == ["background"] + [c[0] for c in CLASSES[:5]]
    cfg5 = dataclasses.replace(DEMO, num_classes=5, min_objects=4, max_objects=4)
    scenes = [draw_scene(cfg5, np.random.default_rng([0, 0, i]), "x") for i in range(20)]
    objects = [o for s in scenes for o in s.objects]
    assert {o.class_id for o in objects} == {1, 2, 3, 4, 5}
    colours = {o.faces[0].colours for o in objects}
    assert len(colours) == len(objects)  # random per instance
    for o in objects:
        assert np.linalg.norm(np.subtract(*o.faces[0].colours)) >= 100.0


def test_voc_layout_and_ignore_band(generated: Path) -> None:
    voc = generated / "voc"
    train = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    val = (voc / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert len(train) == TINY.images_train and len(val) == TINY.images_val and not set(train) & set(val)
    assert json.loads((voc / "classes.json").read_text()) == class_names(TINY.num_classes)
    band_total, thin = 0, 0
    seen = set()
    video_first = {render_video(TINY, i).frames[0].tobytes() for i in range(TINY.num_videos)}
    for image_id in train + val:
        img = np.array(_image(voc / "JPEGImages" / f"{image_id}.jpg"))
        assert img.shape == (TINY.height, TINY.width, 3)
        assert img.tobytes() not in video_first
        png = _image(voc / "SegmentationClass" / f"{image_id}.png")
        assert png.mode == "P" and png.getpalette()[255 * 3 : 256 * 3] == [224, 224, 192]
        labels = np.array(png)
        seen |= set(np.unique(labels).tolist())
        assert set(np.unique(labels).tolist()) <= set(range(TINY.num_classes + 1)) | {255}
        band = labels == 255
        # Every class boundary is covered: two 4-adjacent labelled pixels never differ in class.
        for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
            assert not ((a != b) & (a != 255) & (b != 255)).any()
        # ...and the band is thin: its pixels touch a labelled pixel.
        lab = np.pad(~band, 1)
        touches = lab[:-2, 1:-1] | lab[2:, 1:-1] | lab[1:-1, :-2] | lab[1:-1, 2:]
        band_total += int(band.sum())
        thin += int((band & touches).sum())
    assert 255 in seen and len(seen - {0, 255}) >= 3
    assert thin / band_total > 0.95


def test_voc_palette_is_the_standard_one() -> None:
    pal = voc_palette()
    assert len(pal) == 768
    assert pal[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]


# --- turning objects (faces > 1) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def turning_videos():
    return [render_video(TURNING, i) for i in range(3)]


@pytest.fixture(scope="module")
def turning_generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("turning")
    generate_synthetic(TINY_TURNING, root)
    return root


def _face_patch(obj, face: int, size: int = 64) -> np.ndarray:
    """float RGB [size, size, 3]: the object's face on a flat square (no shape, drift, lighting or noise)."""
    f = obj.faces[face]
    y, x = np.mgrid[0:size, 0:size]
    qx, qy = (x - (size - 1) / 2) / (size / 2), (y - (size - 1) / 2) / (size / 2)
    mix = texture(
        f.pattern,
        qx,
        qy,
        cycles_per_radius=obj.texture_cycles / f.period,
        angle=obj.texture_angle,
        offset=obj.texture_offset,
        params=f.params,
    )[..., None]
    c0, c1 = np.asarray(f.colours)
    return c0 * (1 - mix) + c1 * mix


def _statistics(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hue-free colour statistics (saturation x value histogram) and the radial power spectrum of the pattern."""
    rgb = rgb / 255.0
    top, bottom = rgb.max(-1), rgb.min(-1)
    saturation = np.where(top > 0, (top - bottom) / np.maximum(top, 1e-9), 0.0)
    hist = np.histogram2d(saturation.ravel(), top.ravel(), bins=4, range=[[0, 1], [0, 1]])[0].ravel()
    grey = rgb.mean(-1) - rgb.mean()
    power = np.abs(np.fft.fft2(grey)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(grey.shape[0]), np.fft.fftfreq(grey.shape[1]), indexing="ij")
    spectrum = np.histogram(np.hypot(fx, fy).ravel(), bins=8, range=(0, 0.5), weights=power.ravel())[0]
    return hist / hist.sum(), spectrum / (spectrum.sum() + 1e-12)


def _distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    return float(np.abs(a[0] - b[0]).sum() + np.abs(a[1] - b[1]).sum())


def test_faces_of_a_class_differ_more_than_instances_of_a_face() -> None:
    objects = [o for i in range(30) for o in draw_scene(TURNING, np.random.default_rng([0, 0, i]), "x").objects]
    for class_id in range(1, TURNING.num_classes + 1):
        same_class = [o for o in objects if o.class_id == class_id][:4]
        assert len(same_class) >= 3
        stats = [[_statistics(_face_patch(o, f)) for f in range(2)] for o in same_class]
        pairs = [(a, b) for a in range(len(stats)) for b in range(len(stats)) if a < b]
        same = [_distance(stats[a][f], stats[b][f]) for a, b in pairs for f in range(2)]
        other = [_distance(stats[a][0], stats[b][1]) for a in range(len(stats)) for b in range(len(stats))]
        assert min(other) > np.mean(same) and np.mean(other) > 2 * np.mean(same), (class_id, same, other)
    families = texture_families(0, TURNING.num_classes, 2)
    for faces in families:  # different pattern kinds, period bands and tones within a class
        assert faces[0].pattern != faces[1].pattern and faces[0].tone != faces[1].tone
        assert abs(faces[0].period - faces[1].period) > 0 and int(faces[0].period * 4) != int(faces[1].period * 4)


def test_no_two_faces_share_a_pattern_kind_while_there_are_kinds_enough() -> None:
    from collections import Counter

    from mosic.data.textures import PATTERNS, TONES

    for seed in range(5):
        for num_classes, faces in ((6, 2), (5, 2), (6, 1)):
            families = texture_families(seed, num_classes, faces)
            kinds = [f.pattern for fams in families for f in fams]
            assert len(set(kinds)) == len(kinds), (seed, num_classes, faces, kinds)  # a second face is no one's first
            tones = Counter(f.tone for fams in families for f in fams)
            assert max(tones.values()) - min(tones.values()) <= 1 or len(tones) < len(TONES)
        # More faces than kinds: shared about evenly (greedily), never within a class.
        families = texture_families(seed, 6, 4)
        for fams in families:
            assert len({f.pattern for f in fams}) == 4 and len({f.tone for f in fams}) == 4
        usage = Counter(f.pattern for fams in families for f in fams)
        assert set(usage) == set(PATTERNS) and max(usage.values()) - min(usage.values()) <= 2


def test_shape_and_colour_do_not_give_the_class_away() -> None:
    objects = [o for i in range(40) for o in draw_scene(TURNING, np.random.default_rng([0, 0, i]), "x").objects]
    for class_id in range(1, TURNING.num_classes + 1):
        assert len({o.shape for o in objects if o.class_id == class_id}) >= 3
    for shape in SHAPES:
        assert len({o.class_id for o in objects if o.shape == shape}) >= 3
    # Hue is random per instance: the first colours of one face cover the hue circle.
    hues = [_hue(np.asarray(o.faces[0].colours[1])) for o in objects if o.class_id == 1]
    assert np.ptp(hues) > math.pi
    assert class_names(6, faces=2) == ["background"] + [f"class_{c}" for c in range(1, 7)]


def test_one_shape_for_every_turning_object_changes_only_the_outline() -> None:
    """synthetic.shape: every turning object gets the named outline; the rest of each scene is the random one's."""
    assert set(typing.get_args(typing.get_type_hints(SyntheticConfig)["shape"])) == {"random", *SHAPES}
    disk = dataclasses.replace(TURNING, shape="disk")
    for i in range(6):
        a = draw_scene(TURNING, np.random.default_rng([0, 0, i]), "x")
        b = draw_scene(disk, np.random.default_rng([0, 0, i]), "x")
        assert {o.shape for o in b.objects} == {"disk"}
        assert [dataclasses.replace(o, shape="disk") for o in a.objects] == list(b.objects)
    video = render_video(dataclasses.replace(TINY_TURNING, shape="square"), 0)
    assert {o.shape for o in video.scene.objects} == {"square"}
    assert len({o.shape for i in range(4) for o in render_video(TINY_TURNING, i).scene.objects}) > 1


def test_every_object_turns_once_mid_video_and_fast(turning_videos) -> None:
    last = TURNING.num_frames - 1
    for video in turning_videos:
        for obj in video.scene.objects:
            assert len(obj.shown) == 2 and obj.shown[0] != obj.shown[1] and len(obj.faces) == TURNING.faces
            assert obj.turn_frames == TURNING.turn_frames
            assert 0 <= obj.turn_start and obj.turn_start + obj.turn_frames <= last
            middle = obj.turn_start + obj.turn_frames / 2
            assert 0.3 * last - 1e-9 <= middle <= 0.7 * last + 1e-9
            # The object travels at least turn_travel pixels during the turn, and never faster than max_speed.
            speed = math.hypot(*obj.velocity)
            assert TURNING.turn_travel - 1e-9 <= speed * obj.turn_frames and speed <= TURNING.max_speed + 1e-9


def test_turn_changes_appearance_on_the_track_while_the_track_stays_on_the_object(turning_videos) -> None:
    turned, still = [], []
    for video in turning_videos:
        scene = video.scene
        # The same video with no object turning: only the turn differs.
        frozen = dataclasses.replace(
            scene, objects=tuple(dataclasses.replace(o, shown=o.shown[:1]) for o in scene.objects)
        )
        frozen_frames, frozen_masks = render_scene(frozen)
        np.testing.assert_array_equal(frozen_masks, video.masks)  # a turn changes no geometry
        for obj in scene.objects:
            before = int(math.floor(obj.turn_start))
            after = int(math.ceil(obj.turn_start + obj.turn_frames))
            ys, xs = np.nonzero(_interior(video.masks[before] == obj.instance))
            if len(xs) < 20:
                continue
            queries = np.stack([xs, ys], axis=-1).astype(np.float32)[:: max(1, len(xs) // 200)]
            tracks, vis = ground_truth_tracks(scene, queries, query_frame=before)
            # Visible track points are on the object (the mask under the track is its instance) all along.
            under = _at(video.masks, tracks)
            assert (under == obj.instance)[vis].mean() > 0.97
            assert (instance_at(scene, tracks, np.arange(scene.num_frames)[:, None]) == obj.instance)[vis].all()
            # ...and show the first face before the turn, the second after it.
            assert (face_at(scene, tracks[before], before)[vis[before]] == obj.shown[0]).all()
            both = vis[before] & vis[after]
            if both.sum() < 10:
                continue
            assert (face_at(scene, tracks[after], after)[vis[after]] == obj.shown[1]).all()
            # Interior points only: anti-aliased edges mix in what lies behind.
            core = both & (_at(video.masks, tracks + 1)[[before, after]] == obj.instance).all(0)
            core &= (_at(video.masks, tracks - 1)[[before, after]] == obj.instance).all(0)
            change = np.abs(_at(video.frames, tracks)[after].astype(float) - _at(video.frames, tracks)[before])
            frozen_change = np.abs(_at(frozen_frames, tracks)[after].astype(float) - _at(frozen_frames, tracks)[before])
            turned.append(change[core].mean(-1))
            still.append(frozen_change[core].mean(-1))
    turned_err, still_err = np.concatenate(turned).mean(), np.concatenate(still).mean()
    assert turned_err > 1.5 * still_err and turned_err > 40, (turned_err, still_err)


def test_a_still_point_leaves_the_object_during_the_turn(turning_videos) -> None:
    # Points on an object just before its turn: after the turn, the object has moved on (>= 32 px), so most
    # points that stay where they were are off the object.
    left, total = 0, 0
    for video in turning_videos:
        for obj in video.scene.objects:
            before = int(math.floor(obj.turn_start))
            after = int(math.ceil(obj.turn_start + obj.turn_frames))
            ys, xs = np.nonzero(video.masks[before] == obj.instance)
            left += int((video.masks[after][ys, xs] != obj.instance).sum())
            total += len(xs)
    assert left / total > 0.5, left / total


def test_turning_data_is_deterministic_and_texture_seed_changes_only_textures(turning_generated, tmp_path) -> None:
    generate_synthetic(TINY_TURNING, tmp_path)
    first, second = _all_files(turning_generated), _all_files(tmp_path)
    assert first.keys() == second.keys()
    assert not [name for name in first if first[name] != second[name]]
    a = render_video(TINY_TURNING, 1)
    b = render_video(dataclasses.replace(TINY_TURNING, texture_seed=1), 1)
    np.testing.assert_array_equal(a.masks, b.masks)  # same scenes...
    assert not np.array_equal(a.frames, b.frames)  # ...in other textures
    fa, fb = texture_families(0, 6, 2), texture_families(1, 6, 2)
    assert all(x != y for x, y in zip(sum(fa, ()), sum(fb, ()), strict=True))
    assert texture_families(0, 6, 3)[2][:2] == fa[2]  # adding faces keeps the first ones
    c = render_video(dataclasses.replace(TINY_TURNING, seed=4), 1)
    assert not np.array_equal(a.masks, c.masks)


def test_turning_scene_json_round_trips(turning_generated: Path) -> None:
    for i in range(TINY_TURNING.num_videos):
        vid = f"synth_{i:05d}"
        scene = load_scene(turning_generated / "ytvos" / "Scenes" / f"{vid}.json")
        video = render_video(TINY_TURNING, i)
        assert scene == video.scene
        frames, masks = render_scene(scene)
        np.testing.assert_array_equal(frames, video.frames)
        meta = json.loads((turning_generated / "ytvos" / "meta.json").read_text())["videos"][vid]
        assert {o["category"] for o in meta["objects"].values()} <= set(class_names(6, faces=2))


def test_turning_config_is_checked() -> None:
    check_turning(TURNING)
    with pytest.raises(ValueError, match="turn_travel"):
        check_turning(dataclasses.replace(TURNING, turn_travel=40.0))
    with pytest.raises(ValueError, match="turn_frames"):
        draw_scene(dataclasses.replace(TURNING, turn_frames=36), np.random.default_rng(0), "x")


def test_image_set_records_the_face_of_every_object(turning_generated: Path) -> None:
    from mosic.evaluate.datasets import image_dataset  # the evaluation's reader of this layout

    voc = turning_generated / "voc"
    record = json.loads((voc / "objects.json").read_text())
    assert record["format"] == OBJECTS_FORMAT and record["faces"] == 2
    splits = voc / "ImageSets" / "Segmentation"
    n_train, n_val = TINY_TURNING.images_train, TINY_TURNING.images_val
    for split, indices in (("train", range(n_train)), ("val", range(n_train, n_train + n_val))):
        assert splits.joinpath(f"{split}.txt").read_text().split() == [image_ids(j, 2)[0] for j in indices]
        for f in range(2):
            ids = splits.joinpath(f"{split}_face{f}.txt").read_text().split()
            assert ids == [image_ids(j, 2)[1 + f] for j in indices]
            for image_id in ids:
                assert record["images"][image_id]["face"] == f
                assert all(o["face"] == f for o in record["images"][image_id]["objects"])
    assert len(image_dataset("synthetic", turning_generated, "val_face1")) == n_val
    faces_seen = set()
    for j in range(n_train + n_val):
        base, *variants = image_ids(j, 2)
        entry = record["images"][base]
        assert entry["face"] is None and entry["source"] == base
        image = render_image(TINY_TURNING, j)
        assert [o["face"] for o in entry["objects"]] == [o.shown[0] for o in image.scene.objects]
        labels = np.array(_image(voc / "SegmentationClass" / f"{base}.png"))
        instances = np.array(_image(voc / "SegmentationObject" / f"{base}.png"))
        np.testing.assert_array_equal(labels, image.labels)
        np.testing.assert_array_equal(instances, image.instances)
        lut = np.full(256, 255, dtype=np.uint8)
        lut[0] = 0
        for o in entry["objects"]:
            lut[o["instance"]] = o["class_id"]
            assert o["pixels"] == int(_unbanded(image, o["instance"]).sum())  # where it is on top, band included
            faces_seen.add(o["face"])
        np.testing.assert_array_equal(lut[instances], labels)  # instance -> class through the record
        for f, variant in enumerate(variants):
            face_image = render_image(TINY_TURNING, j, face=f)
            assert face_image.image_id == variant and record["images"][variant]["source"] == base
            np.testing.assert_array_equal(np.array(_image(voc / "SegmentationClass" / f"{variant}.png")), labels)
            # An object showing face f in the mixed image looks the same in the face-f image (interior pixels).
            for o in entry["objects"]:
                inside = _interior(image.instances == o["instance"])
                same = np.array_equal(image.image[inside], face_image.image[inside])
                assert same == (o["face"] == f) or not inside.any()
    assert faces_seen == {0, 1}
    with pytest.raises(ValueError, match="face"):
        render_image(TINY_TURNING, 0, face=2)


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` whose 8 neighbours are in it too (anti-aliased edges blend in what lies behind)."""
    core = mask.copy()
    padded = np.pad(mask, 1)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            core &= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]]
    return core


def _unbanded(image, instance: int) -> np.ndarray:
    """Where `instance` is on top in the image's scene (before the boundary band was marked)."""
    ys, xs = np.mgrid[0 : image.instances.shape[0], 0 : image.instances.shape[1]]
    points = np.stack([xs, ys], axis=-1).astype(np.float64)
    return instance_at(image.scene, points, image.frame) == instance
