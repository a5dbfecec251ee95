"""Dataset layouts, probing and frame readers on tiny trees in the real YouTube-VOS / DAVIS layouts, on
H.264 files whose frames carry their index, and on the real test clips (skipped when absent)."""

import math
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image

from mosic.data.frames import decode_image, list_frame_files
from mosic.data.readers import (
    JpegFolderReader,
    VideoFileReader,
    VideoReadError,
    discover,
    open_video,
    probe,
    read_annotations,
    read_meta,
    scan,
)

# --- layouts ----------------------------------------------------------------------------------------------


def test_ytvos_all_frames_release(ytvos_tree):
    found = discover(ytvos_tree, "ytvos", "train_all_frames")
    assert [(v, p.relative_to(ytvos_tree).as_posix(), k) for v, p, k in found] == [
        ("cat", "train_all_frames/JPEGImages/cat", "jpeg_folder"),
        ("dog", "train_all_frames/JPEGImages/dog", "jpeg_folder"),
    ]
    infos = scan(ytvos_tree, "ytvos", "train_all_frames")
    assert [(i.num_frames, i.height, i.width, i.status) for i in infos] == [(12, 24, 32, "ok"), (7, 24, 32, "ok")]
    assert all(math.isnan(i.fps) for i in infos)
    with pytest.raises(FileNotFoundError, match="Annotations"):
        read_annotations(ytvos_tree, "ytvos", "cat", "train_all_frames")
    with pytest.raises(FileNotFoundError, match="meta.json"):
        read_meta(ytvos_tree, "train_all_frames")


def test_ytvos_annotated_release(ytvos_tree, media):
    assert [v for v, _, _ in discover(ytvos_tree, "ytvos", "train")] == ["cat"]
    ann = read_annotations(ytvos_tree, "ytvos", "cat", "train")
    assert ann.frame_names == ("00000", "00005", "00010")
    assert ann.frame_indices.tolist() == [0, 1, 2]  # the 5-frame-stride JPEGs are frames 0, 1, 2 of the reader
    assert ann.masks.dtype == np.uint8 and ann.masks.shape == (3, 24, 32)
    for t, k in enumerate((0, 5, 10)):
        assert np.array_equal(ann.masks[t], np.asarray(media.palette_mask(24, 32, k)))
    assert ann.palette is not None and ann.palette[1].tolist() == [236, 95, 103]
    meta = read_meta(ytvos_tree, "train")
    assert meta["cat"][1].category == "cat" and meta["cat"][2].frames == ("00005",)
    valid = read_annotations(ytvos_tree, "ytvos", "cat", "valid")  # valid: masks where objects first appear
    assert valid.frame_names == ("00000", "00010") and valid.frame_indices.tolist() == [0, 2]


def test_ytvos_split_as_id_list_reports_missing_videos(ytvos_tree):
    infos = scan(ytvos_tree, "ytvos", "val1.txt")
    assert [(i.video_id, i.status) for i in infos] == [("fish", "ok"), ("missing_video", "skipped")]
    assert infos[1].reason == "folder not found"


def test_ytvos_release_root_without_split_says_what_to_do(ytvos_tree):
    (ytvos_tree / "JPEGImages").rename(ytvos_tree / "elsewhere")
    with pytest.raises(FileNotFoundError, match="split = train"):
        discover(ytvos_tree, "ytvos")


def test_davis_layout(davis_tree, media):
    assert [v for v, _, _ in discover(davis_tree, "davis")] == ["bear", "dog"]
    ((vid, path, kind),) = discover(davis_tree, "davis", "val")
    assert (vid, path.relative_to(davis_tree).as_posix(), kind) == ("dog", "JPEGImages/480p/dog", "jpeg_folder")
    with pytest.raises(FileNotFoundError, match="test.txt"):
        discover(davis_tree, "davis", "test")
    ann = read_annotations(davis_tree, "davis", "bear")
    assert ann.masks.shape == (5, 24, 40) and ann.frame_indices.tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(ann.masks[3], np.asarray(media.palette_mask(24, 40, 3)))
    (info,) = scan(davis_tree, "davis", "train")
    assert (info.video_id, info.num_frames, info.height, info.width) == ("bear", 5, 24, 40)


def test_videos_layout_ids_and_extension_clashes(tmp_path, media):
    frames = media.indexed_frames(3)
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("x.mp4", "x.MOV", "a/b/y.Mp4", "a/z.webm"):
        (tmp_path / name).write_bytes(b"")
    media.encode_video(tmp_path / "a" / "real.mp4", frames)
    (tmp_path / "a" / "ignored.txt").write_text("")
    ids = [v for v, _, _ in discover(tmp_path, "videos")]
    assert ids == ["a/b/y", "a/real", "a/z", "x.MOV", "x.mp4"]
    with pytest.raises(ValueError, match="no split"):
        discover(tmp_path, "videos", "train")
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "nope", "videos")


