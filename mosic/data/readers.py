"""Reading the videos of a corpus: discovery, probing (what can be read, and why not), and frame readers.

This is the module the rest of the pipeline imports; it re-exports the layouts (:mod:`mosic.data.layouts`),
the records (:mod:`mosic.data.video`) and the video-file reader (:mod:`mosic.data.videofile`).

Typical use::

    infos = scan(root, "ytvos", "train", threads=8)             # index stage: one VideoInfo per video
    with open_video(infos[0]) as video:
        clip = video.read([0, 6, 12], size=(224, 224))          # uint8 [3, 224, 224, 3] RGB

What probing decides, per kind of bad input (``probe`` never raises for bad input; tests/data/test_bad_input.py
builds each case):

- Frames of mode L, 1, P, CMYK, RGBA, LA, 16-bit PNG, or .jpg and .png mixed: ``ok``, read as RGB (alpha
  composited on black, 16 bits scaled to 8; :mod:`mosic.data.frames`).
- Frame stored twice in a folder under one name with two extensions (``00000.jpg`` and ``00000.png``):
  ``skipped``, the reason names the folder and the duplicated stems (every frame would count twice).
- JPEG frames with an EXIF orientation, video files with a rotation display matrix (phone videos): ``ok``,
  read as a viewer shows them; height and width are the displayed ones and ``rotation`` records the turn
  applied (a mirror is noted in the reason).
- mp4 with an edit list that hides samples (phone videos): ``ok``, ``num_frames`` counts the frames the
  decoder outputs, not the container's sample count (:mod:`mosic.data.videofile`).
- Frame sizes differ within a folder: ``ok`` with the note "mixed frame sizes: ..."; every frame is
  resized to the first frame's size on read (found only with verify_frames; read the same way without).
- Folder with no frames, or missing (an id listed in a split file): ``skipped``, "no frames ..." /
  "folder not found".
- Zero-byte, non-image, truncated or unreadable frame file (dangling symlink, no permission): ``skipped``,
  the reason names the frame file ("frame 00001.jpg: zero-byte file"). Found only with verify_frames;
  without it, reading that frame raises :class:`VideoReadError` naming it.
- macOS ``._*`` resource forks and other hidden files in a frame folder: ignored.
- Zero-byte, text or unreadable video file, dangling symlink: ``skipped``, the reason names the file
  and the error.
- mp4 cut short with its moov atom (the frame index, written last by default) lost: ``skipped``, "cannot
  open as a video" or "no video data".
- mp4 cut short with the moov atom kept (faststart), data lost: ``ok`` with the note "truncated: N of M
  frames decodable" and ``num_frames = N``, the frames before the first gap (with verify_frames; without
  it the container's count is trusted and reading past the damage raises); ``skipped`` when none decode.
- A video shorter than one clip (3 frames): ``ok``; the index stage applies ``clips.short_videos``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from mosic.data.frames import (
    check_frame,
    decode_image,
    duplicate_stems,
    list_frame_files,
    orientation_rotation,
    read_exif_orientation,
)
from mosic.data.layouts import (
    Annotations,
    Layout,
    ObjectMeta,
    discover,
    read_annotations,
    read_meta,
)
from mosic.data.video import VideoInfo, VideoReader, VideoReadError, skipped
from mosic.data.videofile import VideoFileReader, probe_video_file

logger = logging.getLogger(__name__)

__all__ = [
    "VideoReadError",
    "VideoInfo",
    "VideoReader",
    "JpegFolderReader",
    "VideoFileReader",
    "Annotations",
    "ObjectMeta",
    "discover",
    "probe",
    "scan",
    "open_video",
    "read_annotations",
    "read_meta",
]

Kind = Literal["jpeg_folder", "video_file"]


class JpegFolderReader(VideoReader):
    """Frames of a folder of images (JPEG or PNG, one per frame, in name order).

    Only the requested frames are decoded. With a target size at most half the stored size, JPEGs are
    decoded at reduced scale in the DCT domain before the final resize (:func:`mosic.data.frames.decode_image`).
    Frames come out as a viewer shows them: each is turned as its EXIF orientation says.

    Args:
        path: the frame folder.
        num_frames: expected frame count (from probing); a different count on disk raises, because the
            index and its clips would no longer match the folder.
        height: size every frame is returned at when ``read`` gets no size (the first frame's).
        width: likewise.
        threads: decode this many frames in parallel (PIL and OpenCV release the GIL). 1 by default:
            readers usually run inside already-parallel jobs or DataLoader workers.

    Raises:
        VideoReadError: when the folder cannot be listed or its frame count changed since probing.
    """

    def __init__(self, path: Path, *, num_frames: int, height: int, width: int, threads: int = 1) -> None:
        self.path = Path(path)
        try:
            self._files = list_frame_files(self.path)
        except OSError as exc:
            raise VideoReadError(f"{self.path}: cannot list frame folder: {exc}") from exc
        if len(self._files) != num_frames:
            raise VideoReadError(
                f"{self.path}: folder holds {len(self._files)} frames but was indexed with {num_frames}; "
                "re-run the index"
            )
        self.num_frames, self.height, self.width, self.fps = num_frames, height, width, math.nan
        self._pool = cf.ThreadPoolExecutor(threads, thread_name_prefix="frames") if threads > 1 else None

    def _decode_one(self, k: int, size: tuple[int, int]) -> np.ndarray:
        try:
            return decode_image(self._files[k], size, orient=True)
        except OSError as exc:
            raise VideoReadError(f"{self._files[k]}: cannot decode frame {k}: {exc}") from exc

    def _decode(self, indices: list[int], size: tuple[int, int]) -> np.ndarray:
        out = np.empty((len(indices), size[0], size[1], 3), dtype=np.uint8)  # [T, H, W, 3]
        if self._pool is None:
            for j, k in enumerate(indices):
                out[j] = self._decode_one(k, size)
        else:
            for j, frame in enumerate(self._pool.map(lambda k: self._decode_one(k, size), indices)):
                out[j] = frame
        return out

    def frame_sizes(self, indices: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
        """Native ``(height, width)`` of each given frame as displayed, from the file headers (no decoding)."""
        sizes = []
        for k in indices:
            try:
                with Image.open(self._files[int(k)]) as im:
                    hw = (im.height, im.width)
                    sizes.append(hw[::-1] if read_exif_orientation(im) >= 5 else hw)
            except OSError as exc:
                raise VideoReadError(f"{self._files[int(k)]}: cannot read frame header: {exc}") from exc
        return sizes

    def close(self) -> None:
        """Stop the decoding threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _describe(path: Path, exc: OSError) -> str:
    if os.path.islink(path) and not os.path.exists(path):
        return f"dangling symlink to {os.readlink(path)}"
    return exc.strerror if exc.errno and exc.strerror else str(exc)


def _probe_jpeg_folder(video_id: str, path: Path, *, verify_frames: bool) -> VideoInfo:
    if not path.is_dir():
        return skipped(video_id, "jpeg_folder", path, "folder not found" if not path.exists() else "not a folder")
    try:
        files = list_frame_files(path)
    except OSError as exc:
        return skipped(video_id, "jpeg_folder", path, f"cannot list folder: {exc}")
    if not files:
        return skipped(video_id, "jpeg_folder", path, "no frames (.jpg, .jpeg, .png) in folder")
    twice = duplicate_stems(files)
    if twice:
        shown = ", ".join(f"{stem} ({' + '.join(names)})" for stem, names in list(twice.items())[:5])
        more = f" and {len(twice) - 5} more" if len(twice) > 5 else ""
        return skipped(
            video_id,
            "jpeg_folder",
            path,
            f"folder {path.name}: {len(twice)} frames stored twice under one name with different extensions, "
            f"which would count every such frame twice: {shown}{more}; keep one file per frame",
        )
    notes = []
    if verify_frames:
        sizes: dict[tuple[int, int], int] = {}
        orientations: dict[int, int] = {}
        first = None
        for f in files:
            try:
                header = check_frame(f)
            except OSError as exc:
                return skipped(video_id, "jpeg_folder", path, f"frame {f.name}: {_describe(f, exc)}")
            first = first or header
            hw = (header.height, header.width)
            sizes[hw] = sizes.get(hw, 0) + 1
            orientations[header.orientation] = orientations.get(header.orientation, 0) + 1
        assert first is not None
        height, width, orientation = first
        if len(orientations) > 1:
            other = len(files) - orientations[orientation]
            notes.append(f"EXIF orientation differs: {other} of {len(files)} frames are turned unlike the first")
        if len(sizes) > 1:
            other = len(files) - sizes[(height, width)]
            notes.append(
                f"mixed frame sizes: {other} of {len(files)} frames differ from {width}x{height}; resized on read"
            )
    else:
        try:
            height, width, orientation = check_frame(files[0])
        except OSError as exc:
            return skipped(video_id, "jpeg_folder", path, f"frame {files[0].name}: {_describe(files[0], exc)}")
    rotation, mirrored = orientation_rotation(orientation)
    if mirrored:
        turn = f" and rotated {rotation} degrees clockwise" if rotation else ""
        notes.insert(0, f"EXIF orientation {orientation}: mirrored{turn} as viewers show it")
    return VideoInfo(
        video_id=video_id,
        kind="jpeg_folder",
        path=str(path),
        num_frames=len(files),
        height=height,
        width=width,
        fps=math.nan,
        status="ok",
        reason="; ".join(notes),
        rotation=rotation,
    )


def probe(video_id: str, path: Path, kind: str, *, verify_frames: bool = True) -> VideoInfo:
    """Find out whether a video can be read, and its frame count, size and frame rate.

    Never raises for bad input: an unreadable video comes back with ``status = "skipped"`` and a reason
    that names the file and the problem (table in the module docstring).

    Args:
        video_id: id to record.
        path: frame folder or video file.
        kind: ``jpeg_folder`` or ``video_file``.
        verify_frames: frame folders: check every frame file (header and end marker, ~0.1 ms per frame),
            which finds zero-byte, corrupt and unreadable frames and mixed sizes; otherwise only the first
            frame is opened. Video files: count packets (one demux pass) and decode the first and last frames
            (the last costs decoding from the keyframe before it), which finds truncated files; otherwise the
            container's frame count (less the samples an mp4 edit list hides) is trusted and only the first
            frame is decoded (for its size and rotation).

    Returns:
        The probe record.

    Raises:
        ValueError: for an unknown kind (a programming error, not bad input).
        ModuleNotFoundError: for a video file when PyAV is not installed (not bad input either).
    """
    path = Path(path)
    if kind not in ("jpeg_folder", "video_file"):
        raise ValueError(f"unknown video kind {kind!r}; accepted: 'jpeg_folder', 'video_file'")
    try:
        if kind == "jpeg_folder":
            return _probe_jpeg_folder(video_id, path, verify_frames=verify_frames)
        return probe_video_file(video_id, path, verify_frames=verify_frames)
    except ImportError:
        raise  # a missing package is the environment's problem, not the video's: skipping every video hides it
    except Exception as exc:  # a probe must not take the whole index down; the reason says what happened
        logger.debug("probing %s failed", path, exc_info=True)
        return skipped(
            video_id, kind, path, f"{path.name}: unexpected error while probing: {type(exc).__name__}: {exc}"
        )  # type: ignore[arg-type]


def scan(
    root: Path,
    layout: Layout,
    split: str = "",
    *,
    verify_frames: bool = True,
    threads: int = 2,
    on_error: Literal["skip", "fail"] = "skip",
) -> list[VideoInfo]:
    """Discover and probe every video of a corpus, in parallel.

    Args:
        root: dataset root.
        layout: ``ytvos``, ``videos`` or ``davis`` (:func:`discover`).
        split: subset of videos (:func:`discover`).
        verify_frames: as for :func:`probe`.
        threads: probes run in a pool of this many threads (decoding and file I/O release the GIL).
        on_error: ``skip``: unreadable videos are returned with ``status = "skipped"`` and logged with a
            warning each; ``fail``: the first unreadable video (in id order) raises.

    Returns:
        One :class:`VideoInfo` per discovered video, sorted by id, skipped ones included.

    Raises:
        VideoReadError: with ``on_error = "fail"``, naming the first unreadable file and why.
        FileNotFoundError: when the root or split does not exist (from :func:`discover`).
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    found = discover(Path(root), layout, split)
    start = time.perf_counter()
    logger.info(
        "probing %d videos under %s (layout %s, split %r, %d threads)", len(found), root, layout, split, threads
    )
    infos: list[VideoInfo] = []
    with (
        cf.ThreadPoolExecutor(max(1, threads), thread_name_prefix="probe") as pool,
        tqdm(total=len(found), desc="probe", unit="video", file=sys.stderr, mininterval=1.0) as bar,
    ):
        futures = [pool.submit(probe, vid, path, kind, verify_frames=verify_frames) for vid, path, kind in found]
        try:
            for fut in futures:  # in id order, so "the first bad video" does not depend on thread timing
                info = fut.result()
                bar.update()
                if info.status == "skipped":
                    if on_error == "fail":
                        raise VideoReadError(f"{info.path}: {info.reason} (dataset.on_error = fail)")
                    logger.warning("skipping %s (%s): %s", info.video_id, info.path, info.reason)
                elif info.reason:
                    logger.info("%s: %s", info.video_id, info.reason)
                infos.append(info)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    skipped_count = sum(i.status == "skipped" for i in infos)
    elapsed = time.perf_counter() - start
    ok_count = len(infos) - skipped_count
    logger.info("probed %d videos in %.1f s: %d ok, %d skipped", len(infos), elapsed, ok_count, skipped_count)
    return infos


def open_video(info: VideoInfo | Path | str, kind: Kind | None = None, *, threads: int = 1) -> VideoReader:
    """Open a video for reading frames.

    Args:
        info: a probe record (the fast path: nothing is probed again), or a path to probe first.
        kind: ``jpeg_folder`` or ``video_file`` when `info` is a path; guessed from the path otherwise (a
            directory is a frame folder).
        threads: frame folders: frames decoded in parallel (:class:`JpegFolderReader`); ignored for video
            files, whose decoder threads itself.

    Returns:
        A :class:`VideoReader`; use it as a context manager.

    Raises:
        VideoReadError: when the video was skipped by probing (with the reason) or cannot be opened.
    """
    if not isinstance(info, VideoInfo):
        path = Path(info)
        kind = kind or ("jpeg_folder" if path.is_dir() else "video_file")
        info = probe(path.stem, path, kind, verify_frames=False)
    if info.status != "ok":
        raise VideoReadError(f"{info.path}: cannot be read: {info.reason}")
    if info.kind == "jpeg_folder":
        return JpegFolderReader(
            Path(info.path), num_frames=info.num_frames, height=info.height, width=info.width, threads=threads
        )
    return VideoFileReader(
        Path(info.path), num_frames=info.num_frames, height=info.height, width=info.width, fps=info.fps
    )
