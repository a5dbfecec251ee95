"""Annotated video sets (DAVIS-2017, YouTube-VOS, the synthetic YTVOS layout) and their factory."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mosic.data.frames import decode_image, list_frame_files
from mosic.data.layouts import ObjectMeta, discover, read_meta
from mosic.evaluate.base import VideoSegmentationSet
from mosic.evaluate.datasets.files import check_root, read_label_png

logger = logging.getLogger(__name__)

VIDEO_KINDS = ("synthetic", "davis", "ytvos")


def _split_label(split: str) -> str:
    return Path(split).stem if split else "all"


class _AnnotatedVideos:
    """Shared reading of annotated videos (see :class:`VideoSegmentationSet`).

    Attributes:
        name: ``<kind>/<split>`` (``all`` when no split is given).
        video_ids: the videos, sorted.
    """

    def __init__(self, *, name: str, dirs: dict[str, tuple[Path, Path]]) -> None:
        missing = [(v, d) for v, pair in dirs.items() for d in pair if not d.is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{name}: {len({v for v, _ in missing})} of {len(dirs)} videos lack a frame or annotation folder "
                f"(first: {missing[0][1]})"
            )
        if not dirs:
            raise ValueError(f"{name}: no videos")
        self.name = name
        self.video_ids = sorted(dirs)
        self._dirs = dirs  # video id -> (frame folder, annotation folder)
        self._frames: dict[str, list[tuple[Path, Path]]] = {}
        logger.info("%s: %d videos", name, len(dirs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self.video_ids)} videos)"

    def _annotated(self, video_id: str) -> list[tuple[Path, Path]]:
        """``(frame, mask)`` files of the annotated frames, in frame order (listed once per video)."""
        if video_id not in self._frames:
            if video_id not in self._dirs:
                raise KeyError(f"{self.name} has no video {video_id!r}")
            frame_dir, ann_dir = self._dirs[video_id]
            frames = {p.stem: p for p in list_frame_files(frame_dir)}
            pairs = []
            for mask in list_frame_files(ann_dir):
                if mask.suffix.lower() != ".png":
                    continue
                if mask.stem not in frames:
                    raise FileNotFoundError(f"{mask} has no frame {mask.stem} in {frame_dir}")
                pairs.append((frames[mask.stem], mask))
            if not pairs:
                raise FileNotFoundError(f"no .png masks in {ann_dir}")
            self._frames[video_id] = pairs
        return self._frames[video_id]

    def num_frames(self, video_id: str) -> int:
        """Annotated frames of the video."""
        return len(self._annotated(video_id))

    def read(self, video_id: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Frames and labels of annotated frames `indices` of a video.

        Returns:
            Frames ``uint8 [T, H, W, 3]`` RGB and labels ``uint8 [T, H, W]`` (0 = background).

        Raises:
            KeyError: for an unknown video.
            IndexError: for an index outside ``[0, num_frames)``.
            ValueError: when `indices` is empty, frames of the video differ in size, or a mask's size differs
                from its frame's.
        """
        pairs = self._annotated(video_id)
        if len(indices) == 0:
            raise ValueError(f"{self.name}/{video_id}: no frame indices given")
        frames, labels = [], []
        for i in indices:
            if not 0 <= i < len(pairs):
                raise IndexError(f"{self.name}/{video_id}: frame {i} out of range ({len(pairs)} annotated frames)")
            frame_path, mask_path = pairs[i]
            frame = decode_image(frame_path)
            mask = read_label_png(mask_path)
            if mask.shape != frame.shape[:2]:
                raise ValueError(f"{mask_path}: mask is {mask.shape}, its frame {frame_path} is {frame.shape[:2]}")
            if frames and frame.shape != frames[0].shape:
                raise ValueError(f"{frame_path}: frame is {frame.shape[:2]}, earlier frames are {frames[0].shape[:2]}")
            frames.append(frame)
            labels.append(self._to_labels(video_id, mask, mask_path))
        return np.stack(frames), np.stack(labels)  # [T, H, W, 3], [T, H, W]

    def _to_labels(self, video_id: str, raw: np.ndarray, path: Path) -> np.ndarray:
        return raw


