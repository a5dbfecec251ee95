"""Fixtures for the reader tests: tiny videos whose frames carry their index, dataset trees in the real
YouTube-VOS / DAVIS layouts, the bad-input corpus, and the real test videos (skipped when absent).

Everything is built under pytest's tmp dirs in well under a second; the corpus is built once per session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from PIL import Image

# A frame of the indexed videos is a grid of CELL-pixel cells; frame k lights cell k (row-major).
CELL = 8
BACKGROUND, BLOCK = 40, 230


# --- content generators ----------------------------------------------------------------------------
def indexed_frames(num_frames: int, height: int = 64, width: int = 96) -> np.ndarray:
    """uint8 [T, H, W, 3]: frame k is dark with one bright CELL x CELL block at cell k (row-major)."""
    cols = width // CELL
    assert num_frames <= cols * (height // CELL)
    frames = np.full((num_frames, height, width, 3), BACKGROUND, np.uint8)
    for k in range(num_frames):
        r, c = divmod(k, cols)
        frames[k, r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] = BLOCK
    return frames


def frame_index_of(rgb: np.ndarray) -> int:
    """The cell index of the brightest cell of a frame made by :func:`indexed_frames` (survives compression)."""
    h, w = rgb.shape[:2]
    cells = rgb[..., 1].reshape(h // CELL, CELL, w // CELL, CELL).mean(axis=(1, 3))
    return int(np.argmax(cells))


def two_tone(k: int, height: int = 48, width: int = 64) -> np.ndarray:
    """uint8 [H, W, 3] RGB, left half LEFT(k), right half RIGHT(k): flat areas that JPEG keeps nearly exact."""
    img = np.empty((height, width, 3), np.uint8)
    img[:, : width // 2] = left_colour(k)
    img[:, width // 2 :] = right_colour(k)
    return img


def left_colour(k: int) -> tuple[int, int, int]:
    return (200, 40 + 20 * (k % 6), 60)


def right_colour(k: int) -> tuple[int, int, int]:
    return (30, 90, 140 + 20 * (k % 6))


def encode_video(
    path: Path, frames: np.ndarray, *, fps: int = 25, gop: int = 10, faststart: bool = False, fmt: str = "mp4"
) -> Path:
    """Encode uint8 [T, H, W, 3] RGB frames as H.264 with B-frames and a keyframe every `gop` frames, in
    container format `fmt` (mp4 whatever the file name says, unless told otherwise)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.gop_size = gop
        stream.options = {"crf": "18", "bf": "2"}
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    return path


def decode_sequentially(path: Path) -> np.ndarray:
    """Every frame of a video file, decoded in order with one thread: the reference for exact access."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return np.stack(frames)


def write_frames(folder: Path, images: list[Image.Image], suffix: str = ".jpg", **save_kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, im in enumerate(images):
        im.save(folder / f"{k:05d}{suffix}", **({"quality": 95} if suffix == ".jpg" else {}) | save_kw)
    return folder


def palette_mask(height: int, width: int, k: int) -> Image.Image:
    """A YouTube-VOS style palette mask: object 1 on the left, object 2 in a band that moves with k."""
    m = np.zeros((height, width), np.uint8)
    m[:, : width // 3] = 1
    m[k % height, :] = 2
    im = Image.frombytes("P", (width, height), m.tobytes())
    im.putpalette([0, 0, 0, 236, 95, 103, 249, 145, 87] + [0, 0, 0] * 253)
    return im


# --- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def media() -> SimpleNamespace:
    """The content helpers of this file for the tests (a conftest cannot be imported by name: tests/ has
    its own conftest.py, and both would be the module ``conftest``)."""
    return SimpleNamespace(
        indexed_frames=indexed_frames,
        frame_index_of=frame_index_of,
        two_tone=two_tone,
        left_colour=left_colour,
        right_colour=right_colour,
        encode_video=encode_video,
        decode_sequentially=decode_sequentially,
        write_frames=write_frames,
        palette_mask=palette_mask,
    )


@pytest.fixture(scope="session")
def indexed_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame 96x64 H.264 mp4 (GOP 10, B-frames) whose frame k lights grid cell k."""
    return encode_video(tmp_path_factory.mktemp("video") / "indexed.mp4", indexed_frames(40))


