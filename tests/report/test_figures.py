"""Report figures and clip animations on tiny inputs: files are valid, shapes and counts are right, maps stable."""

import json

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image

from mosic.model.export import export_backbone
from mosic.report.clips import (
    animate_clip,
    cluster_clip,
    draw_tracks,
    gallery_html,
    match_clusters,
    pick_clips,
    point_colours,
    render_clip_animations,
    select_points,
    upsample_labels,
)
from mosic.report.figures import (
    plot_tracking_metrics,
    plot_training_curves,
    read_metrics,
    split_run,
    tables_html,
)
from mosic.store import ClipRecord, ShardWriter

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = "step,epoch,loss,loss_main,loss_sym,lr_backbone,lr_head,grad_norm,cluster_entropy,visible_fraction,"
COLUMNS += "nan_skipped,step_time_s"


def fake_metrics(path, steps, seed):
    rng = np.random.default_rng(seed)
    step = np.arange(1, steps + 1)
    df = pd.DataFrame({c: 0.0 for c in COLUMNS.split(",")}, index=range(steps))
    df["step"] = step
    df["loss"] = 3.4 * np.exp(-step / 50) + 0.1 * rng.random(steps)
    df["loss_sym"] = np.nan  # written as an empty field, as the training loop does without the symmetric term
    df["cluster_entropy"] = 0.9 - 0.2 * step / steps
    df.to_csv(path, index=False)
    return path


def assert_png(path, min_size=(200, 150)):
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] >= min_size[0] and im.size[1] >= min_size[1]


def test_split_run():
    assert split_run("mosic_s1") == ("mosic", 1)
    assert split_run("shuffled_s12") == ("shuffled", 12)
    assert split_run("main") == ("main", None)


def test_training_curves(tmp_path):
    paths = {
        "mosic_s0": fake_metrics(tmp_path / "a.csv", 5, 0),
        "static_s0": fake_metrics(tmp_path / "b.csv", 5, 1),
        "mosic_s1": fake_metrics(tmp_path / "c.csv", 300, 2),  # long: smoothed
    }
    loss, entropy = tmp_path / "loss.png", tmp_path / "entropy.png"
    df = plot_training_curves(paths, loss, entropy, num_prototypes=32)
    assert_png(loss)
    assert_png(entropy)
    assert len(df) == 310
    assert set(zip(df["run"], df["variant"], df["seed"], strict=True)) == {
        ("mosic_s0", "mosic", 0),
        ("static_s0", "static", 0),
        ("mosic_s1", "mosic", 1),
    }
    # Two different figures (the loss and the entropy), not one drawn twice.
    assert np.asarray(Image.open(loss)).tobytes() != np.asarray(Image.open(entropy)).tobytes()


def test_read_metrics_keeps_rows_in_run_order(tmp_path):
    df = read_metrics({"mosic_s0": fake_metrics(tmp_path / "a.csv", 3, 0)})
    assert list(df["step"]) == [1, 2, 3] and df["loss_sym"].isna().all()


TRACKING = {
    "clips": 6,
    "frames_per_clip": 4,
    "points_per_clip": 64,
    "tracker": {"name": "lk", "settings": {}},
    "cached": {
        **{f"delta_{t}": 0.1 * i for i, t in enumerate((1, 2, 4, 8, 16), 1)},
        **{f"jaccard_{t}": 0.05 * i for i, t in enumerate((1, 2, 4, 8, 16), 1)},
        "delta_avg": 0.3,
        "occlusion_accuracy": 0.7,
        "average_jaccard": 0.15,
    },
    "static": {"delta_avg": 0.2, "occlusion_accuracy": 0.9, "average_jaccard": 0.1},
    "ground_truth": {"delta_avg": 1.0, "occlusion_accuracy": 1.0, "average_jaccard": 1.0},
    "visible_fraction": {"cached": 0.7, "ground_truth": 0.9},
    "provenance": {"config": {}},
}


def test_tracking_figure(tmp_path):
    src = tmp_path / "tracking_metrics.json"
    src.write_text(json.dumps(TRACKING))
    out = tmp_path / "tracking.png"
    methods = plot_tracking_metrics(src, out)
    assert list(methods) == ["cached", "static", "ground_truth"]  # visible_fraction is not a track set
    assert_png(out, (600, 250))


