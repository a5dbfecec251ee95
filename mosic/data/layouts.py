"""Dataset layouts on disk: finding the videos of a corpus, and reading YouTube-VOS / DAVIS annotations.

Three layouts (``dataset.kind`` in config.yaml; the synthetic demo is written as ``ytvos``):

- ``ytvos``: ``<base>/JPEGImages/<video>/00000.jpg`` (also .jpeg / .png frames). ``base`` is the root
  itself (``split = ""``), a subfolder of it (``split = "train"``, ``"valid"``, ``"train_all_frames"``: the
  release zips unpack that way), or the root with a ``.txt`` list of video ids, one per line, whose path
  is relative to the root (``split = "val1.txt"``). Covers both releases: all frames at 30 fps
  (``train_all_frames``, no annotations) and every 5th frame with ``<base>/Annotations/<video>/*.png``
  palette masks and ``<base>/meta.json`` object categories (``train``, ``valid``).
- ``videos``: every file under the root (recursively, symlinks to files included) whose extension is
  mp4, webm, mkv, avi or mov, in any case. The video id is the path relative to the root without the
  extension, with ``/`` separators; when two files differ only by extension (``a.mp4``, ``a.mkv``) both
  keep their extension in the id. Other files are ignored; a file with a video extension that is not a
  video is kept here and skipped by probing, with the reason.
- ``davis``: DAVIS-2017: ``<root>/JPEGImages/480p/<video>/*.jpg``, ``<root>/Annotations/480p/<video>/*.png``,
  and the split lists ``<root>/ImageSets/2017/<split>.txt`` (``train``, ``val``); ``split = ""`` takes
  every folder under ``JPEGImages/480p``.

Video ids listed in a split file are returned even when their folder is missing, so that probing
reports them as skipped rather than the corpus silently shrinking.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from mosic.data.frames import list_frame_files
from mosic.data.video import VideoReadError

logger = logging.getLogger(__name__)

__all__ = ["VIDEO_SUFFIXES", "Layout", "discover", "Annotations", "ObjectMeta", "read_annotations", "read_meta"]

Layout = Literal["ytvos", "videos", "davis"]
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov")
"""File suffixes (compared lower-case) that the ``videos`` layout treats as video files."""


def _read_id_list(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"split file {path} does not exist")
    ids = [line.strip() for line in path.read_text().splitlines()]
    ids = [i for i in ids if i and not i.startswith("#")]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        logger.warning("%s lists %d video ids more than once (e.g. %s); each is used once", path, len(dupes), dupes[0])
    return list(dict.fromkeys(ids))


def _subfolders(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory")
    with os.scandir(folder) as it:
        return [e.name for e in it if e.is_dir() and not e.name.startswith(".")]


def _ytvos_base(root: Path, split: str) -> Path:
    return root / split if split and not split.endswith(".txt") else root


def discover(root: Path, layout: Layout, split: str = "") -> list[tuple[str, Path, str]]:
    """Find the videos of a corpus without opening them.

    Args:
        root: dataset root directory.
        layout: ``ytvos``, ``videos`` or ``davis`` (see the module docstring).
        split: subset of videos; its meaning depends on the layout ('' = every video).

    Returns:
        ``(video_id, path, kind)`` per video, sorted by id; kind is ``jpeg_folder`` or ``video_file``.

    Raises:
        FileNotFoundError: when the root, the frame folder of the layout, or the split file is missing.
        ValueError: for an unknown layout, or a split given to the ``videos`` layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    if layout == "ytvos":
        base = _ytvos_base(root, split)
        frames_root = base / "JPEGImages"
        if split.endswith(".txt"):
            ids = _read_id_list(root / split)
        else:
            if not frames_root.is_dir():
                hint = "" if split else " (for the release layout give split = train, valid or train_all_frames)"
                raise FileNotFoundError(f"no JPEGImages folder at {frames_root}{hint}")
            ids = _subfolders(frames_root)
        found = [(i, frames_root / i, "jpeg_folder") for i in ids]
    elif layout == "davis":
        frames_root = root / "JPEGImages" / "480p"
        if split:
            sets = root / "ImageSets" / "2017"
            name = split if split.endswith(".txt") else f"{split}.txt"
            if not (sets / name).is_file():
                known = sorted(p.stem for p in sets.glob("*.txt")) if sets.is_dir() else []
                raise FileNotFoundError(f"DAVIS split file {sets / name} does not exist (found: {known})")
            ids = _read_id_list(sets / name)
        else:
            ids = _subfolders(frames_root)
        found = [(i, frames_root / i, "jpeg_folder") for i in ids]
    elif layout == "videos":
        if split:
            raise ValueError(f"the 'videos' layout takes no split (got {split!r}); point root at the folder instead")
        found = _discover_video_files(root)
    else:
        raise ValueError(f"unknown layout {layout!r}; accepted: 'ytvos', 'videos', 'davis'")
    return sorted(found, key=lambda t: t[0])


def _discover_video_files(root: Path) -> list[tuple[str, Path, str]]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files += [Path(dirpath) / f for f in filenames if os.path.splitext(f)[1].lower() in VIDEO_SUFFIXES]
    stems = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    clashes = {s for s, n in Counter(stems).items() if n > 1}
    if clashes:
        logger.warning(
            "%d video ids under %s differ only by extension (e.g. %s); those keep it", len(clashes), root, min(clashes)
        )
    return [
        (p.relative_to(root).as_posix() if s in clashes else s, p, "video_file")
        for p, s in zip(files, stems, strict=True)
    ]


