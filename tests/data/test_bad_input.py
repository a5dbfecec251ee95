"""The bad-input corpus: every odd or broken input is either read correctly or skipped with a reason naming it.

The corpus (built in conftest.py) holds video files (zero-byte, text named .mp4, truncated with and without
the moov atom, a 3-frame clip, a dangling symlink, an unreadable file) and frame folders (grayscale, CMYK,
PNG, palette, RGBA, LA, 16-bit, 1-bit, mixed sizes, no frames, a truncated / non-image / zero-byte /
dangling / unreadable frame, macOS resource forks). The tests at the end build their own inputs: mp4 edit
lists, solid-colour clips, EXIF / display-matrix rotation, and frames stored twice as .jpg and .png.
"""

import logging
import math
import os
import random

import av
import numpy as np
import pytest
from PIL import Image, ImageOps

from mosic.config import ClipsConfig
from mosic.data.frames import apply_orientation, decode_image, orientation_from_display_matrix
from mosic.data.index import build_index
from mosic.data.readers import VideoReadError, open_video, probe, scan
from mosic.tracking.shard import check_frames

JPEG_TOL = 6  # max abs error on flat areas of a quality-95 JPEG


def _assert_outcome(info, expected: str) -> None:
    if expected == "ok":
        assert info.status == "ok", info
        assert info.reason == ""
    elif expected in ("mixed frame sizes", "truncated:"):
        assert info.status == "ok", info
        assert expected in info.reason
    else:
        assert info.status == "skipped", info
        assert expected in info.reason, info.reason
        assert info.num_frames == 0 and math.isnan(info.fps)


@pytest.fixture(scope="module")
def video_infos(corpus):
    return {i.video_id: i for i in scan(corpus["videos"], "videos", on_error="skip")}


@pytest.fixture(scope="module")
def frame_infos(corpus):
    return {i.video_id: i for i in scan(corpus["frames"], "ytvos", on_error="skip")}


def test_scan_skip_returns_every_video_file(corpus, video_infos):
    expected = corpus["expected_videos"]
    assert sorted(video_infos) == sorted(expected)  # notes.txt and the .png are not videos: ignored
    for vid, outcome in expected.items():
        _assert_outcome(video_infos[vid], outcome)


def test_scan_skip_returns_every_frame_folder(corpus, frame_infos):
    expected = corpus["expected_frames"]
    assert sorted(frame_infos) == sorted(expected)
    for vid, outcome in expected.items():
        _assert_outcome(frame_infos[vid], outcome)


@pytest.mark.parametrize(
    ("vid", "words"),
    [
        ("corrupt", ["00001.jpg", "corrupt image header", "Truncated"]),  # cut in its header
        ("cut_tail", ["00002.jpg", "corrupt JPEG", "truncated"]),  # header fine, no end marker
        ("garbage", ["00001.jpg", "not an image"]),
        ("zeroframe", ["00002.jpg", "zero-byte"]),
        ("dangling", ["00001.jpg", "dangling symlink"]),
        ("empty", ["no frames"]),
    ],
)
def test_skip_reasons_name_file_and_problem(frame_infos, vid, words):
    for w in words:
        assert w in frame_infos[vid].reason


def test_skip_logs_a_warning_per_skipped_video(corpus, caplog):
    with caplog.at_level(logging.WARNING, logger="mosic.data.readers"):
        infos = scan(corpus["videos"], "videos", on_error="skip", threads=1)
    skipped = {i.video_id for i in infos if i.status == "skipped"}
    warned = {r.getMessage().split()[1] for r in caplog.records if r.levelno == logging.WARNING}
    assert skipped and skipped <= warned


@pytest.mark.parametrize(
    ("tree", "layout", "first_bad"), [("videos", "videos", "cut_moov.mp4"), ("frames", "ytvos", "corrupt")]
)
def test_scan_fail_raises_naming_the_first_bad_file(corpus, tree, layout, first_bad):
    with pytest.raises(VideoReadError) as err:
        scan(corpus[tree], layout, on_error="fail")
    assert first_bad in str(err.value)
    if tree == "frames":
        assert "00001.jpg" in str(err.value)  # the frame inside the folder


def test_without_verify_frames_a_corrupt_frame_fails_at_read_time_naming_it(corpus):
    info = probe("corrupt", corpus["frames"] / "JPEGImages" / "corrupt", "jpeg_folder", verify_frames=False)
    assert info.status == "ok" and info.num_frames == 3  # only the first frame was opened
    with open_video(info) as video:
        assert video.read([0, 2]).shape == (2, 48, 64, 3)
        with pytest.raises(VideoReadError, match="00001.jpg"):
            video.read([1])