def test_tracking_figure_without_metrics_fails(tmp_path):
    src = tmp_path / "tracking_metrics.json"
    src.write_text(json.dumps({"clips": 0}))
    with pytest.raises(ValueError, match="delta_avg"):
        plot_tracking_metrics(src, tmp_path / "x.png")


def test_tables_html(tmp_path):
    pd.DataFrame({"model": ["start_s0", "mosic_s0"], "value": [0.25, 0.3125]}).to_csv(tmp_path / "t.csv", index=False)
    page = tables_html({"Every model": tmp_path / "t.csv"}, title="Eval <x>")
    assert page.startswith("<!DOCTYPE html>") and "Eval &lt;x&gt;" in page
    assert "<table" in page and "mosic_s0" in page and "0.3125" in page and "t.csv" in page


def test_cluster_clip_labels_at_most_k_and_stable_over_identical_frames():
    rng = np.random.default_rng(0)
    frame = rng.normal(size=(5, 5, 16)).astype(np.float32)
    feats = np.stack([frame] * 4)  # four identical frames
    labels = cluster_clip(torch.from_numpy(feats), 6, seed=0)
    assert labels.shape == (4, 5, 5) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 6 and len(np.unique(labels)) <= 6
    assert all(np.array_equal(labels[0], labels[t]) for t in range(4))  # fitted jointly: same colours over time
    assert np.array_equal(labels, cluster_clip(feats, 6, seed=0))  # deterministic
    counts = np.bincount(labels.ravel())
    assert (np.diff(counts) <= 0).all()  # 0 = largest cluster


def test_cluster_clip_separates_distinct_groups():
    feats = np.zeros((2, 4, 4, 8), dtype=np.float32)
    feats[..., :2, :, 0] = 1.0  # top half points one way
    feats[..., 2:, :, 1] = 1.0  # bottom half another
    labels = cluster_clip(feats, 2, seed=0)
    assert len(np.unique(labels[:, :2])) == 1 and len(np.unique(labels[:, 2:])) == 1
    assert labels[0, 0, 0] != labels[0, 3, 0]


def test_cluster_clip_with_fewer_patches_than_k():
    labels = cluster_clip(np.random.default_rng(0).normal(size=(1, 1, 2, 4)), 6)
    assert labels.max() < 2


def test_match_clusters_undoes_a_permutation():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 5, size=(3, 6, 6))
    perm = np.array([3, 0, 4, 1, 2])
    assert np.array_equal(match_clusters(ref, perm[ref], 5), ref)
    with pytest.raises(ValueError, match="shape"):
        match_clusters(ref, ref[:, :3], 5)


def test_upsample_labels_is_nearest_and_patch_aligned():
    labels = np.arange(4).reshape(1, 2, 2)
    up = upsample_labels(labels, (4, 6))
    assert up.shape == (1, 4, 6)
    assert np.array_equal(up[0], [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [2, 2, 2, 3, 3, 3], [2, 2, 2, 3, 3, 3]])


def test_select_points():
    assert np.array_equal(select_points(10, 64), np.arange(10))
    idx = select_points(32 * 32, 64)
    assert len(idx) == 64 and len(set(idx.tolist())) == 64  # an 8 x 8 sub-grid of the 32 x 32 grid
    assert len(select_points(1000, 50)) <= 50


def test_draw_tracks_filled_visible_hollow_occluded():
    frame = np.zeros((16, 16, 3), dtype=np.uint8)
    tracks = np.array([[[4.0, 4.0], [11.0, 11.0]]], dtype=np.float32)  # T = 1, N = 2
    vis = np.array([[True, False]])
    colours = np.array([[255, 0, 0], [0, 255, 0]], dtype=np.uint8)
    img = np.asarray(draw_tracks(frame, tracks, vis, 0, points=np.arange(2), colours=colours, scale=4))
    assert img.shape == (64, 64, 3)
    assert tuple(img[4 * 4 + 1, 4 * 4 + 1]) == (255, 0, 0)  # visible point: filled at its centre
    assert tuple(img[11 * 4 + 1, 11 * 4 + 1]) == (0, 0, 0)  # occluded point: hollow centre
    assert (img[..., 1] == 255).any()  # ... but its outline is drawn