# --- frame folders ------------------------------------------------------------------------------------------


def test_frame_order_is_natural(tmp_path):
    for name in ("10.jpg", "2.JPG", "1.png", "notes.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_frame_files(tmp_path)] == ["1.png", "2.JPG", "10.jpg"]


@pytest.mark.parametrize("threads", [1, 2])
def test_jpeg_folder_read_unsorted_repeated_and_resized(ytvos_tree, media, threads):
    folder = ytvos_tree / "train_all_frames" / "JPEGImages" / "cat"
    info = probe("cat", folder, "jpeg_folder")
    files = list_frame_files(folder)
    idx = [7, 2, 7, 0, 11, 2]
    with open_video(info, threads=threads) as video:
        assert (video.num_frames, video.height, video.width) == (12, 24, 32)
        frames = video.read(idx)
        small = video.read(idx, size=(12, 20))
        assert video.read([]).shape == (0, 24, 32, 3)
        with pytest.raises(IndexError, match="12"):
            video.read([3, 12])
    assert frames.shape == (6, 24, 32, 3) and frames.dtype == np.uint8
    for row, k in zip(frames, idx, strict=True):
        assert np.array_equal(row, np.asarray(Image.open(files[k]).convert("RGB")))
    assert small.shape == (6, 12, 20, 3)
    assert np.array_equal(small[0], small[2]) and np.array_equal(small[1], small[5])


def test_draft_decoding_matches_full_decoding(tmp_path):
    rng = np.random.default_rng(0)
    img = np.kron(rng.integers(0, 255, (24, 32, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 384x512, 16-px blocks
    Image.fromarray(img).save(tmp_path / "f.jpg", quality=90)
    fast = decode_image(tmp_path / "f.jpg", (96, 128))  # draft: DCT-domain 1/4 decode, no resize left to do
    slow = np.asarray(Image.open(tmp_path / "f.jpg").convert("RGB").resize((128, 96), Image.Resampling.BOX))
    assert fast.shape == (96, 128, 3) and fast.dtype == np.uint8
    assert np.abs(fast.astype(int) - img[2::4, 2::4]).mean() < 1.5  # the content, sampled at pixel centres
    assert np.abs(fast.astype(int) - slow).mean() < 5  # a box filter blurs the block edges a little more


def test_jpeg_folder_changed_since_probing(ytvos_tree):
    folder = ytvos_tree / "train_all_frames" / "JPEGImages" / "dog"
    info = probe("dog", folder, "jpeg_folder")
    (folder / "00007.jpg").write_bytes((folder / "00000.jpg").read_bytes())
    with pytest.raises(VideoReadError, match="re-run the index"):
        JpegFolderReader(folder, num_frames=info.num_frames, height=info.height, width=info.width)


def test_open_video_from_a_path(ytvos_tree, indexed_mp4):
    with open_video(ytvos_tree / "JPEGImages" / "fish") as video:
        assert isinstance(video, JpegFolderReader) and video.num_frames == 4
    with open_video(indexed_mp4) as video:
        assert isinstance(video, VideoFileReader) and (video.num_frames, video.fps) == (40, 25.0)


# --- video files ---------------------------------------------------------------------------------------------


def test_video_probe(indexed_mp4):
    info = probe("indexed", indexed_mp4, "video_file")
    assert (info.kind, info.num_frames, info.height, info.width, info.fps) == ("video_file", 40, 64, 96, 25.0)
    assert (info.status, info.reason) == ("ok", "")
    assert probe("indexed", indexed_mp4, "video_file", verify_frames=False) == info


def test_video_exact_frame_access_matches_sequential_decode(indexed_mp4, media):
    reference = media.decode_sequentially(indexed_mp4)  # [40, 64, 96, 3]
    assert [media.frame_index_of(f) for f in reference] == list(range(40))  # the content says which frame
    info = probe("indexed", indexed_mp4, "video_file")
    rng = np.random.default_rng(0)
    requests = [[39, 3, 17, 3, 0], [25, 26, 27], [12], [38, 1], rng.integers(0, 40, 12).tolist(), list(range(40))]
    with open_video(info) as video:
        for idx in requests:  # backwards, forwards, repeats: the reader seeks and continues as needed
            frames = video.read(idx)
            assert np.array_equal(frames, reference[idx]), idx
            assert [media.frame_index_of(f) for f in frames] == idx


def test_video_resize_in_decoder(indexed_mp4, media):
    with open_video(probe("v", indexed_mp4, "video_file")) as video:
        small = video.read([5, 30], size=(32, 48))
    assert small.shape == (2, 32, 48, 3) and small.dtype == np.uint8
    assert [media.frame_index_of(np.repeat(np.repeat(f, 2, 0), 2, 1)) for f in small] == [5, 30]
    assert abs(int(small[0, 31, 47, 1]) - 40) <= 6  # background level survives scaling


@pytest.mark.parametrize("suffix", [".mkv", ".mov", ".webm"])
def test_other_containers(tmp_path, media, suffix):
    frames = media.indexed_frames(24)
    path = tmp_path / f"v{suffix}"
    with av.open(str(path), "w") as container:  # mkv / webm store no frame count: packets are counted
        stream = container.add_stream("libvpx-vp9" if suffix == ".webm" else "libx264", rate=30)
        stream.height, stream.width, stream.pix_fmt, stream.gop_size = 64, 96, "yuv420p", 8
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    info = probe("v", path, "video_file", verify_frames=False)
    assert (info.status, info.num_frames, info.fps) == ("ok", 24, 30.0)
    with open_video(info) as video:
        got = video.read([20, 4, 13, 4])
    assert [media.frame_index_of(f) for f in got] == [20, 4, 13, 4]


# --- real videos (../shared/data/videos) ------------------------------------------------------------------------

README_TABLE = {  # file: (width, height, frames, fps)
    "apple": (1296, 720, 50, 10.0),
    "bear": (854, 480, 82, 30.0),
    "cat": (368, 480, 87, 20.0),
    "paragliding": (854, 480, 70, 30.0),
}


def test_real_videos_probe(real_videos):
    infos = scan(real_videos, "videos", threads=2)
    got = {i.video_id: (i.width, i.height, i.num_frames, i.fps) for i in infos if i.video_id in README_TABLE}
    assert got == README_TABLE
    assert all(i.status == "ok" and i.reason == "" for i in infos if i.video_id in README_TABLE)


def test_real_video_clip_at_reduced_size(real_videos, media):
    info = probe("cat", real_videos / "cat.mp4", "video_file")
    reference = media.decode_sequentially(real_videos / "cat.mp4")
    idx = list(range(20, 86, 6))[::-1] + [20]  # a 12-frame clip at step 6 (reversed), one repeat
    assert len(idx) == 12
    with open_video(info) as video:
        full = video.read(idx)
        clip = video.read(idx, size=(224, 224))
    assert np.array_equal(full, reference[idx])
    assert clip.shape == (12, 224, 224, 3) and clip.dtype == np.uint8
    expected = np.stack([Image.fromarray(f).resize((224, 224), Image.Resampling.BOX) for f in reference[idx]])
    assert np.abs(clip.astype(int) - expected).mean() < 4
    with open_video(probe("apple", real_videos / "apple.mp4", "video_file", verify_frames=False)) as video:
        assert video.read(range(0, 48, 4), size=(126, 224)).shape == (12, 126, 224, 3)


# --- PyAV is needed for video files only -------------------------------------------------------------------------
_WITHOUT_AV = """
import sys
sys.modules["av"] = None  # `import av` now raises ImportError, as when PyAV is not installed
from pathlib import Path
from mosic.data.index import build_index
from mosic.data.readers import open_video, probe, scan
from mosic.config import ClipsConfig

root, mp4 = Path(sys.argv[1]), Path(sys.argv[2])
infos = scan(root, "ytvos", "train_all_frames", on_error="fail")
clips = ClipsConfig(mode="regular", num_frames=2, step=1, clips_per_video=1, short_videos="pad", seed=0, num_shards=1)
index, _ = build_index(infos, clips)
with open_video(infos[0]) as video:
    print("frames", video.read([0, 2]).shape, list(index["status"]))
for what, call in [("probe", lambda: probe("clip", mp4, "video_file")),
                   ("scan", lambda: scan(mp4.parent, "videos", on_error="skip"))]:
    try:
        call()
    except ModuleNotFoundError as exc:
        print(what, "error:", exc.name, exc)
    else:
        print(what, "no error")
assert sys.modules["av"] is None
"""


def test_frame_folders_need_no_pyav_and_video_files_say_they_do(ytvos_tree, indexed_mp4):
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_AV, str(ytvos_tree), str(indexed_mp4)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "frames (2, 24, 32, 3) ['ok', 'ok']"
    for what, line in zip(("probe", "scan"), lines[1:], strict=True):
        assert line.startswith(f"{what} error: av "), line  # raised, not turned into a skipped video
        assert "PyAV" in line and "'av' package" in line and "pip install av" in line