@pytest.fixture
def ytvos_tree(tmp_path: Path) -> Path:
    """A tiny YouTube-VOS root with both release flavours, in the real layout.

    - ``train_all_frames/JPEGImages/{cat,dog}/00000.jpg ...`` (every frame, no annotations);
    - ``train/JPEGImages/cat/{00000,00005,00010}.jpg`` with one mask per frame, ``train/meta.json``;
    - ``valid/JPEGImages/cat/...`` with masks only on the first and last frame (where objects appear);
    - ``JPEGImages/`` + ``val1.txt`` at the root (a split given as a list of ids, one of them missing).
    """
    h, w = 24, 32
    for vid, n in (("cat", 12), ("dog", 7)):
        write_frames(
            tmp_path / "train_all_frames" / "JPEGImages" / vid, [Image.fromarray(two_tone(k, h, w)) for k in range(n)]
        )
    for split, annotated in (("train", (0, 5, 10)), ("valid", (0, 10))):
        frames = tmp_path / split / "JPEGImages" / "cat"
        frames.mkdir(parents=True)
        for i, k in enumerate((0, 5, 10)):
            Image.fromarray(two_tone(i, h, w)).save(frames / f"{k:05d}.jpg", quality=95)
        masks = tmp_path / split / "Annotations" / "cat"
        masks.mkdir(parents=True)
        for k in annotated:
            palette_mask(h, w, k).save(masks / f"{k:05d}.png")
    meta = {"videos": {"cat": {"objects": {"1": {"category": "cat", "frames": ["00000", "00005", "00010"]},
                                            "2": {"category": "person", "frames": ["00005"]}}}}}  # fmt: skip
    (tmp_path / "train" / "meta.json").write_text(json.dumps(meta))
    write_frames(tmp_path / "JPEGImages" / "fish", [Image.fromarray(two_tone(k, h, w)) for k in range(4)])
    (tmp_path / "val1.txt").write_text("fish\nmissing_video\n\n")
    return tmp_path


@pytest.fixture
def davis_tree(tmp_path: Path) -> Path:
    """A tiny DAVIS-2017 root: JPEGImages/480p, Annotations/480p, ImageSets/2017/{train,val}.txt."""
    h, w = 24, 40
    for vid, n in (("bear", 5), ("dog", 4)):
        write_frames(tmp_path / "JPEGImages" / "480p" / vid, [Image.fromarray(two_tone(k, h, w)) for k in range(n)])
        masks = tmp_path / "Annotations" / "480p" / vid
        masks.mkdir(parents=True)
        for k in range(n):
            palette_mask(h, w, k).save(masks / f"{k:05d}.png")
    sets = tmp_path / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("bear\n")
    (sets / "val.txt").write_text("dog\n")
    return tmp_path