@dataclass(frozen=True, kw_only=True)
class Annotations:
    """The ground-truth masks of one video.

    Attributes:
        video_id: the video.
        frame_names: file stems of the annotated frames (``00000``), in frame order.
        frame_indices: ``int64 [T]`` position of each annotated frame in the video's frame list (the
            index :class:`mosic.data.readers.VideoReader` uses); -1 when no frame of that name exists.
        masks: ``uint8 [T, H, W]`` object ids (palette indices: 0 background, 1.. objects; DAVIS and
            YTVOS mark ambiguous pixels 255).
        palette: ``uint8 [256, 3]`` palette of the first mask, to write predictions in the same colours;
            None for grayscale masks.
    """

    video_id: str
    frame_names: tuple[str, ...]
    frame_indices: np.ndarray
    masks: np.ndarray
    palette: np.ndarray | None


def _annotation_dirs(root: Path, layout: Layout, video_id: str, split: str) -> tuple[Path, Path]:
    if layout == "ytvos":
        base = _ytvos_base(root, split)
        return base / "Annotations" / video_id, base / "JPEGImages" / video_id
    if layout == "davis":
        return root / "Annotations" / "480p" / video_id, root / "JPEGImages" / "480p" / video_id
    raise ValueError(f"layout {layout!r} has no annotations; accepted: 'ytvos', 'davis'")


def _read_mask(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with Image.open(path) as im:
            if im.mode == "P":
                pal = np.zeros((256, 3), np.uint8)
                raw = np.frombuffer(bytes(im.getpalette("RGB") or []), np.uint8).reshape(-1, 3)[:256]
                pal[: len(raw)] = raw
                return np.asarray(im, dtype=np.uint8), pal
            if im.mode in ("L", "1"):
                return np.asarray(im.convert("L"), dtype=np.uint8) // (255 if im.mode == "1" else 1), None
            mode = im.mode
    except OSError as exc:
        raise VideoReadError(f"{path}: cannot read mask: {exc}") from exc
    raise VideoReadError(f"{path}: mask is {mode}; expected a palette (P) or grayscale (L) PNG of object ids")


def read_annotations(root: Path, layout: Layout, video_id: str, split: str = "") -> Annotations:
    """Read the object masks of one YouTube-VOS or DAVIS video.

    Masks whose size differs from the first one are resized to it with nearest-neighbour sampling (ids
    must not blend), with a warning.

    Args:
        root: dataset root (as for :func:`discover`).
        layout: ``ytvos`` or ``davis``.
        video_id: the video.
        split: as for :func:`discover` (selects ``<root>/<split>/Annotations`` for YTVOS subfolders).

    Returns:
        The masks, their frame names and their positions among the video's frames.

    Raises:
        FileNotFoundError: when the video has no annotation folder (e.g. the YTVOS all-frames release).
        VideoReadError: when a mask cannot be read or is not a palette / grayscale image.
    """
    ann_dir, frames_dir = _annotation_dirs(Path(root), layout, video_id, split)
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"no annotations for video {video_id!r}: {ann_dir} is not a directory")
    files = [p for p in list_frame_files(ann_dir) if p.suffix.lower() == ".png"]
    if not files:
        raise FileNotFoundError(f"no annotations for video {video_id!r}: no .png masks in {ann_dir}")
    masks, palette = [], None
    for f in files:
        m, pal = _read_mask(f)
        palette = pal if palette is None else palette
        if masks and m.shape != masks[0].shape:
            logger.warning("%s: mask size %s differs from %s; resized (nearest)", f, m.shape, masks[0].shape)
            m = np.asarray(Image.fromarray(m).resize(masks[0].shape[::-1], Image.Resampling.NEAREST))
        masks.append(m)
    frame_pos = {p.stem: i for i, p in enumerate(list_frame_files(frames_dir))} if frames_dir.is_dir() else {}
    names = tuple(f.stem for f in files)
    return Annotations(
        video_id=video_id,
        frame_names=names,
        frame_indices=np.array([frame_pos.get(n, -1) for n in names], dtype=np.int64),
        masks=np.stack(masks),  # [T, H, W]
        palette=palette,
    )


@dataclass(frozen=True, kw_only=True)
class ObjectMeta:
    """One annotated object of a YouTube-VOS video (from meta.json).

    Attributes:
        category: class name (``person``, ``giant_panda``, ...); '' when meta.json gives none (valid split).
        frames: stems of the frames the object is annotated in (valid split: where it first appears).
    """

    category: str
    frames: tuple[str, ...]


def read_meta(root: Path, split: str = "") -> dict[str, dict[int, ObjectMeta]]:
    """Read YouTube-VOS ``meta.json``: the objects of every video and their categories.

    Args:
        root: dataset root.
        split: as for :func:`discover`; the file read is ``<root>/<split>/meta.json`` for a subfolder split.

    Returns:
        ``{video_id: {object_id: ObjectMeta}}``; object ids are the mask values.

    Raises:
        FileNotFoundError: when there is no meta.json (the all-frames release has none).
        ValueError: when the file is not the YouTube-VOS meta.json structure.
    """
    path = _ytvos_base(Path(root), split) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"no YouTube-VOS meta.json at {path}")
    try:
        videos = json.loads(path.read_text())["videos"]
        return {
            vid: {
                int(oid): ObjectMeta(category=str(obj.get("category", "")), frames=tuple(obj.get("frames", ())))
                for oid, obj in entry["objects"].items()
            }
            for vid, entry in videos.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is not a YouTube-VOS meta.json ({exc.__class__.__name__}: {exc})") from exc