class DAVISVideos(_AnnotatedVideos):
    """DAVIS-2017 videos with their instance ids (0 = background) as labels.

    Args:
        root: the DAVIS folder (holding ``JPEGImages/480p``, ``Annotations/480p``, ``ImageSets/2017``).
        split: ``val`` / ``train`` (``ImageSets/2017/<split>.txt``), or '' for every video.

    Raises:
        FileNotFoundError: naming the missing root, folder or split file, or a listed video's missing folder.
    """

    def __init__(self, root: str | Path, split: str = ""):
        root = check_root(root, "davis")
        videos = discover(root, "davis", split)
        dirs = {v: (path, root / "Annotations" / "480p" / v) for v, path, _ in videos}
        super().__init__(name=f"davis/{_split_label(split)}", dirs=dirs)


class YTVOSVideos(_AnnotatedVideos):
    """YouTube-VOS videos with category labels: instance ids mapped through ``meta.json`` (0 = background).

    Args:
        root: the dataset root (layout in the module docstring).
        split: a subfolder (``val1``), a list file relative to `root` (``val1.txt``), or '' for every video.
        kind: dataset name used in :attr:`name` and messages.

    Attributes:
        category_names: category names; category id = index + 1.

    Raises:
        FileNotFoundError: naming the missing root, folder, list file or meta.json, or a listed video's
            missing folder.
        ValueError: when meta.json has no entry for a video, or more than 255 categories; from :meth:`read`,
            for a mask holding an instance id that meta.json does not list.
    """

    def __init__(self, root: str | Path, split: str = "", *, kind: str = "ytvos"):
        root = check_root(root, kind)
        videos = discover(root, "ytvos", split)
        base = root / split if split and not split.endswith(".txt") else root  # as mosic.data.layouts
        dirs = {v: (path, base / "Annotations" / v) for v, path, _ in videos}
        super().__init__(name=f"{kind}/{_split_label(split)}", dirs=dirs)
        meta = read_meta(root, split)
        self.category_names = sorted({o.category for objs in meta.values() for o in objs.values() if o.category})
        if len(self.category_names) > 255:
            raise ValueError(f"{base / 'meta.json'} has {len(self.category_names)} categories; at most 255 fit uint8")
        no_meta = [v for v, _, _ in videos if v not in meta]
        if no_meta:
            raise ValueError(
                f"{base / 'meta.json'} has no entry for {len(no_meta)} of {len(videos)} videos (first: {no_meta[0]})"
            )
        self._luts = {v: self._lut(meta[v]) for v in dirs}

    def _lut(self, objects: dict[int, ObjectMeta]) -> tuple[np.ndarray, np.ndarray]:
        """Instance id -> category id table, and which instance ids are known (0 always is)."""
        ids = {c: i + 1 for i, c in enumerate(self.category_names)}
        lut = np.zeros(256, dtype=np.uint8)
        known = np.zeros(256, dtype=bool)
        known[0] = True
        for instance, obj in objects.items():
            if 0 < instance < 256 and obj.category:
                lut[instance] = ids[obj.category]
                known[instance] = True
        return lut, known

    def _to_labels(self, video_id: str, raw: np.ndarray, path: Path) -> np.ndarray:
        lut, known = self._luts[video_id]
        bad = ~known[raw]
        if bad.any():
            raise ValueError(
                f"{path}: instance ids {np.unique(raw[bad])[:8].tolist()} have no category in meta.json "
                f"(video {video_id})"
            )
        return lut[raw]


def video_dataset(kind: str, root: str | Path, split: str = "") -> VideoSegmentationSet:
    """Open an annotated video set.

    Args:
        kind: ``synthetic`` (the demo videos, categories), ``davis`` (instance ids) or ``ytvos`` (categories).
        root: dataset root (for ``synthetic``, the generator's output folder or its ``ytvos/``).
        split: davis: ``val``; ytvos: a subfolder or a list file (``val1.txt``); '' = every video.

    Returns:
        The set's reader.

    Raises:
        ValueError: for an unknown kind, or a YouTube-VOS meta.json that does not cover the videos.
        FileNotFoundError: naming the missing root, folder, split file or meta.json.
    """
    if kind == "synthetic":
        root = check_root(root, "synthetic")
        return YTVOSVideos(root / "ytvos" if (root / "ytvos").is_dir() else root, split, kind="synthetic")
    if kind == "davis":
        return DAVISVideos(root, split)
    if kind == "ytvos":
        return YTVOSVideos(root, split)
    raise ValueError(f"unknown video dataset kind {kind!r}; accepted: {', '.join(map(repr, VIDEO_KINDS))}")