def _build_video_corpus(root: Path) -> dict[str, str]:
    """Bad and good video files; returns {video_id: expected outcome}."""
    root.mkdir(parents=True)
    expected = {}
    encode_video(root / "clip.mp4", indexed_frames(20))
    expected["clip"] = "ok"
    encode_video(root / "short.mp4", indexed_frames(3))
    expected["short"] = "ok"
    (root / "sub").mkdir()
    encode_video(root / "sub" / "nested.MKV", indexed_frames(5), fmt="matroska")
    expected["sub/nested"] = "ok"
    (root / "zero.mp4").write_bytes(b"")
    expected["zero"] = "zero-byte"
    (root / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    expected["text"] = "cannot open as a video"
    # moov atom first (faststart), data cut: the frames before the cut decode
    full = encode_video(root / "full_fs.tmp", indexed_frames(60), faststart=True).read_bytes()
    (root / "full_fs.tmp").unlink()
    (root / "truncated.mp4").write_bytes(full[: int(len(full) * 0.6)])
    expected["truncated"] = "truncated:"
    # default muxing writes the moov atom last: cutting the file loses the index of every frame
    full = encode_video(root / "full.tmp", indexed_frames(60)).read_bytes()
    (root / "full.tmp").unlink()
    (root / "cut_moov.mp4").write_bytes(full[: len(full) // 2])
    expected["cut_moov"] = "cannot open as a video"
    os.symlink(root / "does_not_exist.mp4", root / "dangling.mp4")
    expected["dangling"] = "dangling symlink"
    if os.geteuid() != 0:  # root reads through chmod 000
        encode_video(root / "noperm.mp4", indexed_frames(4)).chmod(0)
        expected["noperm"] = "Permission denied"
    (root / "notes.txt").write_text("ignored: not a video extension")
    (root / "apple_mask.png").write_bytes(b"\x89PNG ignored too")
    return expected


def _build_frame_corpus(root: Path) -> dict[str, str]:
    """Frame folders (YouTube-VOS layout) of every pixel mode, and broken ones; returns {video_id: outcome}."""
    jpeg = root / "JPEGImages"
    n = 3
    rgb = [Image.fromarray(two_tone(k)) for k in range(n)]
    write_frames(jpeg / "rgb", rgb)
    write_frames(jpeg / "gray", [im.convert("L") for im in rgb])
    write_frames(jpeg / "cmyk", [im.convert("CMYK") for im in rgb])
    write_frames(jpeg / "png", rgb, ".png")
    write_frames(jpeg / "palette", [im.quantize(colors=8) for im in rgb], ".png")
    rgba = []
    for im in rgb:
        a = np.full((48, 64), 255, np.uint8)
        a[:, 32:] = 128  # right half half-transparent
        rgba.append(Image.fromarray(np.dstack([np.asarray(im), a])))
    write_frames(jpeg / "rgba", rgba, ".png")
    write_frames(jpeg / "la", [im.convert("L").convert("LA") for im in rgb], ".png")
    g16 = [Image.fromarray(np.full((48, 64), 257 * (60 + 40 * k), np.uint16)) for k in range(n)]
    write_frames(jpeg / "gray16", g16, ".png")
    bits = np.zeros((48, 64), bool)
    bits[:, 32:] = True
    write_frames(jpeg / "bilevel", [Image.fromarray(bits)] * n, ".png")
    write_frames(
        jpeg / "mixed", [Image.fromarray(two_tone(k, *hw)) for k, hw in enumerate([(48, 64), (24, 32), (96, 128)])]
    )
    write_frames(jpeg / "hidden", rgb)
    (jpeg / "hidden" / "._00000.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    write_frames(jpeg / "long", [Image.fromarray(two_tone(k % 6)) for k in range(12)])
    (jpeg / "empty").mkdir()
    (jpeg / "empty" / "notes.txt").write_text("no frames here")
    write_frames(jpeg / "corrupt", rgb)
    data = (jpeg / "corrupt" / "00001.jpg").read_bytes()
    (jpeg / "corrupt" / "00001.jpg").write_bytes(data[: len(data) // 2])
    big = [Image.fromarray(np.random.default_rng(k).integers(0, 255, (120, 160, 3), dtype=np.uint8)) for k in range(n)]
    write_frames(jpeg / "cut_tail", big)  # header intact, end of the entropy-coded data lost
    data = (jpeg / "cut_tail" / "00002.jpg").read_bytes()
    (jpeg / "cut_tail" / "00002.jpg").write_bytes(data[: len(data) * 3 // 4])
    write_frames(jpeg / "garbage", rgb)
    (jpeg / "garbage" / "00001.jpg").write_text("<html>404 not found</html>")
    write_frames(jpeg / "zeroframe", rgb)
    (jpeg / "zeroframe" / "00002.jpg").write_bytes(b"")
    write_frames(jpeg / "dangling", rgb)
    (jpeg / "dangling" / "00001.jpg").unlink()
    os.symlink(root / "nowhere.jpg", jpeg / "dangling" / "00001.jpg")
    expected = {v: "ok" for v in ("rgb", "gray", "cmyk", "png", "palette", "rgba", "la", "gray16", "bilevel")}
    expected |= {"mixed": "mixed frame sizes", "hidden": "ok", "long": "ok", "empty": "no frames"}
    expected |= {
        "corrupt": "00001.jpg",
        "cut_tail": "00002.jpg",
        "garbage": "00001.jpg",
        "zeroframe": "00002.jpg",
        "dangling": "00001.jpg",
    }
    if os.geteuid() != 0:
        write_frames(jpeg / "noperm", rgb)
        (jpeg / "noperm" / "00001.jpg").chmod(0)
        expected["noperm"] = "00001.jpg"
    return expected


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The bad-input corpus: ``videos`` (a videos-layout root), ``frames`` (a ytvos-layout root), and
    ``expected_videos`` / ``expected_frames``: per video id, ``ok`` or a substring the outcome must show."""
    base = tmp_path_factory.mktemp("corpus")
    return {
        "videos": base / "videos",
        "frames": base / "frames",
        "expected_videos": _build_video_corpus(base / "videos"),
        "expected_frames": _build_frame_corpus(base / "frames"),
    }
