"""The tracker contract: what every point tracker takes, what it returns, and the query grid it is given.

Trackers are pluggable behind the :class:`Tracker` protocol: the default classical tracker
(:class:`mosic.tracking.lk.LKTracker`, CPU, no weights), the opt-in learned one
(:class:`mosic.tracking.cotracker.CoTracker3Tracker`, GPU) and test fakes. A tracker that can track several clips
in one call (one forward pass of a learned model on a GPU) also follows :class:`BatchTracker`, and the tracking
job hands it ``batch_size`` clips at a time. A tracker that needs to know where
a clip comes from rather than (only) its pixels — the synthetic dataset's exact tracks,
:class:`mosic.tracking.ground_truth.GroundTruthTracker` — also follows :class:`SourceTracker`, and the tracking
job gives it the clip's video id and frame indices. :func:`make_tracker` builds one by the name used in
``config.yaml``; imports are lazy so that choosing ``lk`` never imports torch.

Coordinate convention (this is where track data is born; every consumer relies on it):

- Points are ``(x, y)`` in pixels of the clip as given to the tracker, x (column) before y (row).
- Origin at the top-left; pixel centres at integer coordinates, so pixel ``[row, col]`` is the point
  ``(x=col, y=row)`` and the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. This is OpenCV's and
  CoTracker's convention; TAP-Vid files put (0, 0) at the *corner* of the top-left pixel (shift by 0.5).
- Queries all live on frame 0. ``tracks[0]`` equals the queries.
- Visibility: a point is visible at frame t when the tracker believes it sees the queried surface point there *and*
  the point lies inside ``[0, W - 1] x [0, H - 1]`` (the square spanned by the pixel centres, where bilinear
  sampling needs no padding: :func:`mosic.geometry.inside_pixel_centres`). A point outside that square is never
  visible. Positions of not-visible points are still finite numbers (each tracker documents what they hold), so
  consumers can index arrays without nan checks but must weight by visibility."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "TRACKERS",
    "TrackResult",
    "Tracker",
    "BatchTracker",
    "SourceTracker",
    "check_clip",
    "make_tracker",
]

# Names accepted by make_tracker (and by the track section of config.yaml).
TRACKERS: tuple[str, ...] = ("lk", "cotracker3", "ground_truth")


# eq=False: field-wise == on numpy arrays is ambiguous; compare the arrays explicitly.
@dataclass(frozen=True, kw_only=True, eq=False)
class TrackResult:
    """Tracks of N query points through a T-frame clip (see the module docstring for the convention).

    Attributes:
        tracks: float32 [T, N, 2], ``(x, y)`` pixel positions; ``tracks[0]`` are the queries. Finite everywhere.
        visibility: bool [T, N], true where the point is tracked, not occluded and inside
            ``[0, W - 1] x [0, H - 1]``.
        confidence: float32 [T, N] in [0, 1], the score that ``visibility`` thresholds (for CoTracker3 a
            visibility probability), or None for trackers that have no such score (LK).
    """

    tracks: np.ndarray
    visibility: np.ndarray
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Checked once here so that every tracker (and every fake) is held to the same contract.
        if self.tracks.dtype != np.float32 or self.tracks.ndim != 3 or self.tracks.shape[-1] != 2:
            raise ValueError(f"tracks must be float32 [T, N, 2], got {self.tracks.dtype} {self.tracks.shape}")
        if self.visibility.dtype != np.bool_ or self.visibility.shape != self.tracks.shape[:2]:
            raise ValueError(
                f"visibility must be bool {self.tracks.shape[:2]}, got {self.visibility.dtype} {self.visibility.shape}"
            )
        if self.confidence is not None and (
            self.confidence.dtype != np.float32 or self.confidence.shape != self.tracks.shape[:2]
        ):
            raise ValueError(
                f"confidence must be float32 {self.tracks.shape[:2]}, got {self.confidence.dtype} "
                f"{self.confidence.shape}"
            )

    @property
    def num_frames(self) -> int:
        """T."""
        return self.tracks.shape[0]

    @property
    def num_points(self) -> int:
        """N."""
        return self.tracks.shape[1]


@runtime_checkable
class Tracker(Protocol):
    """A point tracker: follows query points given on frame 0 through a clip.

    Attributes:
        name: the name :func:`make_tracker` knows it by (recorded in the track store).
        settings: every setting that can change the output, JSON-serialisable; recorded in the store next
            to ``name`` so a cache says exactly how it was made. Runtime knobs that cannot change the
            output (thread counts, device) are not part of it.
        needs_gpu: true when the tracker is only practical on a GPU (the workflow schedules it there).
    """

    name: str
    settings: dict[str, Any]
    needs_gpu: bool

    def track(self, clip: np.ndarray, queries: np.ndarray) -> TrackResult:
        """Track ``queries`` through ``clip``.

        Args:
            clip: uint8 [T, H, W, 3] RGB frames.
            queries: float32 [N, 2] ``(x, y)`` pixel positions on frame 0.

        Returns:
            The tracks, with ``tracks[0] == queries``.
        """
        ...


@runtime_checkable
class BatchTracker(Tracker, Protocol):
    """A :class:`Tracker` that also tracks several clips in one call, e.g. one batched forward pass on a GPU.

    Attributes:
        batch_size: the most clips :meth:`track_batch` runs at once; the tracking job gathers this many clips
            before calling it. A runtime knob like the device, so not part of ``settings``.
    """

    batch_size: int

    def track_batch(self, clips: Sequence[np.ndarray], queries: np.ndarray) -> list[TrackResult]:
        """Track the same ``queries`` through each clip; equal, up to float rounding, to one :meth:`track` per clip.

        Args:
            clips: uint8 [T_b, H_b, W_b, 3] RGB frames each; clips may differ in shape (the tracker groups them).
            queries: float32 [N, 2] ``(x, y)`` pixel positions on frame 0 of every clip.

        Returns:
            One result per clip, in the order of ``clips``.
        """
        ...


@runtime_checkable
class SourceTracker(Protocol):
    """A tracker that reads where a clip comes from (video id and frame indices), e.g. ground truth from a
    synthetic scene; the tracking job calls :meth:`track_source` instead of :meth:`Tracker.track` for it.

    Attributes:
        name, settings, needs_gpu: as for :class:`Tracker`.
    """

    name: str
    settings: dict[str, Any]
    needs_gpu: bool

    def track_source(
        self, clip: np.ndarray, queries: np.ndarray, *, video_id: str, frame_indices: np.ndarray
    ) -> TrackResult:
        """Track ``queries`` through ``clip``, frames ``frame_indices`` of video ``video_id``.

        Args:
            clip: uint8 [T, H, W, 3] RGB frames.
            queries: float32 [N, 2] ``(x, y)`` pixel positions on frame 0.
            video_id: the clip's video.
            frame_indices: int [T] the clip's frames in that video.

        Returns:
            The tracks, with ``tracks[0] == queries``.
        """
        ...


def check_clip(clip: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate tracker inputs and return them as contiguous uint8 / float32 arrays.

    Args:
        clip: uint8 [T, H, W, 3] RGB, T >= 1.
        queries: float [N, 2] ``(x, y)`` on frame 0, finite.

    Returns:
        ``(clip, queries)`` as C-contiguous uint8 [T, H, W, 3] and float32 [N, 2].

    Raises:
        ValueError: on a wrong shape, dtype or non-finite query.
    """
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 1:
        raise ValueError(f"clip must be uint8 [T, H, W, 3] RGB with T >= 1, got {clip.dtype} {clip.shape}")
    queries = np.asarray(queries)
    if queries.ndim != 2 or queries.shape[1] != 2:
        raise ValueError(f"queries must be [N, 2] (x, y), got {queries.shape}")
    if not np.isfinite(queries).all():
        raise ValueError("queries must be finite")
    return np.ascontiguousarray(clip), np.ascontiguousarray(queries, dtype=np.float32)


def make_tracker(name: str, **settings: Any) -> Tracker:
    """Build a tracker by name.

    Args:
        name: ``"lk"`` (:class:`mosic.tracking.lk.LKTracker`), ``"cotracker3"``
            (:class:`mosic.tracking.cotracker.CoTracker3Tracker`) or ``"ground_truth"``
            (:class:`mosic.tracking.ground_truth.GroundTruthTracker`, setting ``scenes_dir``).
        **settings: keyword arguments of that tracker's constructor.

    Returns:
        The tracker.

    Raises:
        ValueError: for an unknown name.
        TypeError: for a setting the tracker does not have.
    """
    # Imported here so that `lk` never pulls in torch and `cotracker3` is only touched when chosen.
    if name == "lk":
        from mosic.tracking.lk import LKTracker

        return LKTracker(**settings)
    if name == "cotracker3":
        from mosic.tracking.cotracker import CoTracker3Tracker

        return CoTracker3Tracker(**settings)
    if name == "ground_truth":
        from mosic.tracking.ground_truth import GroundTruthTracker

        return GroundTruthTracker(**settings)
    raise ValueError(f"unknown tracker {name!r}; expected one of {', '.join(TRACKERS)}")