# --- frames of every pixel mode come out RGB uint8 with the right values --------------------------------
def _check_two_tone(frames, media, tol, transform=lambda c: c):
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
    w = frames.shape[2]
    for k, f in enumerate(frames):
        left = f[:, : w // 2 - 3].reshape(-1, 3).astype(int)
        right = f[:, w // 2 + 3 :].reshape(-1, 3).astype(int)
        assert np.abs(left - transform(np.array(media.left_colour(k)))).max() <= tol, (k, left.mean(0))
        assert np.abs(right - transform(np.array(media.right_colour(k)))).max() <= tol, (k, right.mean(0))


def _luma(c):
    return np.full(3, round(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]))  # PIL's L conversion


@pytest.mark.parametrize("size", [None, (24, 32)])
def test_rgb_gray_cmyk_png_palette_frames(corpus, frame_infos, media, size):
    for vid, tol, transform in [
        ("rgb", JPEG_TOL, lambda c: c),
        ("png", 0, lambda c: c),
        ("palette", 0, lambda c: c),  # 8-colour quantisation of a 6-colour clip is exact
        ("gray", JPEG_TOL, _luma),
        ("cmyk", JPEG_TOL, lambda c: c),
        ("hidden", JPEG_TOL, lambda c: c),
    ]:
        with open_video(frame_infos[vid]) as video:
            frames = video.read([0, 1, 2], size=size)
        assert frames.shape == (3, *(size or (48, 64)), 3), vid
        _check_two_tone(frames, media, tol + (1 if size else 0), transform)


def test_alpha_is_composited_on_black(frame_infos, media):
    with open_video(frame_infos["rgba"]) as video:
        frames = video.read([0, 1, 2])
    for k, f in enumerate(frames):
        assert np.array_equal(f[:, :32].reshape(-1, 3)[0], media.left_colour(k))  # opaque: unchanged
        expected = (np.array(media.right_colour(k)) * 128 + 127) // 255
        assert np.array_equal(f[:, 32:].reshape(-1, 3).max(0), expected)
        assert np.array_equal(f[:, 32:].reshape(-1, 3).min(0), expected)
    with open_video(frame_infos["la"]) as video:  # opaque LA: the gray value in all three channels
        f = video.read([0])[0]
    assert np.array_equal(f[0, 0], _luma(media.left_colour(0)))


def test_sixteen_bit_and_bilevel_frames(frame_infos):
    with open_video(frame_infos["gray16"]) as video:
        frames = video.read([0, 1, 2])
    for k in range(3):
        assert (frames[k] == 60 + 40 * k).all()  # 257 * v scales back to exactly v
    with open_video(frame_infos["bilevel"]) as video:
        f = video.read([1])[0]
    assert (f[:, :32] == 0).all() and (f[:, 32:] == 255).all()


def test_mixed_sizes_are_resized_to_the_first_frame(frame_infos, media):
    info = frame_infos["mixed"]
    assert (info.height, info.width) == (48, 64)
    assert "2 of 3 frames differ from 64x48" in info.reason
    with open_video(info) as video:
        frames = video.read([2, 1, 0])[::-1]
    assert frames.shape == (3, 48, 64, 3)
    _check_two_tone(frames, media, JPEG_TOL + 2)


# --- video files -----------------------------------------------------------------------------------------
def test_truncated_mp4_reads_its_decodable_frames(corpus, video_infos, media):
    info = video_infos["truncated"]
    n = info.num_frames
    assert 0 < n < 60
    assert info.reason == f"truncated: {n} of 60 frames decodable"
    with open_video(info) as video:
        frames = video.read(range(n))
        with pytest.raises(IndexError):
            video.read([n])
    assert [media.frame_index_of(f) for f in frames] == list(range(n))


def test_short_video_is_read_fine(video_infos, media):
    info = video_infos["short"]
    assert (info.num_frames, info.height, info.width, info.fps) == (3, 64, 96, 25.0)
    with open_video(info) as video:
        frames = video.read([2, 0, 2, 1, 2])
    assert [media.frame_index_of(f) for f in frames] == [2, 0, 2, 1, 2]


def test_nested_uppercase_extension_is_found(video_infos):
    info = video_infos["sub/nested"]
    assert info.status == "ok" and info.num_frames == 5 and info.path.endswith("nested.MKV")


def test_open_video_refuses_a_skipped_video(video_infos):
    with pytest.raises(VideoReadError, match="zero-byte"):
        open_video(video_infos["zero"])


def test_probe_never_raises(tmp_path, corpus):
    (tmp_path / "folder.mp4").mkdir()
    cases = [
        ("missing", tmp_path / "missing", "jpeg_folder"),
        ("file_as_folder", corpus["videos"] / "text.mp4", "jpeg_folder"),
        ("folder_as_file", tmp_path / "folder.mp4", "video_file"),
        ("missing_file", tmp_path / "missing.mp4", "video_file"),
    ]
    for vid, path, kind in cases:
        info = probe(vid, path, kind)
        assert info.status == "skipped" and info.reason, info


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through chmod 000; the dangling symlink covers it")
def test_unreadable_files_are_skipped(video_infos, frame_infos):
    assert "Permission denied" in video_infos["noperm"].reason
    assert "Permission denied" in frame_infos["noperm"].reason


def test_decode_image_raises_oserror_naming_nothing_else(corpus):
    with pytest.raises(OSError):
        decode_image(corpus["frames"] / "JPEGImages" / "garbage" / "00001.jpg")


# --- mp4 edit lists: the frames the decoder outputs are the frames ----------------------------------------------
def _encode_with_edit_list(path, frames, hidden: int = 1):
    """H.264 mp4 whose first `hidden` frames have negative pts: the muxer writes an edit list starting at
    pts 0, so the container lists every sample but demuxing flags the first ones as discarded and the
    decoder outputs no frame for them (what phone videos do, e.g. 141 frames listed as 142)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.gop_size = 10
        stream.options = {"crf": "18", "bf": "2"}
        for k, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = k - hidden
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.mark.parametrize("verify_frames", [True, False])
def test_edit_list_video_counts_the_frames_the_decoder_outputs(tmp_path, media, verify_frames):
    path = _encode_with_edit_list(tmp_path / "phone.mp4", media.indexed_frames(30))
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 30  # the container counts the hidden sample
    reference = media.decode_sequentially(path)
    assert len(reference) == 29  # the decoder does not output it
    assert [media.frame_index_of(f) for f in reference] == list(range(1, 30))

    info = probe("phone", path, "video_file", verify_frames=verify_frames)
    assert (info.status, info.reason, info.num_frames) == ("ok", "", 29)  # not "truncated", nothing dropped
    order = list(range(29))
    random.Random(0).shuffle(order)
    with open_video(info) as video:
        frames = video.read(order)
        last = video.read([28])
    assert np.array_equal(frames, reference[order])  # exact random access, seeks included
    assert media.frame_index_of(last[0]) == 29


def test_real_videos_count_the_frames_the_decoder_outputs(real_videos):
    for path in sorted(real_videos.glob("*.mp4")):
        with av.open(str(path)) as container:
            decoded = sum(1 for _ in container.decode(video=0))
        for verify_frames in (True, False):
            info = probe(path.stem, path, "video_file", verify_frames=verify_frames)
            assert (info.status, info.reason, info.num_frames) == ("ok", "", decoded), (path.name, info)


# --- solid-colour clips: nothing to track, skipped like grey ones -----------------------------------------------
SOLID = {"red": (255, 0, 0), "teal": (0, 128, 128), "grey": (128, 128, 128)}


def _solid_sources(root, media):
    """Per colour: a frame folder of 1x1 PNGs (a 1x1 video) and an H.264 mp4 of 16x16 frames."""
    sources = {}
    for name, rgb in SOLID.items():
        pixel = Image.fromarray(np.array([[rgb]], np.uint8))
        sources[f"{name}_1x1"] = media.write_frames(root / f"{name}_1x1", [pixel] * 4, ".png")
        sources[f"{name}_mp4"] = media.encode_video(root / f"{name}.mp4", np.full((4, 16, 16, 3), rgb, np.uint8))
    return sources


def test_solid_colour_clips_are_constant_frames(tmp_path, media):
    for name, path in _solid_sources(tmp_path, media).items():
        with open_video(path) as video:
            frames = video.read(range(4), size=(32, 32))  # scaled up to the cache resolution
            reason = check_frames(frames, np.arange(4), video.frame_sizes(range(4)))
        assert reason.startswith("frame 0 is constant"), (name, reason)
        assert "nothing to track" in reason
        if name.startswith("grey"):
            assert "(every pixel = 12" in reason, reason  # grey keeps its single value (126 after H.264)
        else:
            assert "one solid colour" in reason and "RGB (" in reason, reason
    textured = media.indexed_frames(4, 32, 32)  # one bright block per frame: trackable
    assert check_frames(textured, np.arange(4), [(32, 32)] * 4) == ""


def test_solid_colour_clip_is_skipped_by_the_tracking_job(tmp_path, media):
    from mosic.config import CoTrackerConfig, DatasetConfig, IndexConfig, LKConfig, TrackConfig
    from mosic.data.index import run_index
    from mosic.store import ShardReader
    from mosic.tracking.shard import track_shard

    root = tmp_path / "ytvos"
    rng = np.random.default_rng(0)
    textured = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(4)]
    media.write_frames(root / "JPEGImages" / "good", textured, ".png")
    media.write_frames(root / "JPEGImages" / "red", [Image.new("RGB", (1, 1), (255, 0, 0))] * 4, ".png")
    clips = ClipsConfig(
        mode="regular", num_frames=4, step=1, clips_per_video=1, short_videos="pad", seed=0, num_shards=1
    )
    prov = {"mosic_version": "0", "git_sha": "test", "config": {}, "config_hash": "x", "created": "2026", "python": "3"}
    run_index(
        root=root,
        dataset=DatasetConfig(name="t", kind="ytvos", root=str(root), split="", on_error="skip"),
        index=IndexConfig(verify_frames=True, threads=1),
        clips=clips,
        index_path=tmp_path / "index.parquet",
        clips_path=tmp_path / "clips.parquet",
        provenance=prov,
        shard_paths=[tmp_path / "shard_00000.parquet"],
    )
    track = TrackConfig(
        tracker="lk",
        height=32,
        width=32,
        grid=4,
        on_bad_clip="skip",
        threads=1,
        lk=LKConfig(win_size=15, levels=2, fb_threshold=2.0, max_iter=30, eps=0.01),
        cotracker=CoTrackerConfig(checkpoint="", visibility_threshold=0.9, autocast=False),
    )
    out = tmp_path / "shard_00000.zarr"
    summary = track_shard(
        shard=0,
        clips_path=tmp_path / "shard_00000.parquet",
        num_frames=4,
        track=track,
        out_path=out,
        provenance=prov,
    )
    skipped = {s["video_id"]: s["reason"] for s in ShardReader(out).attrs["skipped"]}
    assert summary == {"clips": 1, "skipped": 1}
    assert "one solid colour (every pixel = RGB (255, 0, 0))" in skipped["red"]


# --- rotation: frames come out as a viewer shows them, and the index records the turn ---------------------------
CLIPS = ClipsConfig(mode="regular", num_frames=2, step=1, clips_per_video=1, short_videos="pad", seed=0, num_shards=1)


def _marked(height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3]: dark, with a bright 8x8 block in the top-left corner."""
    rgb = np.full((height, width, 3), 30, np.uint8)
    rgb[:8, :8] = 220
    return rgb


def _corner(rgb: np.ndarray) -> str:
    """Which corner holds the bright block: 'top-left', 'top-right', 'bottom-left' or 'bottom-right'."""
    h, w = rgb.shape[:2]
    quads = {
        "top-left": rgb[: h // 2, : w // 2],
        "top-right": rgb[: h // 2, w // 2 :],
        "bottom-left": rgb[h // 2 :, : w // 2],
        "bottom-right": rgb[h // 2 :, w // 2 :],
    }
    return max(quads, key=lambda q: quads[q].mean())


def test_jpeg_exif_orientation_is_applied_and_recorded(tmp_path, media):
    folder = tmp_path / "JPEGImages" / "phone"
    folder.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": a phone held upright
    for k in range(3):
        Image.fromarray(_marked(24, 40)).save(folder / f"{k:05d}.jpg", quality=95, exif=exif)

    (info,) = scan(tmp_path, "ytvos")
    assert (info.status, info.reason) == ("ok", "")
    assert (info.height, info.width, info.rotation) == (40, 24, 90)  # the displayed size, and the turn
    index, _ = build_index([info], CLIPS)
    assert index.loc[0, ["height", "width", "rotation"]].tolist() == [40, 24, 90]
    with open_video(info) as video:
        frames = video.read(range(3))
        small = video.read([0], size=(20, 12))  # reduced-scale JPEG decoding, in stored orientation
        assert video.frame_sizes([0, 2]) == [(40, 24)] * 2
    assert frames.shape == (3, 40, 24, 3) and small.shape == (1, 20, 12, 3)
    assert _corner(frames[0]) == _corner(small[0]) == "top-right"  # top-left turned 90 degrees clockwise
    viewer = np.asarray(ImageOps.exif_transpose(Image.open(folder / "00000.jpg")).convert("RGB"))
    assert np.abs(frames[0].astype(int) - viewer).max() <= JPEG_TOL
    assert decode_image(folder / "00000.jpg").shape == (24, 40, 3)  # default: pixels as stored (masks match)


@pytest.mark.parametrize(
    ("ccw", "hflip", "rotation", "corner"),
    [
        (-90, False, 90, "top-right"),  # how phones store portrait video: turned 90 degrees clockwise to show
        (90, False, 270, "bottom-left"),
        (180, False, 180, "bottom-right"),
        (0, True, 0, "top-right"),  # mirrored: noted in the reason
    ],
)
def test_video_display_matrix_is_applied_and_recorded(tmp_path, ccw, hflip, rotation, corner):
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = 32, 48
        stream.pix_fmt = "yuv420p"
        stream.set_display_rotation(ccw, hflip=hflip)  # PyAV: degrees counter-clockwise, as frame.rotation reads
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_marked(32, 48), format="rgb24")))
        container.mux(stream.encode())

    if not hflip:  # libavutil's own reading of the matrix (av_display_rotation_get, counter-clockwise) agrees
        with av.open(str(path)) as container:
            assert -next(container.decode(video=0)).rotation % 360 == rotation
    for verify_frames in (True, False):
        info = probe("phone", path, "video_file", verify_frames=verify_frames)
        assert info.status == "ok" and info.rotation == rotation
        assert (info.height, info.width) == ((48, 32) if rotation in (90, 270) else (32, 48))
        assert ("mirrored" in info.reason) == hflip and (info.reason == "") == (not hflip)
    index, _ = build_index([info], CLIPS)
    assert index.loc[0, "rotation"] == rotation
    with open_video(info) as video:
        frames = video.read([2, 0])
        small = video.read([1], size=(info.height // 2, info.width // 2))
    assert frames.shape == (2, info.height, info.width, 3)
    assert _corner(frames[0]) == _corner(frames[1]) == _corner(small[0]) == corner


def test_display_matrix_orientations():
    one = 1 << 16  # 16.16 fixed point
    w = 1 << 30  # 2.30 fixed point
    matrix = {  # (a, b, c, d) as FFmpeg stores them at indices 0, 1, 3, 4 -> EXIF code
        (one, 0, 0, one): 1,
        (0, one, -one, 0): 6,  # ffprobe "rotation of -90.00 degrees": an upright phone video
        (0, -one, one, 0): 8,
        (-one, 0, 0, -one): 3,
        (-one, 0, 0, one): 2,
        (0, one, one, 0): 5,
    }
    for (a, b, c, d), code in matrix.items():
        assert orientation_from_display_matrix([a, b, 0, c, d, 0, 0, 0, w]) == code
    assert orientation_from_display_matrix([0] * 9) == 1  # no usable matrix: as stored
    # the eight codes turn a frame exactly as PIL's exif_transpose (what viewers do)
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 9
    for code in range(1, 9):
        im = Image.fromarray(rgb)
        exif = im.getexif()
        exif[0x0112] = code
        im.info["exif"] = exif.tobytes()
        assert np.array_equal(apply_orientation(rgb, code), np.asarray(ImageOps.exif_transpose(im))), code


# --- a frame stored twice (00000.jpg and 00000.png) ---------------------------------------------------------------
@pytest.fixture
def doubled_tree(tmp_path, media):
    frames = [Image.fromarray(media.two_tone(k)) for k in range(3)]
    media.write_frames(tmp_path / "JPEGImages" / "cat", frames)
    media.write_frames(tmp_path / "JPEGImages" / "cat", frames[:2], ".png")  # 00000 and 00001 twice
    media.write_frames(tmp_path / "JPEGImages" / "dog", frames)
    return tmp_path


def test_frames_stored_twice_are_skipped_naming_folder_and_stems(doubled_tree):
    infos = {i.video_id: i for i in scan(doubled_tree, "ytvos", on_error="skip")}
    assert infos["dog"].status == "ok" and infos["dog"].num_frames == 3
    cat = infos["cat"]
    assert cat.status == "skipped" and cat.num_frames == 0
    for word in ("folder cat", "2 frames stored twice", "00000 (00000.jpg + 00000.png)", "00001 (00001.jpg"):
        assert word in cat.reason, cat.reason
    assert "00002" not in cat.reason


def test_frames_stored_twice_fail_naming_the_folder(doubled_tree):
    with pytest.raises(VideoReadError, match=r"JPEGImages/cat: folder cat: 2 frames stored twice"):
        scan(doubled_tree, "ytvos", on_error="fail")
