"""The ground-truth tracker: exact tracks and visibility of the synthetic dataset instead of estimated ones.

For synthetic data the pipeline knows where every point goes: :func:`mosic.data.synthetic.ground_truth_tracks`
computes it from the scene's transforms. :class:`GroundTruthTracker` (``track.tracker: ground_truth``) puts
those tracks into the cache, so training can be run on perfect correspondences (an upper bound for a learned
or classical tracker, and a way to use fast motion or large clip steps that LK cannot follow).

It reads, rather than re-draws, each video's scene: the generator writes ``ytvos/Scenes/<video>.json`` next to
the frames (:func:`mosic.data.synthetic.save_scene`), and the tracker reloads it. So the tracks always belong to
the frames on disk whatever the current ``synthetic`` config says, and data that did not come from the
generator fails with an error naming the video and the missing file, never with made-up tracks.

Coordinates: the cache holds frames resized to ``track.height x track.width``; a query in cache pixels maps to
the source video by the resize of pixel centres, ``x_src = (x + 0.5) * W_src / W - 0.5`` (same for y), and
the exact tracks map back the same way (:func:`clip_ground_truth`). Visibility is the scene's (inside the frame
and the point's own surface on top) and, as the :mod:`mosic.tracking.base` contract requires, inside the
square of pixel centres ``[0, W - 1] x [0, H - 1]`` of the cache.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mosic.data.synthetic import SCENE_FORMAT, Scene, ground_truth_tracks, load_scene
from mosic.geometry import inside_pixel_centres
from mosic.tracking.base import TrackResult, check_clip

logger = logging.getLogger(__name__)

__all__ = ["GroundTruthTracker", "MissingSceneError", "clip_ground_truth"]


class MissingSceneError(FileNotFoundError):
    """A video has no scene description: the data was not made by the synthetic generator."""


def clip_ground_truth(
    scene: Scene, frame_indices: np.ndarray, queries: np.ndarray, cache_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Exact tracks of cache-pixel `queries` laid on the first frame of a clip.

    Args:
        scene: the synthetic scene the clip was cut from.
        frame_indices: int [T] source frames of the clip.
        queries: float32 [N, 2] (x, y) in cache pixels at the clip's first frame.
        cache_size: ``(height, width)`` of the cached frames.

    Returns:
        tracks float32 [T, N, 2] (x, y) in cache pixels, visibility bool [T, N] (the scene's rule: inside
        ``[-0.5, W - 0.5)`` of the source frame and the point's own surface on top).
    """
    h, w = cache_size
    sx, sy = scene.width / w, scene.height / h
    src = np.stack([(queries[:, 0] + 0.5) * sx - 0.5, (queries[:, 1] + 0.5) * sy - 0.5], axis=-1)
    tracks, vis = ground_truth_tracks(scene, src.astype(np.float32), query_frame=int(frame_indices[0]))
    tracks, vis = tracks[frame_indices], vis[frame_indices]  # [T, N, 2], [T, N]
    out = np.stack([(tracks[..., 0] + 0.5) / sx - 0.5, (tracks[..., 1] + 0.5) / sy - 0.5], axis=-1)
    return out.astype(np.float32), vis


class GroundTruthTracker:
    """Exact tracks of the synthetic dataset, read from its scene descriptions (see the module docstring).

    It follows the :class:`mosic.tracking.base.SourceTracker` protocol: the tracking job calls
    :meth:`track_source` with the clip's video id and frame indices; :meth:`track`, which gets pixels only,
    cannot know them and raises.

    Args:
        scenes_dir: the dataset's ``Scenes/`` folder (``<out_dir>/<dataset>/data/ytvos/Scenes`` for the demo).
    """

    name = "ground_truth"
    needs_gpu = False

    def __init__(self, scenes_dir: str | Path) -> None:
        self.scenes_dir = Path(scenes_dir)
        # Nothing but the scenes decides the output; the format says which generator wrote them.
        self.settings: dict[str, Any] = {"scene_format": SCENE_FORMAT}
        self._scenes: dict[str, Scene] = {}

    def scene(self, video_id: str) -> Scene:
        """The scene of a video (loaded once).

        Raises:
            MissingSceneError: naming the video and the file when there is no scene description.
            ValueError: when the file is not a scene (or one of an older format).
        """
        if video_id not in self._scenes:
            path = self.scenes_dir / f"{video_id}.json"
            if not path.is_file():
                raise MissingSceneError(
                    f"video {video_id!r} has no scene description {path}: track.tracker 'ground_truth' works only on "
                    "data written by the synthetic generator (dataset.kind: synthetic), which stores one per video"
                )
            self._scenes[video_id] = load_scene(path)
        return self._scenes[video_id]

    def track_source(
        self, clip: np.ndarray, queries: np.ndarray, *, video_id: str, frame_indices: np.ndarray
    ) -> TrackResult:
        """Exact tracks of ``queries`` through a clip of video ``video_id``.

        Args:
            clip: uint8 [T, H, W, 3] RGB frames at the cache resolution (only their size is used).
            queries: float32 [N, 2] ``(x, y)`` cache-pixel positions on frame 0.
            video_id: the video the clip was cut from.
            frame_indices: int [T] the clip's frames in the video.

        Returns:
            The tracks; ``tracks[0]`` are the queries.

        Raises:
            MissingSceneError: when the video has no scene description.
            ValueError: when the clip's frames are not frames of the scene.
        """
        clip, queries = check_clip(clip, queries)
        frame_indices = np.asarray(frame_indices, dtype=np.int64)
        scene = self.scene(video_id)
        if len(frame_indices) != clip.shape[0] or frame_indices.min() < 0 or frame_indices.max() >= scene.num_frames:
            raise ValueError(
                f"video {video_id!r}: clip frames {frame_indices.tolist()} are not frames of its scene "
                f"({self.scenes_dir / f'{video_id}.json'}, {scene.num_frames} frames) for a {clip.shape[0]}-frame clip"
            )
        h, w = clip.shape[1:3]
        tracks, visibility = clip_ground_truth(scene, frame_indices, queries, (h, w))
        tracks[0] = queries  # exact, not up to the rounding of the round trip through source pixels
        return TrackResult(tracks=tracks, visibility=visibility & inside_pixel_centres(tracks, h, w))

    def track(self, clip: np.ndarray, queries: np.ndarray) -> TrackResult:
        """Not possible from pixels alone: the ground truth needs the clip's video and frames (:meth:`track_source`).

        Raises:
            TypeError: always.
        """
        raise TypeError(
            "the ground_truth tracker needs the clip's video id and frame indices: call "
            "track_source(clip, queries, video_id=..., frame_indices=...) (the tracking job does)"
        )
