"""Training clips from the track store: shared spatial augmentation, point sampling, track controls and the loader.

:class:`TrainClips` turns clip ``g`` of a :class:`mosic.store.TrackStore` into one training item:

1. one random resized crop for all T frames (torchvision's algorithm: area ``U(crop_scale, 1)``, ratio
   ``[3/4, 4/3]``, 10 tries then a centre crop), taken at the cache resolution and resized to
   ``input_size x input_size`` (bilinear, antialiased, one call for all frames);
2. a horizontal flip of every frame with p = 0.5 when ``flip`` (the original code's flip never fires, spec §1.3;
   the ``faithful`` preset turns it off);
3. the tracks mapped exactly into the resized crop (:mod:`mosic.data.augment`); a point outside the crop at frame
   t is not visible at t;
4. N points sampled without replacement among the cached points that are visible and inside the crop at frame 0
   (``points: moving`` takes the points that move against the clip's median motion first, see below);
5. the track source: the cached tracks, or one of the two controls (``static``, ``shuffled``; see below);
6. normalisation ``(x / 255 - mean) / std`` of the teacher's view of the step's frames and of the student's view
   of frame 0 (of each of the step's frames for the symmetric loss), with the photometric augmentation on the
   student's view only.

Where each step runs: the item (a loader worker, or the training process with ``workers = 0``) reads the clip,
draws the crop, the flip and the photometric parameters, and does steps 3-5 (a few thousand points); it hands
over the frames as they are stored, uint8 at the cache resolution, with the draws (:class:`RawBatch` once
collated). That is 3.3x fewer bytes through shared memory and the pinned copy than the float32 views at 224 px
from a 256 px cache, 13x fewer from a 128 px cache. The teacher encodes frame 0 and ``train.teacher_frames - 1``
others (:func:`teacher_frame_indices`, drawn from the step's seed, :func:`step_seed`), and the loader's sampler
tells each item its step (:class:`EpochDistributedSampler`), so an item reads and sends only those frames (and
their tracks, cut after the points were drawn on every frame): with the demo's 4 of 12 frames, a third of the
bytes again. The pixel work of steps 1, 2 and 6 runs on a whole batch on the training device, after the batch is
moved there: :class:`DeviceTransform`, which :attr:`TrainClips.transform` holds (the crop and resize clip by
clip, the rest batched); it makes the views of the step's frames, which the loop passes and which must be among
those the batch holds (every frame is processed alone: the views are bit for bit those of all frames cut to the
step's). On the CPU its output is bit for bit what the same operations give one clip at a time in a loader
worker (tests/train/test_train_data.py).

Coordinates (the data contract, ``DESIGN.md``): ``tracks[..., t, n] = (x, y)`` in pixels of the
``input_size x input_size`` input, pixel centres at integer coordinates, origin top-left, so the image covers
``[-0.5, S - 0.5]``. Visible points always satisfy ``-0.5 <= x, y < S - 0.5`` (their nearest pixel is a valid
index). Points that are not visible keep their exact mapped position, which may lie outside the image (the
gather clamps); a position the store could not decode (NaN) is replaced by the image centre.

Points (decisions):

- *Padding.* When fewer than N points qualify, every qualifying point is taken once (in random order) and the
  remaining slots repeat qualifying points drawn with replacement, marked **not visible at every frame**,
  frame 0 included, so they carry no loss term and no Sinkhorn mass. When none qualify, all N slots sit at the
  image centre and are not visible. A padded or empty slot is never visible, so nothing is fabricated.
- *Moving first* (``points = "moving"``). A point *moves* when, at some frame where it is visible (and inside the
  crop), its displacement since frame 0 differs from the median displacement of the qualifying points visible
  there (the camera's motion, when the points that move on their own are fewer than half) by more than
  ``moving_threshold`` input pixels (:func:`independent_motion`). The N points are the moving ones (all of them
  when fewer than N, else N drawn at random), then as many of the others, drawn at random, as fill N. On data
  where most of the frame is background this puts most terms on the objects, where following a point differs
  from staying put; with ``uniform`` (the original) every qualifying point is equally likely. The choice reads
  the cached tracks, so the controls below take the same points as the tracked run, then change their motion.
- *Static* (no-motion control): every frame's position is the frame-0 position and the sampled points are
  visible at every frame (as if the scene did not move; padded slots stay not visible).
- *Shuffled* (wrong-correspondence control): frame 0 is kept; frames t >= 1 of each sampled point (positions and
  visibility) are those of another sampled point, by a uniformly random cyclic permutation of the sampled points
  (a derangement, so no point keeps its own trajectory). A lone sampled point has no other point: it is then not
  visible at t >= 1.

Determinism: every random draw of item ``i`` in epoch ``e`` comes from ``np.random.default_rng([seed, e, i, k])``
with one stream ``k`` per concern (0: crop and flip, 1: points and shuffle, 2: photometric), so an item depends
on ``(seed, epoch, index)`` only, not on the worker, the worker count or the rank that computes it, and turning
an option on or off (flip, photometric, a track control) leaves the other draws unchanged. Every draw is made
in the item; :class:`DeviceTransform` draws nothing and treats each clip alone, so a clip's views do not depend
on the other clips of its batch either. The epoch travels with the index: the sampler of :func:`make_loader`
yields ``(epoch, index)`` pairs, which persistent workers need (their copy of the dataset does not see
:meth:`TrainClips.set_epoch` calls made in the main process); a plain integer index uses the epoch last given to
:meth:`TrainClips.set_epoch`.
"""

