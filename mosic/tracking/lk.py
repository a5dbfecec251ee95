"""The default tracker: OpenCV pyramidal Lucas–Kanade, chained frame to frame, with a forward–backward check.

This is a classical tracker, not a learned one, and its visibility means something narrower than
CoTracker's: "the forward–backward check has passed at every step so far and the point is inside the
frame". It is not an occlusion predictor. Its limits, by design:

- **Once lost, a point stays lost.** LK has no appearance model of the query, so it cannot re-acquire a
  point after an occlusion or after it leaves the frame; a lost point is not tracked any further.
- **Lost points hold their last good position.** From the frame it is lost on, a point's position is the
  last position that passed the checks (not an extrapolation: a velocity guess through an occlusion would
  look like data, and consumers weight by visibility anyway). Positions therefore stay finite and inside
  the frame. (TAP-Vid's δ ignores predicted visibility, so it scores a point that LK lost while it was
  still visible as a miss.)
- The forward–backward check catches most occlusions, not all: where an occluder's texture happens to give
  a consistent round trip, the point locks on to the occluder (about 10-15% of covered points in the
  occlusion test of ``tests/tracking/test_lk.py``). A large appearance change near a point (an occluder
  appearing, a black border sliding in) can also pull it off at the coarse pyramid levels, whose window
  spans ``win_size * 2**levels`` pixels of the full image.
- Drift accumulates along the chain (tolerable for the 12-frame clips of the cache, not for long videos).
  With ``track.substep`` (:mod:`mosic.tracking.substep`) the chain runs through the frames between the sampled
  ones (66 steps for 12 frames at step 6): far fewer points are lost to large motions, but drift that passes
  every per-step check can add up (median round-trip error 0.63 px over the real test clips, 1.7-3.1 px on
  paragliding; ``benchmarks/results/substep.md``). Textureless regions, large motions (beyond roughly
  ``win_size / 2 * 2**levels`` px per frame), rotation, scale and appearance change lose points.
- Textureless or constant frames: LK reports failure (OpenCV's status 0) when the smallest eigenvalue of
  the window's structure tensor is below ``min_eig_threshold``, so points on an all-black or constant clip
  are all not visible from frame 1 on and hold their query positions; nothing crashes.

Per step t-1 -> t, for the points still alive (all of them at once: one vectorised OpenCV call each way):

    p_t   = LK(I_{t-1} -> I_t, p_{t-1})                      forward
    p'    = LK(I_t -> I_{t-1}, p_t)                          backward (no initial guess: an honest check)
    alive &= status_fwd & status_bwd & |p' - p_{t-1}|_2 <= fb_threshold & p_t in [0, W-1] x [0, H-1]

(Kalal, Mikolajczyk and Matas 2010, "Forward-backward error: automatic detection of tracking failures").
Measured on 2 shared cores (``benchmarks/tracking.py``, bear.mp4 at 112²-448²): about 33-47 ms per 12-frame
clip for 256 points and 125-176 ms for 1024 points on one thread; a second thread nearly halves it on an idle
machine. Median error about 0.02 px on a sub-pixel translation; δ_avg 87-100 on synthetic similarity warps.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from mosic.geometry import inside_pixel_centres
from mosic.tracking.base import TrackResult, check_clip

logger = logging.getLogger(__name__)

__all__ = ["LKTracker"]


class LKTracker:
    """Chained pyramidal Lucas–Kanade with a forward–backward check (see the module docstring).

    The defaults are the pipeline's (``track.lk`` of ``config.yaml``, chosen on the demo data by
    ``benchmarks/lk_synthetic.py``), so a tracker built here follows points as ``snakemake`` does.

    Args:
        win_size: side of the square LK window in pixels at each pyramid level (odd, >= 3).
        levels: pyramid levels above the full-resolution image (0 = no pyramid); each level doubles the
            largest motion LK can follow.
        fb_threshold: largest forward–backward error in pixels for a point to stay alive.
        max_iter: most Gauss–Newton iterations per level (OpenCV ``TERM_CRITERIA_COUNT``).
        eps: stop iterating when the update is smaller than this many pixels (``TERM_CRITERIA_EPS``).
        min_eig_threshold: OpenCV's failure test: a point fails when the smallest eigenvalue of its window's
            spatial-gradient matrix, divided by the number of window pixels, is below this.
        threads: OpenCV threads while tracking (restored afterwards); None leaves OpenCV's setting alone.
            The default 1 suits the pipeline, which runs one tracking job per core; it does not change
            results (points are independent), so it is not part of :attr:`settings`.
    """

    name = "lk"
    needs_gpu = False

    def __init__(
        self,
        *,
        win_size: int = 21,
        levels: int = 3,
        fb_threshold: float = 4.0,
        max_iter: int = 30,
        eps: float = 0.01,
        min_eig_threshold: float = 1e-4,
        threads: int | None = 1,
    ) -> None:
        if win_size < 3 or win_size % 2 == 0:
            raise ValueError(f"win_size must be odd and >= 3, got {win_size}")
        if levels < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        if not fb_threshold > 0:
            raise ValueError(f"fb_threshold must be > 0, got {fb_threshold}")
        if max_iter < 1 or not eps > 0:
            raise ValueError(f"need max_iter >= 1 and eps > 0, got {max_iter}, {eps}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self.settings: dict[str, Any] = {
            "win_size": int(win_size),
            "levels": int(levels),
            "fb_threshold": float(fb_threshold),
            "max_iter": int(max_iter),
            "eps": float(eps),
            "min_eig_threshold": float(min_eig_threshold),
        }
        self.threads = threads
        self._lk_params = {
            "winSize": (int(win_size), int(win_size)),
            "maxLevel": int(levels),
            "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, int(max_iter), float(eps)),
            "minEigThreshold": float(min_eig_threshold),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"LKTracker({args}, threads={self.threads!r})"

    def track(self, clip: np.ndarray, queries: np.ndarray) -> TrackResult:
        """Track ``queries`` through ``clip``.

        Args:
            clip: uint8 [T, H, W, 3] RGB frames.
            queries: float32 [N, 2] ``(x, y)`` pixel positions on frame 0.

        Returns:
            tracks float32 [T, N, 2] (lost points hold their last good position), visibility bool [T, N]
            (queries outside ``[0, W-1] x [0, H-1]`` are not visible even on frame 0), confidence None.
        """
        clip, queries = check_clip(clip, queries)
        if self.threads is None:
            return self._track(clip, queries)
        previous = cv2.getNumThreads()
        cv2.setNumThreads(self.threads)
        try:
            return self._track(clip, queries)
        finally:
            cv2.setNumThreads(previous)

    def _track(self, clip: np.ndarray, queries: np.ndarray) -> TrackResult:
        T, H, W = clip.shape[:3]
        N = queries.shape[0]
        tracks = np.empty((T, N, 2), dtype=np.float32)
        visibility = np.zeros((T, N), dtype=bool)
        tracks[0] = queries
        alive = inside_pixel_centres(queries, H, W)  # [N]
        visibility[0] = alive
        pos = queries.copy()  # [N, 2] last good position of every point

        prev = cv2.cvtColor(clip[0], cv2.COLOR_RGB2GRAY)
        fb_sq = self.settings["fb_threshold"] ** 2
        for t in range(1, T):
            nxt = cv2.cvtColor(clip[t], cv2.COLOR_RGB2GRAY)
            idx = np.flatnonzero(alive)
            if idx.size:
                p0 = pos[idx].reshape(-1, 1, 2)  # OpenCV's point layout [M, 1, 2]
                p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, nxt, p0, None, **self._lk_params)
                pb, st2, _ = cv2.calcOpticalFlowPyrLK(nxt, prev, p1, None, **self._lk_params)
                p1 = p1.reshape(-1, 2)
                err_sq = ((pb.reshape(-1, 2) - p0.reshape(-1, 2)) ** 2).sum(axis=1)
                # A failed point's p1/pb can be garbage (even nan); every test below is false for nan.
                ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (err_sq <= fb_sq) & inside_pixel_centres(p1, H, W)
                pos[idx[ok]] = p1[ok]
                alive[idx[~ok]] = False
            tracks[t] = pos
            visibility[t] = alive
            prev = nxt
        logger.debug("lk: %d of %d points alive after %d frames", int(alive.sum()), N, T)
        return TrackResult(tracks=tracks, visibility=visibility, confidence=None)
