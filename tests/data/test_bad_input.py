"""The bad-input corpus: every odd or broken input is either read correctly or skipped with a reason naming it.

The corpus (built in conftest.py) holds video files (zero-byte, text named .mp4, truncated with and without
the moov atom, a 3-frame clip, a dangling symlink, an unreadable file) and frame folders (grayscale, CMYK,
PNG, palette, RGBA, LA, 16-bit, 1-bit, mixed sizes, no frames, a truncated / non-image / zero-byte /
dangling / unreadable frame, macOS resource forks).
"""

import logging
import math
import os

import numpy as np
import pytest

from mosic.data.frames import decode_image
from mosic.data.readers import VideoReadError, open_video, probe, scan

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