from __future__ import annotations

import itertools
import logging
import random
import weakref
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate, get_worker_info

from mosic.data.augment import (
    CropBox,
    Photometric,
    apply_photometric_batch,
    crop_resize_frames,
    map_points,
    random_resized_crop_box,
    sample_photometric,
)
from mosic.geometry import inside_image
from mosic.store import TrackStore

__all__ = [
    "ClipBatch",
    "DeviceTransform",
    "RawBatch",
    "SlotBatch",
    "SlotPool",
    "TrainClips",
    "collate",
    "independent_motion",
    "make_loader",
    "step_seed",
    "teacher_frame_indices",
]


_STREAM_GEOMETRY, _STREAM_POINTS, _STREAM_PHOTOMETRIC = 0, 1, 2
_PREFETCH = 2  # batches each loader worker works ahead (DataLoader's prefetch_factor)
_log = logging.getLogger(__name__)


def step_seed(seed: int, step: int) -> int:
    """The seed of every random draw of training step `step` (0-based) of a run seeded `seed`.

    It depends on neither the rank nor the process count: every rank draws the same teacher frames, and each clip's
    mask depends on the step and the clip (:func:`mosic.train.step.clip_masks`), so N processes train as one does.
    """
    return int(np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def teacher_frame_indices(num_frames: int, teacher_frames: int, seed: int) -> Tensor:
    """The frames the teacher encodes at a step: long [T'] on the CPU, ascending, frame 0 first.

    Frame 0 plus ``teacher_frames - 1`` others drawn without replacement from ``torch.Generator().manual_seed(seed)``
    (``randperm`` of frames 1..T-1, the first ``teacher_frames - 1`` of it, sorted); every frame when
    `teacher_frames` is 0 or at least `num_frames`. It depends only on its arguments, so every rank draws the same
    frames from the step's seed (:func:`step_seed`), and the loop makes the views of these frames only
    (:class:`DeviceTransform`).

    Args:
        num_frames: T, the frames of a clip.
        teacher_frames: ``train.teacher_frames`` (0 = all).
        seed: the step's seed.
    """
    if not 0 < teacher_frames < num_frames:
        return torch.arange(num_frames)
    others = torch.randperm(num_frames - 1, generator=torch.Generator().manual_seed(seed))[: teacher_frames - 1] + 1
    return torch.cat([torch.zeros(1, dtype=torch.long), others.sort().values])


def independent_motion(tracks: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """How far each point moves on its own: float [N], the largest distance in pixels, over the frames where the
    point is visible as it is at frame 0, between its displacement since frame 0 and the median displacement of
    the points visible at frame 0 and at that frame (the motion they share, e.g. a camera pan, when the points
    that move on their own are fewer than half). 0 for a point seen at no frame after frame 0 (or not at frame 0).

    Args:
        tracks: float [T, N, 2] positions (non-finite where unknown: treated as not visible).
        visible: bool [T, N].
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    both = np.asarray(visible, dtype=bool) & visible[:1] & np.isfinite(tracks).all(-1)
    moved = np.zeros(tracks.shape[1])
    for t in range(1, tracks.shape[0]):
        seen = both[t]
        if not seen.any():
            continue
        disp = tracks[t, seen] - tracks[0, seen]
        moved[seen] = np.maximum(moved[seen], np.linalg.norm(disp - np.median(disp, axis=0), axis=-1))
    return moved


@dataclass(frozen=True, kw_only=True)
class ClipBatch:
    """The views of B clips at T frames with N points, ready for :func:`mosic.train.step.mosic_step`.

    Made on the training device by :class:`DeviceTransform` from a :class:`RawBatch`, of the step's T frames
    (frame 0 and the teacher's others; all of a clip's frames when every frame is asked for).

    Coordinates: ``tracks[b, t, n] = (x, y)`` in pixels of the ``S_in x S_in`` input, pixel centres at integer
    coordinates, origin top-left; features are indexed ``[row = y, col = x]``.

    Attributes:
        video: float32 [B, T, 3, S_in, S_in], the teacher's view of each frame, normalised.
        student: float32 [B, 3, S_in, S_in], the student's view of frame 0, normalised (photometrically
            augmented when the augmentation is on, else ``video[:, 0]``).
        student_all: float32 [B, T, 3, S_in, S_in], the student's view of each frame (symmetric loss), or None.
        tracks: float32 [B, T, N, 2], (x, y) of the sampled points.
        visibility: bool [B, T, N]; True at frame 0 for every sampled (not padded) point.
        clip_ids: int64 [B], the clips' global indices in the store (on the CPU: :meth:`to` leaves them there).
    """

    video: Tensor
    student: Tensor
    student_all: Tensor | None
    tracks: Tensor
    visibility: Tensor
    clip_ids: Tensor

    def select_frames(self, frames: Tensor) -> ClipBatch:
        """The batch cut to `frames` (long [T'], frame 0 first): ``video``, ``student_all``, ``tracks`` and
        ``visibility`` at those frames; the student's view of frame 0 and the clip ids as they are.

        For a batch made with views of every frame (:class:`DeviceTransform` makes those of the selected frames
        only when given them, with the same result).
        """
        index = frames.to(self.video.device)
        video = self.video[:, index]
        student_all = None if self.student_all is None else self.student_all[:, index]
        if self.student_all is self.video:  # no photometric augmentation: one tensor serves both views
            student_all = video
        return replace(self, video=video, student_all=student_all, tracks=self.tracks[:, index],
                       visibility=self.visibility[:, index])  # fmt: skip

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        """The batch on `device`; ``clip_ids`` stay on the CPU (the step draws masks from them on the host, and
        reading them back from a GPU would make the host wait)."""

        def move(x: Tensor) -> Tensor:
            return x.to(device, non_blocking=non_blocking)

        video = move(self.video)
        if self.student_all is None:
            student_all = None
        elif self.student_all is self.video:  # no photometric augmentation: one tensor serves both views
            student_all = video
        else:
            student_all = move(self.student_all)
        return replace(self, video=video, student=move(self.student), student_all=student_all,
                       tracks=move(self.tracks), visibility=move(self.visibility))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RawBatch:
    """A batch as the loader yields it: the clips' stored frames and tracks, and every random draw of their views.

    Attributes:
        frames: uint8 [B, T, H, W, 3], the frames at the cache resolution, as stored (T: the frames the batch
            holds, ``frame_indices``).
        boxes: B crops of the cache frames (one per clip, shared by its T frames).
        flips: B horizontal flips.
        photometric: B photometric draws for the student's view, or None when the augmentation is off.
        tracks: float32 [B, T, N, 2], (x, y) of the sampled points in pixels of the ``S_in x S_in`` input (already
            mapped through each clip's crop and flip; :class:`ClipBatch`'s convention).
        visibility: bool [B, T, N]; True at frame 0 for every sampled (not padded) point.
        clip_ids: int64 [B], the clips' global indices in the store.
        frame_indices: long [T] on the CPU, which of the clips' frames the batch holds (a step's teacher frames
            when the loader knew the step; :meth:`TrainClips.frames_of_step`), or None for all of them, in order.

    The draws are host-side Python values: :meth:`to` moves the tensors (``clip_ids`` excepted) and
    :class:`DeviceTransform` reads the draws without waiting for the device.
    """

    frames: Tensor
    boxes: tuple[CropBox, ...]
    flips: tuple[bool, ...]
    photometric: tuple[Photometric, ...] | None
    tracks: Tensor
    visibility: Tensor
    clip_ids: Tensor
    frame_indices: Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> RawBatch:
        """The batch's frames, tracks and visibility on `device`; ``clip_ids`` stay on the CPU (see
        :meth:`ClipBatch.to`)."""
        return replace(self, frames=self.frames.to(device, non_blocking=non_blocking),
                       tracks=self.tracks.to(device, non_blocking=non_blocking),
                       visibility=self.visibility.to(device, non_blocking=non_blocking))  # fmt: skip

    def pin_memory(self) -> RawBatch:
        """The batch in pinned host memory (called by ``DataLoader(pin_memory=True)``)."""
        return replace(self, frames=self.frames.pin_memory(), tracks=self.tracks.pin_memory(),
                       visibility=self.visibility.pin_memory(), clip_ids=self.clip_ids.pin_memory())  # fmt: skip


class DeviceTransform:
    """Steps 1, 2 and 6 of the module docstring on a :class:`RawBatch`, on the device that holds its frames.

    Each clip is cropped and resized alone (:func:`mosic.data.augment.crop_resize_frames`: crops differ in size)
    and flipped; normalisation of the whole batch and the batched photometric augmentation
    (:func:`mosic.data.augment.apply_photometric_batch`) follow. Nothing is drawn here. Called with the step's
    frames, it makes the views of those frames only (:meth:`__call__`).

    Normalisation: ``(x / 255 - mean) / std`` as one multiply-add on 0-255 pixels,
    ``x * (1 / (255 std)) - mean / std``.

    Args:
        input_size: S_in, the side of the square views in pixels.
        mean: normalisation mean per RGB channel (of pixels scaled to [0, 1]).
        std: normalisation std per RGB channel.
        student_all_frames: also make the student's view of each of the step's frames (``student_all``).
    """

    def __init__(
        self,
        *,
        input_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        student_all_frames: bool,
    ) -> None:
        self.input_size = input_size
        self.student_all_frames = student_all_frames
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(3, 1, 1)
        self._shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(3, 1, 1)
        self._on_device: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def _normalise_(self, pixels: Tensor) -> Tensor:
        """float32 0-255 pixels [..., 3, S, S] normalised in place."""
        if pixels.device not in self._on_device:
            self._on_device[pixels.device] = (self._scale.to(pixels.device), self._shift.to(pixels.device))
        scale, shift = self._on_device[pixels.device]
        return pixels.mul_(scale).add_(shift)

    def __call__(self, batch: RawBatch, frames: Tensor | None = None) -> ClipBatch:
        """The normalised views (shapes in :class:`ClipBatch`) of `frames`, on the device of ``batch.frames``.

        Args:
            batch: the loader's batch, on the training device.
            frames: long [T'] on the CPU, the frames to make views of (indices into the clip's frames), frame 0
                first: the step's teacher frames (:func:`teacher_frame_indices`), which must be among the frames the
                batch holds (``batch.frame_indices``); None = every frame the batch holds. Only these frames are
                cropped, resized, flipped, normalised and augmented, and the tracks and visibility are cut to them;
                every frame is processed alone, so the result is bit for bit that of all T frames followed by
                :meth:`ClipBatch.select_frames` (tests/train/test_train_data.py). The student's view of frame 0
                is the same either way.

        Raises:
            ValueError: when `frames` is not a non-empty 1-D index of the clips' frames that starts with frame 0, or
                names a frame the batch does not hold.
        """
        b, t = batch.frames.shape[:2]
        s = self.input_size
        clips, tracks, visibility = batch.frames, batch.tracks, batch.visibility
        held = torch.arange(t) if batch.frame_indices is None else batch.frame_indices.cpu()
        if frames is not None:
            frames = torch.as_tensor(frames, dtype=torch.long).cpu()
            bad = frames.ndim != 1 or len(frames) == 0 or int(frames[0]) != 0
            if bad or int(frames.min()) < 0:
                raise ValueError(f"frames must index the frames of a clip, frame 0 first; got {frames.tolist()}")
            where = {int(f): k for k, f in enumerate(held)}
            if any(int(f) not in where for f in frames):
                raise ValueError(
                    f"the step's frames {frames.tolist()} are not among the {held.tolist()} the batch holds (the "
                    "loader and the training loop disagree on the step)"
                )
            position = torch.tensor([where[int(f)] for f in frames])
            if not torch.equal(position, torch.arange(t)):  # all frames the batch holds, in order: nothing to select
                index = position.to(clips.device, non_blocking=True)
                clips, t = clips.index_select(1, index), len(frames)
                tracks, visibility = tracks.index_select(1, index), visibility.index_select(1, index)
        # float32 0-255: copy_ converts each clip's uint8 channels-last pixels in one pass (a mixed-dtype multiply
        # straight from uint8 takes twice as long on the CPU).
        pixels = torch.empty((b, t, 3, s, s), dtype=torch.float32, device=clips.device)
        for k, (box, flip) in enumerate(zip(batch.boxes, batch.flips, strict=True)):
            pixels[k].copy_(crop_resize_frames(clips[k], box, s, flip))
        student_all = None
        if batch.photometric is not None:
            viewed = pixels[:, : t if self.student_all_frames else 1].div(255.0)
            student = self._normalise_(apply_photometric_batch(viewed, batch.photometric).mul_(255.0))
            video = self._normalise_(pixels)
            if self.student_all_frames:
                student_all = student
            student = student[:, 0]
        else:
            video = self._normalise_(pixels)
            student = video[:, 0]
            if self.student_all_frames:
                student_all = video
        return ClipBatch(video=video, student=student, student_all=student_all, tracks=tracks, visibility=visibility,
                         clip_ids=batch.clip_ids)  # fmt: skip


class TrainClips(Dataset):
    """The training items of a track store (see the module docstring for every step and decision).

    Args:
        store: the cached clips; item ``i`` is the store's global clip ``i``.
        input_size: S_in, the side of the square input in pixels.
        num_points: N, points sampled per clip.
        crop_scale: smallest area fraction of the random resized crop (1 = no crop, only the ratio jitter).
        flip: flip every frame of a clip horizontally with p = 0.5.
        mean: normalisation mean per RGB channel (of pixels scaled to [0, 1]).
        std: normalisation std per RGB channel.
        track_source: ``cached``, or the controls ``static`` and ``shuffled``.
        points: ``uniform`` (every qualifying point equally likely; the original) or ``moving`` (the points that move
            against the clip's median motion first; module docstring).
        moving_threshold: with ``moving``, the least distance in input pixels a point's own motion must reach
            (:func:`independent_motion`).
        teacher_frames: ``train.teacher_frames``: an item of a known step (index ``(epoch, i, step)``, as the
            sampler of :func:`make_loader` yields them) holds only that step's frames (:meth:`frames_of_step`):
            only their bytes are read from the store and sent through the loader. 0 = every frame.
        photometric: colour jitter (brightness, contrast, saturation 0.4, hue 0.1; p 0.8), grayscale (p 0.2) and
            Gaussian blur (p 0.5) on the student's view.
        student_all_frames: also make the student's view of each of the step's frames (``student_all``).
        seed: the base of every random draw.

    Items are dicts: ``frames`` uint8 [T', H, W, 3] (the stored frames the item holds), ``box``
    (:class:`CropBox`), ``flip`` (bool), ``photometric`` (:class:`~mosic.data.augment.Photometric`, only with
    `photometric`), ``tracks`` float32 [T', N, 2], ``visibility`` bool [T', N], ``clip_id`` int64 [] and
    ``frame_index`` long [T'], which of the clip's T frames those are (all T unless the index names a step and
    `teacher_frames` is set). :func:`collate` makes a :class:`RawBatch` of them and :attr:`transform` (a
    :class:`DeviceTransform`) its views.
    """

    def __init__(
        self,
        store: TrackStore,
        *,
        input_size: int,
        num_points: int,
        crop_scale: float,
        flip: bool,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        track_source: Literal["cached", "shuffled", "static"],
        photometric: bool,
        student_all_frames: bool,
        seed: int,
        points: Literal["uniform", "moving"] = "uniform",
        moving_threshold: float = 8.0,
        teacher_frames: int = 0,
    ) -> None:
        if input_size < 1 or num_points < 1:
            raise ValueError(f"input_size and num_points must be >= 1, got {input_size} and {num_points}")
        if not 0.0 < crop_scale <= 1.0:
            raise ValueError(f"crop_scale must be in (0, 1], got {crop_scale}")
        if track_source not in ("cached", "shuffled", "static"):
            raise ValueError(f"track_source must be cached, shuffled or static, got {track_source!r}")
        if teacher_frames < 0:
            raise ValueError(f"teacher_frames must be >= 0, got {teacher_frames}")
        if points not in ("uniform", "moving"):
            raise ValueError(f"points must be uniform or moving, got {points!r}")
        if not moving_threshold >= 0:
            raise ValueError(f"moving_threshold must be >= 0, got {moving_threshold}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 channels and std > 0, got {mean} and {std}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.store = store
        self.input_size = input_size
        self.num_points = num_points
        self.crop_scale = crop_scale
        self.flip = flip
        self.track_source = track_source
        self.points = points
        self.teacher_frames = teacher_frames
        self.moving_threshold = float(moving_threshold)
        self.photometric = photometric
        self.seed = seed
        self.epoch = 0
        self.transform = DeviceTransform(
            input_size=input_size, mean=mean, std=std, student_all_frames=student_all_frames
        )

    def __len__(self) -> int:
        return len(self.store)

    def set_epoch(self, epoch: int) -> None:
        """The epoch used by plain integer indices (the loader's sampler passes the epoch with each index)."""
        self.epoch = int(epoch)

    def _rng(self, epoch: int, i: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, i, stream])

    @property
    def num_frames(self) -> int:
        """T, the frames of every cached clip."""
        return self.store.num_frames

    def frames_of_step(self, step: int | None) -> Tensor:
        """The frames an item of training step `step` holds: long [T'], the step's teacher frames
        (:func:`teacher_frame_indices` from :func:`step_seed` of the dataset's seed, as the training loop draws
        them) with ``teacher_frames`` set, else (or without a step) all T."""
        if step is None:
            return torch.arange(self.num_frames)
        return teacher_frame_indices(self.num_frames, self.teacher_frames, step_seed(self.seed, step))

    def __getitem__(self, index: int | tuple[int, int] | tuple[int, int, int]) -> dict:
        if isinstance(index, tuple):
            epoch, i, step = index if len(index) == 3 else (*index, None)
        else:
            epoch, i, step = self.epoch, index, None
        n_clips = len(self.store)
        if not -n_clips <= i < n_clips:
            raise IndexError(f"clip {i} out of range for a store of {n_clips} clips")
        i %= n_clips
        cached, cached_vis = self.store.points(i)
        frame_index = self.frames_of_step(step)
        whole = len(frame_index) == self.num_frames
        frames = self.store.read_frames(i, None if whole else frame_index.tolist())
        s = self.input_size
        _, height, width, _ = frames.shape

        # 1-2. One crop and one flip for every frame (the flip is drawn even when off, so presets share crops).
        rng = self._rng(epoch, i, _STREAM_GEOMETRY)
        box = random_resized_crop_box(rng, height, width, (self.crop_scale, 1.0))
        flip = bool(rng.random() < 0.5) and self.flip

        # 3-5. Tracks into the input, point sampling, track source.
        # Drawn on every frame (visibility, the controls, moving points), then cut to the frames the item holds.
        tracks, visibility = self._points(cached, cached_vis, box, flip, self._rng(epoch, i, _STREAM_POINTS))
        if not whole:
            tracks, visibility = tracks[frame_index.numpy()], visibility[frame_index.numpy()]

        # 6. The student's photometric draw; the pixels are made on the device (DeviceTransform).
        item = {"frames": torch.from_numpy(frames), "box": box, "flip": flip}
        if self.photometric:
            item["photometric"] = sample_photometric(self._rng(epoch, i, _STREAM_PHOTOMETRIC), s)
        item["tracks"] = torch.from_numpy(tracks)
        item["visibility"] = torch.from_numpy(visibility)
        item["clip_id"] = torch.tensor(i, dtype=torch.int64)
        item["frame_index"] = frame_index
        item["step"] = step
        return item

    def _points(
        self, cached: np.ndarray, cached_vis: np.ndarray, box: CropBox, flip: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sampled tracks float32 [T, N, 2] in input pixels and their visibility bool [T, N] (module docstring)."""
        s, n = self.input_size, self.num_points
        t = cached.shape[0]
        mapped = map_points(cached, box, s, flip)  # [T, Nc, 2]
        vis = cached_vis & inside_image(mapped, s, s)  # NaN compares False: never visible
        qualify = np.flatnonzero(vis[0])
        if len(qualify) == 0:
            return np.full((t, n, 2), (s - 1) / 2, dtype=np.float32), np.zeros((t, n), dtype=bool)
        if len(qualify) > n and self.points == "moving":
            moves = independent_motion(mapped[:, qualify], vis[:, qualify]) > self.moving_threshold
            moving, rest = qualify[moves], qualify[~moves]
            if len(moving) >= n:
                chosen = rng.choice(moving, n, replace=False)
            else:
                chosen = np.concatenate([rng.permutation(moving), rng.choice(rest, n - len(moving), replace=False)])
            real = n
        elif len(qualify) >= n:
            chosen, real = rng.choice(qualify, n, replace=False), n
        else:
            pad = rng.choice(qualify, n - len(qualify), replace=True)
            chosen, real = np.concatenate([rng.permutation(qualify), pad]), len(qualify)
        tracks = mapped[:, chosen]
        visibility = vis[:, chosen]
        visibility[:, real:] = False
        if self.track_source == "static":
            tracks[1:] = tracks[0]
            visibility[:, :real] = True
        elif self.track_source == "shuffled":
            if real >= 2:
                # A uniformly random n-cycle: order the points randomly, each takes its successor's trajectory.
                order = rng.permutation(real)
                source = np.empty(real, dtype=np.int64)
                source[order] = np.roll(order, -1)
                tracks[1:, :real] = tracks[1:, source]
                visibility[1:, :real] = visibility[1:, source]
            else:
                visibility[1:, 0] = False
        bad = ~np.isfinite(tracks)
        if bad.any():
            tracks[bad] = (s - 1) / 2
        return np.ascontiguousarray(tracks, dtype=np.float32), np.ascontiguousarray(visibility)


def collate(items: list[dict]) -> RawBatch:
    """Stack items of :class:`TrainClips` into a :class:`RawBatch` (shapes in its docstring).

    In a loader worker the tensors are stacked straight into shared memory (``default_collate`` on a list of
    tensors), which saves the copy the worker would otherwise make to send the batch.
    """
    photometric = _check_items(items)
    return RawBatch(
        frames=default_collate([it["frames"] for it in items]),
        boxes=tuple(it["box"] for it in items),
        flips=tuple(it["flip"] for it in items),
        photometric=photometric,
        tracks=default_collate([it["tracks"] for it in items]),
        visibility=default_collate([it["visibility"] for it in items]),
        clip_ids=default_collate([it["clip_id"] for it in items]),
        frame_indices=items[0]["frame_index"].clone(),
    )


def _check_items(items: list[dict]) -> tuple[Photometric, ...] | None:
    """Refuse items that cannot form one batch; the batch's photometric draws (None when the items have none)."""
    if not items:
        raise ValueError("cannot collate an empty list of items")
    has_photometric = ["photometric" in it for it in items]
    if any(has_photometric) and not all(has_photometric):
        raise ValueError("some items have photometric draws and others do not")
    index = items[0]["frame_index"]
    if any(not torch.equal(it["frame_index"], index) for it in items[1:]):
        raise ValueError("the items of a batch hold different frames (items of different steps in one batch)")
    return tuple(it["photometric"] for it in items) if has_photometric[0] else None


@dataclass(frozen=True)
class SlotBatch:
    """What a loader worker sends for a batch it wrote into a :class:`SlotPool` slot: the slot, and the batch's
    host-side values (a few hundred bytes through the worker's queue instead of a shared-memory segment per
    tensor)."""

    pool: int
    slot: int
    size: int
    boxes: tuple[CropBox, ...]
    flips: tuple[bool, ...]
    photometric: tuple[Photometric, ...] | None
    clip_ids: tuple[int, ...]
    frame_indices: tuple[int, ...]

    def pin_memory(self) -> RawBatch:
        """The batch copied out of its slot into pinned memory (called by ``DataLoader(pin_memory=True)``'s thread
        in the training process, where the pool is registered)."""
        return _POOLS[self.pool].take(self, pin=True)


_POOLS: weakref.WeakValueDictionary[int, SlotPool] = weakref.WeakValueDictionary()  # this process's pools
_POOL_KEYS = itertools.count()


class SlotPool:
    """Shared-memory slots, made once, that loader workers write their batches into.

    Sending a batch's tensors from a worker costs a new shared-memory segment per tensor (created, its pages
    mapped one by one by the kernel, its handle passed over a socket, mapped again in the training process): on
    2 cores that is most of a worker's time, more than making the items (``benchmarks/results/loader.md``). With
    a pool, the worker stacks the items straight into slot ``step mod slots`` (the step of every item of the
    batch, from :class:`EpochDistributedSampler`) and sends a :class:`SlotBatch`; the training process copies the
    slot out (:meth:`take`; into pinned memory in the DataLoader's pinning thread for a CUDA copy, as it pins
    any batch), so nothing it holds points into the pool.

    Why a slot is free when a worker writes it: a DataLoader dispatches batches in sampler order, consecutive
    steps, and never has more than ``prefetch_factor x workers`` dispatched and not yet returned; the batch
    ``prefetch_factor x workers`` steps back was returned (and copied out, or being copied, when the next is
    dispatched), so ``slots >= prefetch_factor x workers + 2`` never reuses a slot still needed.

    Args:
        slots: number of slots.
        batch: clips per batch.
        frames, height, width: the frames an item holds and their size (uint8 [frames, height, width, 3]).
        points: N, points per item.
    """

    def __init__(self, *, slots: int, batch: int, frames: int, height: int, width: int, points: int) -> None:
        self.slots = slots
        self.key = next(_POOL_KEYS)
        _POOLS[self.key] = self
        self.frames = torch.zeros(slots, batch, frames, height, width, 3, dtype=torch.uint8).share_memory_()
        self.tracks = torch.zeros(slots, batch, frames, points, 2, dtype=torch.float32).share_memory_()
        self.visibility = torch.zeros(slots, batch, frames, points, dtype=torch.bool).share_memory_()

    def fits(self, items: list[dict]) -> bool:
        """Whether `items` fit a slot (at most ``batch`` items of the pool's shapes)."""
        shape_f, shape_t = self.frames.shape[2:], self.tracks.shape[2:]
        return len(items) <= self.frames.shape[1] and all(
            it["frames"].shape == shape_f and it["tracks"].shape == shape_t for it in items
        )

    def put(self, slot: int, items: list[dict]) -> SlotBatch:
        """Stack `items` (which :meth:`fits`) into `slot` (in a worker); the batch's :class:`SlotBatch`."""
        photometric = _check_items(items)
        n = len(items)
        torch.stack([it["frames"] for it in items], out=self.frames[slot, :n])
        torch.stack([it["tracks"] for it in items], out=self.tracks[slot, :n])
        torch.stack([it["visibility"] for it in items], out=self.visibility[slot, :n])
        return SlotBatch(
            pool=self.key,
            slot=slot,
            size=n,
            boxes=tuple(it["box"] for it in items),
            flips=tuple(it["flip"] for it in items),
            photometric=photometric,
            clip_ids=tuple(int(it["clip_id"]) for it in items),
            frame_indices=tuple(items[0]["frame_index"].tolist()),
        )

    def take(self, batch: SlotBatch, *, pin: bool = False) -> RawBatch:
        """The :class:`RawBatch` of `batch`, copied out of its slot (into pinned memory with `pin`)."""

        def copy(x: Tensor) -> Tensor:
            src = x[batch.slot, : batch.size]
            return torch.empty(src.shape, dtype=src.dtype, pin_memory=pin).copy_(src)

        clip_ids = torch.tensor(batch.clip_ids, dtype=torch.int64)
        return RawBatch(
            frames=copy(self.frames),
            boxes=batch.boxes,
            flips=batch.flips,
            photometric=batch.photometric,
            tracks=copy(self.tracks),
            visibility=copy(self.visibility),
            clip_ids=clip_ids.pin_memory() if pin else clip_ids,
            frame_indices=torch.tensor(batch.frame_indices, dtype=torch.long),
        )


class _SlotCollate:
    """``collate_fn`` of a pooled loader: in a worker, a batch of one step that fits goes into the pool (slot
    ``step mod slots``); anything else (the training process, items without a step, other shapes) is
    :func:`collate`d as usual."""

    def __init__(self, pool: SlotPool) -> None:
        self.pool = pool

    def __call__(self, items: list[dict]) -> RawBatch | SlotBatch:
        step = items[0].get("step") if items else None
        if get_worker_info() is None or step is None or not self.pool.fits(items):
            return collate(items)
        if any(it.get("step") != step for it in items):
            raise ValueError("the items of a batch belong to different steps")
        return self.pool.put(step % self.pool.slots, items)


class _PooledLoader(DataLoader):
    """A DataLoader whose workers send :class:`SlotBatch` es; iterating it yields :class:`RawBatch` es, copied out
    of the pool (already by the pinning thread with ``pin_memory``)."""

    def __init__(self, *args, slot_pool: SlotPool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slot_pool = slot_pool

    def __iter__(self):
        for batch in super().__iter__():
            yield self.slot_pool.take(batch) if isinstance(batch, SlotBatch) else batch


class EpochDistributedSampler(DistributedSampler):
    """:class:`DistributedSampler` that yields ``(epoch, index)`` pairs, so items see the epoch in any worker, or
    ``(epoch, index, step)`` triples when ``batch_size`` is set: the k-th index of an epoch belongs to training step
    ``epoch * steps_per_epoch + k // batch_size`` (batches of ``batch_size`` indices, the last incomplete one
    dropped, as :func:`make_loader`'s loader makes them), so an item can hold only its step's frames.

    ``set_epoch(epoch, start=k)`` starts the epoch's sequence at its k-th index: a run resumed mid-epoch goes on
    exactly where it stopped without loading (and throwing away) the batches it had already trained on.
    """

    start = 0
    batch_size: int | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start {start} is outside the epoch's {self.num_samples} indices of this rank")
        super().set_epoch(epoch)
        self.start = start

    def __iter__(self):
        epoch, start, size = self.epoch, self.start, self.batch_size
        indices = itertools.islice(super().__iter__(), start, None)
        if size is None:
            return ((epoch, i) for i in indices)
        first = epoch * (self.num_samples // size)
        return ((epoch, i, first + (start + k) // size) for k, i in enumerate(indices))

    def __len__(self) -> int:
        return self.num_samples - self.start


class _SeedWorker:
    """``worker_init_fn``: seeds Python's, numpy's and torch's global streams per (seed, rank, worker, epoch).

    TrainClips draws nothing from these streams; seeding them keeps any library that does reproducible. The
    epoch is the dataset's when the worker starts (persistent workers start once, at the first epoch iterated).
    """

    def __init__(self, seed: int, rank: int) -> None:
        self.seed, self.rank = seed, rank

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        epoch = int(getattr(info.dataset, "epoch", 0)) if info is not None else 0
        state = np.random.SeedSequence([self.seed, self.rank, worker_id, epoch]).generate_state(2, dtype=np.uint64)
        random.seed(int(state[0]))
        np.random.seed(int(state[0] % 2**32))  # noqa: NPY002 - seeds libraries that draw from numpy's global stream
        torch.manual_seed(int(state[1]))


def make_loader(
    dataset: TrainClips,
    *,
    batch_size_per_rank: int,
    workers: int,
    seed: int,
    rank: int,
    world_size: int,
    epoch_sampler: bool = True,
    slots: bool = True,
) -> tuple[DataLoader, DistributedSampler]:
    """The training loader of one process and its sampler (call ``sampler.set_epoch(e)`` before each epoch).

    ``DistributedSampler(shuffle=True, seed=seed, drop_last=True)`` splits the clips over the `world_size` ranks
    (disjoint; equal counts, the tail dropped) with a new permutation per epoch; the loader drops an incomplete
    last batch too, so every step has ``batch_size_per_rank`` clips on every rank.

    Args:
        dataset: the training clips.
        batch_size_per_rank: clips per batch of this process.
        workers: DataLoader worker processes (0 = load in the main process); persistent across epochs.
        seed: seed of the sampler's permutation and of the workers' global streams.
        rank: this process's rank.
        world_size: number of processes.
        epoch_sampler: pass the epoch and the training step to the items with each index
            (:class:`EpochDistributedSampler`; with ``dataset.teacher_frames`` set an item then holds only its
            step's frames). Without it, items use ``dataset.set_epoch``'s epoch, which workers only see when they
            restart every epoch, so workers are then not persistent, and hold every frame.
        slots: with workers and `epoch_sampler`, workers write batches into a :class:`SlotPool` made here
            (``prefetch_factor x workers + 2`` batches of shared memory) instead of sending their tensors; the
            batches are the same. False (or a pool that cannot be allocated, logged) sends them as tensors.

    Returns:
        ``(loader, sampler)``; the loader yields :class:`RawBatch` (pinned when CUDA is available): move it to
        the training device and make its views with ``dataset.transform``.
    """
    if batch_size_per_rank < 1:
        raise ValueError(f"batch_size_per_rank must be >= 1, got {batch_size_per_rank}")
    sampler_cls = EpochDistributedSampler if epoch_sampler else DistributedSampler
    sampler = sampler_cls(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    if epoch_sampler:
        sampler.batch_size = batch_size_per_rank
    pin = torch.cuda.is_available()
    options = dict(
        batch_size=batch_size_per_rank,
        pin_memory=pin,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        worker_init_fn=_SeedWorker(seed, rank),
        persistent_workers=workers > 0 and epoch_sampler,
    )
    pool = None
    if slots and workers > 0 and epoch_sampler:
        store = dataset.store
        shape = dict(
            slots=_PREFETCH * workers + 2,
            batch=batch_size_per_rank,
            frames=len(dataset.frames_of_step(0)),
            height=store.height,
            width=store.width,
            points=dataset.num_points,
        )
        try:
            pool = SlotPool(**shape)
        except RuntimeError as err:  # e.g. a /dev/shm too small for the pool
            _log.warning("loader: no shared-memory slot pool %s (%s); workers send tensors instead", shape, err)
    if pool is None:
        return DataLoader(dataset, collate_fn=collate, **options), sampler
    return _PooledLoader(
        dataset, collate_fn=_SlotCollate(pool), slot_pool=pool, prefetch_factor=_PREFETCH, **options
    ), sampler