def toy_clip(t=5, h=24, w=32, g=4, seed=0, clip_id=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)
    ys, xs = np.meshgrid(np.linspace(2, h - 3, g), np.linspace(2, w - 3, g), indexing="ij")
    start = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
    tracks = np.stack([start + [i, 0.5 * i] for i in range(t)]).astype(np.float32)
    tracks = np.clip(tracks, 0, [w - 1, h - 1]).astype(np.float32)
    vis = rng.random((t, g * g)) > 0.3
    return ClipRecord(
        video_id=f"vid_{clip_id}",
        clip_id=clip_id,
        frame_indices=np.arange(t, dtype=np.int32),
        frames=frames,
        tracks=tracks,
        visibility=vis,
    )


def test_animate_clip_gif(tmp_path):
    clip = toy_clip()
    maps = {"start": np.zeros((5, 2, 2), dtype=np.int64), "mosic": np.ones((5, 3, 3), dtype=np.int64)}
    out = animate_clip(clip.frames, clip.tracks, clip.visibility, maps, tmp_path / "c.gif", k=6, panel_size=64,
                       duration_ms=200)  # fmt: skip
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 5  # one GIF frame per clip frame
        scale = 2  # ceil(64 / 32)
        assert im.size == (3 * 32 * scale + 2 * 4, 24 * scale + 16)  # three panels, gaps, title strip
        assert im.info["loop"] == 0 and im.info["duration"] == 200
        im.seek(4)
        rgb = np.asarray(im.convert("RGB"))
    # The cluster panels: one flat palette colour per label (here the whole map), shaded by the frame.
    right = rgb[16:, 2 * (64 + 4) :]
    assert right.shape == (48, 64, 3) and (right[..., 0] > right[..., 2]).mean() > 0.9  # label 1 = orange


def exported(tmp_path, name, seed):
    torch.manual_seed(seed)
    model = timm.create_model("test_vit", pretrained=False, num_classes=0, img_size=32)
    return export_backbone(model, tmp_path / f"{name}.safetensors", model_name="test_vit", input_size=32, meta={})


def write_store(path, clips):
    attrs = {"mosic_version": "0", "git_sha": "0" * 40, "config": {}, "config_hash": "0", "created": "2026",
             "python": "3.11", "tracker": {"name": "fake"}}  # fmt: skip
    t, h, w = clips[0].frames.shape[:3]
    with ShardWriter(path, num_frames=t, height=h, width=w, num_points=clips[0].tracks.shape[1], attrs=attrs) as wr:
        for c in clips:
            wr.add(c)
    return path


def test_pick_clips(tmp_path):
    a = write_store(tmp_path / "shard_00000.zarr", [toy_clip(clip_id=i) for i in range(5)])
    b = write_store(tmp_path / "shard_00001.zarr", [toy_clip(clip_id=9)])
    assert pick_clips([a, b], 3) == [(0, 0), (0, 2), (0, 4)]  # spread over the first shard
    one = write_store(tmp_path / "one.zarr", [toy_clip(clip_id=0)])
    assert pick_clips([one, b], 3) == [(0, 0), (1, 0), (0, 0)]  # too few: later shards, then repeats


def test_render_clip_animations(tmp_path):
    shard = write_store(tmp_path / "shard_00000.zarr", [toy_clip(seed=i, clip_id=i) for i in range(4)])
    models = {"start_s0": exported(tmp_path, "start", 0), "mosic_s0": exported(tmp_path, "trained", 1)}
    outs = [tmp_path / "clips" / f"clip_{i}.gif" for i in range(2)]
    records = render_clip_animations([shard], models, outs, k=3, input_size=64, max_points=9)
    assert [r["clip_id"] for r in records] == [0, 3] and all(r["frames"] == 5 for r in records)
    for out in outs:
        with Image.open(out) as im:
            assert im.n_frames == 5 and im.size == (3 * 32 * 6 + 8, 24 * 6 + 16)  # panels upscaled to >= 192 px
    page = gallery_html(records, title="Clips")
    assert records[1]["source_frames"] == [0, 4]
    assert page.count("data:image/gif;base64,") == 2 and "vid_3 frames 0–4" in page
    assert "vid_7 clip 7" in gallery_html([{**records[0], "video_id": "vid_7", "clip_id": 7, "source_frames": None}])


def test_point_colours_distinct():
    c = point_colours(64)
    assert c.shape == (64, 3) and c.dtype == np.uint8 and len({tuple(x) for x in c}) == 64
