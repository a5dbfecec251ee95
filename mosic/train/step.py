"""One MoSiC training step: the method's forward pass (:func:`mosic_step`) and the update (:func:`train_step`).

:func:`mosic_step` is one forward pass of the method (``reference/mosic_spec.md`` §4.1, with our fixes), as dinov2
keeps its ``forward_backward`` in ``ssl_meta_arch.py``:

1. re-normalise the student's and the teacher's prototypes;
2. the EMA teacher encodes every frame of the batch without gradient, reads its features at the track
   positions, projects and scores them, and Sinkhorn–Knopp turns the scores into balanced cluster assignments
   over the global batch;
3. the student encodes frame 0 only (every frame of the batch when the symmetric term is on) — its own,
   optionally photometrically augmented and masked, view — and scores its features at the frame-0 track
   positions;
4. the loss asks the student's frame-0 scores to predict the teacher's cluster of the same point at every
   frame where the point is visible.

:func:`train_step` adds backward, gradient clipping, the fused AdamW step and the EMA update, and never waits for
the device: the step's statistics stay on the device (the loop reads them back in groups), and a step whose loss
or targets are not finite on any rank changes nothing, decided on the device (the fused AdamW's ``found_inf``
and an EMA momentum of 1).

The teacher's frames (all T, or frame 0 plus ``teacher_frames − 1`` random others) are chosen before the step,
by :func:`teacher_frame_indices` from the step's seed, and the views are made of those frames only
(:class:`mosic.train.data.DeviceTransform`; the loop passes them): the batch :func:`mosic_step` gets holds the
teacher's frames, frame 0 first, and it selects nothing (it refuses a batch with more frames than
``teacher_frames``).

Randomness: every draw of a step comes from :func:`step_seed` (the teacher frames, the same on every rank) and
from the clips' ids (:func:`clip_masks`), never from a rank, so N processes train as one does.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mosic import distributed
from mosic.config import TrainConfig
from mosic.losses.mosic_loss import mosic_loss
from mosic.losses.sinkhorn import sinkhorn_knopp
from mosic.model.backbone import keep_mask, random_keep
from mosic.model.ema import ema_update_
from mosic.model.gather import track_patch_index
from mosic.model.net import MoSiCNet
from mosic.train.data import ClipBatch, step_seed, teacher_frame_indices
from mosic.train.presets import Preset

__all__ = ["STATS", "clip_masks", "mosic_step", "step_seed", "teacher_frame_indices", "train_step"]

# What train_step returns, in order: the global batch's values.
STATS = ("loss", "loss_main", "loss_sym", "visible_fraction", "cluster_entropy", "grad_norm", "finite")


def _usage_entropy(targets: Tensor, valid: Tensor, k: int) -> Tensor:
    """Normalised entropy (0 = one cluster, 1 = uniform) of the hard assignment histogram over valid entries."""
    hard = targets if targets.dtype == torch.long else targets.argmax(-1)
    # scatter_add rather than bincount of hard[valid]: neither needs the device to report a size back.
    counts = torch.zeros(k, dtype=torch.float32, device=hard.device)
    counts.scatter_add_(0, hard.flatten(), valid.flatten().float())
    distributed.all_reduce_(counts)
    p = counts / counts.sum().clamp_min(1)
    return -(p * p.clamp_min(1e-12).log()).sum() / math.log(k)


def clip_masks(clip_ids: Sequence[int], num_patches: int, ratio: float, seed: int) -> Tensor:
    """The student's kept patches of each clip at one step: long [B, L'], one :func:`random_keep` row per clip.

    Each row is drawn from its own stream seeded by ``(seed, clip id)``, so a clip's mask does not depend on the
    rank that holds it or on the other clips of its batch. The ids are the clips' global indices in the training
    store (``RawBatch.clip_ids``), which also key the item's crop, points and colour draws, not the store's stable
    ``clip_id`` (:func:`mosic.data.clips.clip_id`): all of a clip's draws follow its position, which is fixed for
    a given cache, and a run on another cache starts afresh (:func:`mosic.train.checkpoint.resume_or_start`).
    """
    rows = []
    for clip in clip_ids:
        state = np.random.SeedSequence([seed, int(clip)]).generate_state(1, dtype=np.uint64)[0] >> 1
        rows.append(random_keep(1, num_patches, ratio, torch.Generator().manual_seed(int(state))))
    return torch.cat(rows)


def mosic_step(
    student: nn.Module,
    teacher: MoSiCNet,
    batch: ClipBatch,
    cfg: TrainConfig,
    preset: Preset,
    seed: int,
) -> dict[str, Tensor]:
    """One forward pass of the MoSiC objective; returns the named losses and statistics (see module docstring).

    Under several processes every rank holds a slice of the global batch: Sinkhorn balances clusters over the
    global batch, and the loss is this rank's share of the global batch's loss (its terms divided by the global
    normaliser, times the process count), so DDP's gradient average is the gradient of the global loss and the
    mean of ``loss`` over ranks is the loss one process would compute on the whole batch.

    Args:
        student: the student :class:`MoSiCNet`, possibly wrapped in DDP (called exactly once).
        teacher: the EMA teacher.
        batch: the views of the step's teacher frames (:func:`teacher_frame_indices`, frame 0 first) on the
            device; every frame of it is used.
        cfg: training settings.
        preset: behaviours fixed by the preset.
        seed: the step's seed (:func:`step_seed`): drives the masks (per clip), so resumed runs repeat them (the
            teacher frames, drawn from it too, were chosen when the views were made).

    Raises:
        ValueError: when the batch has more frames than ``cfg.teacher_frames`` (views of every frame).
    """
    b, t, n = batch.visibility.shape
    if 0 < cfg.teacher_frames < t:
        raise ValueError(
            f"the batch has {t} frames but the teacher encodes {cfg.teacher_frames}: make the views of the step's "
            "frames only (DeviceTransform(raw, teacher_frame_indices(...)) or ClipBatch.select_frames)"
        )
    raw = student.module if hasattr(student, "module") else student
    raw.prototypes.normalize_()
    teacher.prototypes.normalize_()

    # Teacher: every frame of the batch (the views were made of the teacher's frames only), no gradient.
    tracks, visible = batch.tracks, batch.visibility  # [B, T', N, 2], [B, T', N]
    with torch.no_grad():
        scores_t = teacher(batch.video.flatten(0, 1), tracks.flatten(0, 1)).view(b, t, n, -1)
        valid = visible if preset.sinkhorn_visible_only else torch.ones_like(visible)
        q = sinkhorn_knopp(
            scores_t.flatten(0, 2).float(),
            epsilon=cfg.sinkhorn_epsilon,
            iters=cfg.sinkhorn_iters,
            log_domain=cfg.sinkhorn_log_domain,
            valid=valid.flatten(),
            check=False,  # train_step skips a step with non-finite targets, without waiting for the device
        ).view(b, t, n, -1)
        targets = q.argmax(-1) if cfg.assignment == "hard" else q

    # Student: frame 0 (every frame of the batch with the symmetric term), one call through DDP.
    keep = None
    num_patches = raw.grid * raw.grid
    if cfg.mask_ratio > 0:
        keep = clip_masks(batch.clip_ids.tolist(), num_patches, cfg.mask_ratio, seed).to(batch.video.device)
    weight = visible.float()
    if cfg.symmetric:
        assert batch.student_all is not None, "the symmetric term needs the student view of every frame"
        kept = keep.repeat_interleave(t, dim=0) if keep is not None else None
        scores_all = student(batch.student_all.flatten(0, 1), tracks.flatten(0, 1), kept).view(b, t, n, -1)
        scores0 = scores_all[:, 0]
    else:
        scores_all = None
        scores0 = student(batch.student, tracks[:, 0], keep)  # [B, N, K]
    if keep is not None:
        # A term counts only where the point's frame-0 patch was seen by the student (the original weighted by
        # the frame-t student feature, which is not the feature the loss uses).
        seen = keep_mask(keep, num_patches)  # [B, L]
        row, col = track_patch_index(tracks[:, 0], grid=raw.grid, input_size=raw.input_size, order=raw.order)
        weight = weight * seen.gather(1, row * raw.grid + col).float()[:, None, :]
    denominator = None
    if distributed.world_size() > 1:
        # The global batch's normaliser Z, as this rank's share (see the docstring).
        z = weight.sum() if preset.loss_norm == "visible" else weight.new_tensor(float(weight.numel()))
        denominator = distributed.all_reduce_(z.detach()).clamp_min(1.0) / distributed.world_size()
    out = mosic_loss(
        scores0,
        targets,
        weight,
        temperature=cfg.temperature,
        norm=preset.loss_norm,
        student_all=scores_all,
        denominator=denominator,
    )
    out["targets_finite"] = torch.isfinite(q).all()
    out["cluster_entropy"] = _usage_entropy(targets, valid, q.shape[-1])
    out["visible_fraction"] = visible[:, 1:].float().mean() if t > 1 else visible.float().mean()
    return out


def train_step(
    student: nn.Module,
    teacher: MoSiCNet,
    optimizer: torch.optim.Optimizer,
    batch: ClipBatch,
    cfg: TrainConfig,
    preset: Preset,
    seed: int,
) -> Tensor:
    """One update: :func:`mosic_step`, backward, clipping, AdamW and the EMA teacher; never waits for the device.

    Args:
        student: the student, possibly wrapped in DDP.
        teacher: the EMA teacher.
        optimizer: a fused AdamW over the student's trainable parameters (``found_inf`` skips a step on the device).
        batch: the views of the step's teacher frames on the device (see :func:`mosic_step`).
        cfg: training settings.
        preset: behaviours fixed by the preset.
        seed: the step's seed (:func:`step_seed`).

    Returns:
        float32 [len(STATS)] on the device: the global batch's loss terms and visible fraction (means over ranks
        of each rank's share), cluster entropy, gradient norm (before clipping) and ``finite`` (1, or 0 when the
        step was skipped because some rank's loss or targets were not finite: nothing changed then).
    """
    if not optimizer.defaults.get("fused"):
        raise ValueError("train_step needs a fused optimizer (it skips non-finite steps through found_inf)")
    device = batch.video.device
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with amp:
        out = mosic_step(student, teacher, batch, cfg, preset, seed)
    loss = out["loss"]
    zero = loss.new_zeros(())
    local_ok = (torch.isfinite(loss) & out["targets_finite"]).float()
    stats = torch.stack([loss, out["loss_main"], out.get("loss_sym", zero), out["visible_fraction"], local_ok])
    stats = distributed.all_reduce_(stats.detach().float(), op="avg")  # one reduction: log values and the check
    finite = (stats[-1] == 1.0) & torch.isfinite(stats[0])

    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # on every rank even when skipped: DDP's gradient reduction needs every rank
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    optimizer.found_inf = (~finite).float()  # the fused kernels leave parameters, moments and step count alone
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf
    ema_update_(teacher, student, cfg.ema_momentum, skip=~finite)
    return torch.stack(
        [*stats[:4], out["cluster_entropy"].float(), grad_norm.detach().float().to(device), finite.float()]
    )
