"""The MoSiC training loop: one function that reads top to bottom (dinov2 ``do_train``, nanoGPT ``train.py``).

:func:`mosic_step` is one forward pass of the method (``reference/mosic_spec.md`` §4.1, with our fixes):

1. re-normalise the student's and the teacher's prototypes;
2. the EMA teacher encodes the clip's frames (all T, or frame 0 plus ``teacher_frames − 1`` random others)
   without gradient, reads its features at the track positions, projects and scores them, and Sinkhorn–Knopp
   turns the scores into balanced cluster assignments over the global batch;
3. the student encodes frame 0 only (every frame when the symmetric term is on) — its own, optionally
   photometrically augmented and masked, view — and scores its features at the frame-0 track positions;
4. the loss asks the student's frame-0 scores to predict the teacher's cluster of the same point at every
   frame where the point is visible.

:func:`train` runs the steps: AdamW with separate learning rates for the backbone and for head + prototypes
(no weight decay on biases and norms), warm-up + cosine schedules precomputed per step, bf16 autocast on CUDA,
optional gradient clipping, the EMA update after every step, a NaN guard, logging to ``metrics.csv`` and
Weights & Biases, checkpoints every N steps that resume exactly, and the export of the trained backbone.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import random
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mosic import distributed
from mosic.config import TrainConfig, config_hash, to_dict
from mosic.losses.mosic_loss import mosic_loss
from mosic.losses.sinkhorn import sinkhorn_knopp
from mosic.model.backbone import keep_mask, random_keep, set_trainable_blocks
from mosic.model.ema import ema_update_, make_teacher
from mosic.model.gather import track_patch_index
from mosic.model.net import MoSiCNet
from mosic.store import TrackStore
from mosic.train.checkpoint import latest_checkpoint, load_checkpoint, rng_state, save_checkpoint
from mosic.train.data import ClipBatch, TrainClips, make_loader
from mosic.train.export import export_backbone
from mosic.train.presets import PRESETS, Preset
from mosic.train.schedules import cosine_schedule

logger = logging.getLogger(__name__)

__all__ = [
    "build_dataset",
    "build_models",
    "build_net",
    "clip_masks",
    "mosic_step",
    "param_groups",
    "step_seed",
    "train",
    "TrainingDiverged",
]

METRICS = (
    "step",
    "epoch",
    "loss",
    "loss_main",
    "loss_sym",
    "lr_backbone",
    "lr_head",
    "grad_norm",
    "cluster_entropy",
    "visible_fraction",
    "nan_skipped",
    "step_time_s",
)


class TrainingDiverged(RuntimeError):
    """More steps had a non-finite loss than ``train.nan_limit`` allows."""


def build_net(cfg: TrainConfig, preset: Preset) -> MoSiCNet:
    """The student network with the configured trainable blocks (the teacher is an EMA copy of it)."""
    net = MoSiCNet(
        model=cfg.model,
        pretrained=cfg.pretrained,
        input_size=cfg.input_size,
        head_hidden=cfg.head_hidden,
        head_bottleneck=cfg.head_bottleneck,
        proj_dim=cfg.proj_dim,
        num_prototypes=cfg.num_prototypes,
        gather=cfg.gather,
        order=preset.order,
    )
    set_trainable_blocks(net.backbone, cfg.trainable_blocks, select=preset.block_select)
    return net


def build_dataset(
    store: TrackStore, cfg: TrainConfig, preset: Preset, *, student_all_frames: bool | None = None
) -> TrainClips:
    """The training clips of `store` with the configured crop, points, controls and augmentation.

    `student_all_frames` defaults to ``cfg.symmetric`` (the student's view of every frame is only needed then).
    """
    return TrainClips(
        store,
        input_size=cfg.input_size,
        num_points=cfg.num_points,
        crop_scale=cfg.crop_scale,
        flip=preset.flip,
        mean=preset.mean,
        std=preset.std,
        track_source=cfg.track_source,
        photometric=cfg.photometric_aug,
        student_all_frames=cfg.symmetric if student_all_frames is None else student_all_frames,
        seed=cfg.seed,
    )


def param_groups(net: MoSiCNet, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: backbone and head + prototypes at their own learning rates; no decay on 1-D parameters."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if name.startswith("backbone.") else "head"
        decay = p.ndim >= 2 and not name.endswith(".bias")
        groups.setdefault((part, decay), []).append(p)
    lr = {"backbone": cfg.lr_backbone, "head": cfg.lr_head}
    return [
        {
            "params": ps,
            "name": f"{part}{'' if decay else '_no_decay'}",
            "part": part,
            "base_lr": lr[part],
            "lr": lr[part],
            "weight_decay": cfg.weight_decay if decay else 0.0,
        }  # fmt: skip
        for (part, decay), ps in sorted(groups.items())
    ]


def _usage_entropy(targets: Tensor, valid: Tensor, k: int) -> Tensor:
    """Normalised entropy (0 = one cluster, 1 = uniform) of the hard assignment histogram over valid entries."""
    hard = targets if targets.dtype == torch.long else targets.argmax(-1)
    counts = torch.bincount(hard[valid], minlength=k).float()
    distributed.all_reduce_(counts)
    p = counts / counts.sum().clamp_min(1)
    return -(p * p.clamp_min(1e-12).log()).sum() / math.log(k)


def step_seed(seed: int, step: int) -> int:
    """The seed of every random draw of training step `step` (0-based) of a run seeded `seed`.

    It depends on neither the rank nor the process count: every rank draws the same teacher frames, and each clip's
    mask depends on the step and the clip (:func:`clip_masks`), so N processes train as one does.
    """
    return int(np.random.SeedSequence([seed, step]).generate_state(1, dtype=np.uint64)[0] >> 1)


def clip_masks(clip_ids: Sequence[int], num_patches: int, ratio: float, seed: int) -> Tensor:
    """The student's kept patches of each clip at one step: long [B, L'], one :func:`random_keep` row per clip.

    Each row is drawn from its own stream seeded by ``(seed, clip id)``, so a clip's mask does not depend on the
    rank that holds it or on the other clips of its batch.
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
        batch: a collated batch on the device.
        cfg: training settings.
        preset: behaviours fixed by the preset.
        seed: the step's seed (:func:`step_seed`): drives the teacher-frame draw (the same on every rank) and
            the masks (per clip), so resumed runs repeat them.
    """
    b, t, n = batch.visibility.shape
    raw = student.module if hasattr(student, "module") else student
    raw.prototypes.normalize_()
    teacher.prototypes.normalize_()

    # Teacher: frame 0 plus a random subset of the other frames, no gradient.
    if 0 < cfg.teacher_frames < t:
        generator = torch.Generator().manual_seed(seed)
        others = torch.randperm(t - 1, generator=generator)[: cfg.teacher_frames - 1] + 1
        frames = torch.cat([torch.zeros(1, dtype=torch.long), others.sort().values]).to(batch.video.device)
    else:
        frames = torch.arange(t, device=batch.video.device)
    tf = len(frames)
    tracks = batch.tracks[:, frames]  # [B, T', N, 2]
    visible = batch.visibility[:, frames]  # [B, T', N]
    with torch.no_grad():
        scores_t = teacher(batch.video[:, frames].flatten(0, 1), tracks.flatten(0, 1)).view(b, tf, n, -1)
        valid = visible if preset.sinkhorn_visible_only else torch.ones_like(visible)
        q = sinkhorn_knopp(
            scores_t.flatten(0, 2).float(),
            epsilon=cfg.sinkhorn_epsilon,
            iters=cfg.sinkhorn_iters,
            log_domain=cfg.sinkhorn_log_domain,
            valid=valid.flatten(),
        ).view(b, tf, n, -1)
        targets = q.argmax(-1) if cfg.assignment == "hard" else q

    # Student: frame 0 (every selected frame with the symmetric term), one call through DDP.
    keep = None
    num_patches = raw.grid * raw.grid
    if cfg.mask_ratio > 0:
        keep = clip_masks(batch.clip_ids.tolist(), num_patches, cfg.mask_ratio, seed).to(batch.video.device)
    weight = visible.float()
    if cfg.symmetric:
        assert batch.student_all is not None, "the symmetric term needs the student view of every frame"
        kept = keep.repeat_interleave(tf, dim=0) if keep is not None else None
        scores_all = student(batch.student_all[:, frames].flatten(0, 1), tracks.flatten(0, 1), kept)
        scores_all = scores_all.view(b, tf, n, -1)
        scores0 = scores_all[:, 0]
    else:
        scores_all = None
        scores0 = student(batch.student, tracks[:, 0], keep)  # [B, N, K]
    if keep is not None:
        # A term counts only where the point's frame-0 patch was seen by the student (the original weighted by
        # the frame-t student feature, which is not the feature the loss uses).
        seen = keep_mask(keep, num_patches)  # [B, L]
        row, col = track_patch_index(tracks[:, 0], grid=raw.grid, input_size=raw.input_size, order=preset.order)
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
    out["cluster_entropy"] = _usage_entropy(targets, valid, q.shape[-1])
    out["visible_fraction"] = visible[:, 1:].float().mean() if tf > 1 else visible.float().mean()
    return out


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds libraries that draw from numpy's global stream
    torch.manual_seed(seed)


def build_models(cfg: TrainConfig, preset: Preset, device: torch.device) -> tuple[MoSiCNet, MoSiCNet]:
    """The student and its EMA teacher on `device`, identical on every rank.

    Every rank builds from the run's seed, then takes rank 0's weights (a broadcast), and only then copies the
    student into the teacher: DDP would make the students equal by itself, but not the teachers, whose targets
    Sinkhorn balances over every rank.
    """
    torch.manual_seed(cfg.seed)
    net = build_net(cfg, preset).to(device)
    with torch.no_grad():
        distributed.broadcast_tensors_([*(p.data for p in net.parameters()), *net.buffers()])
    return net, make_teacher(net).to(device)


def _metrics_tensor(rows: list[dict[str, Any]]) -> Tensor:
    """float64 [rows, len(METRICS)] of the logged rows (an empty value as NaN): they travel with each checkpoint."""
    values = [[float("nan") if r[k] == "" else float(r[k]) for k in METRICS] for r in rows]
    return torch.tensor(values, dtype=torch.float64).view(len(rows), len(METRICS))


def _metrics_rows(table: Tensor) -> list[dict[str, Any]]:
    """The rows of :func:`_metrics_tensor`, with integer columns as ints and NaN as an empty value."""
    integer = {"step", "epoch", "nan_skipped"}
    rows = []
    for values in table.tolist():
        row = {}
        for k, v in zip(METRICS, values, strict=True):
            row[k] = "" if math.isnan(v) else int(v) if k in integer else v
        rows.append(row)
    return rows


class _MetricsLog:
    """``metrics.csv`` (main process): the rows of the resumed checkpoint, then one row per step as it is done.

    Snakemake deletes a failed job's declared outputs before it reruns it, so the file cannot be the only copy:
    the rows also travel with every checkpoint (:func:`_metrics_tensor`) and the file is rewritten from them on
    resume, one row per step from step 1.
    """

    def __init__(self, path: Path, rows: list[dict[str, Any]], write: bool) -> None:
        self.rows = list(rows)
        self.file = open(path, "w", newline="") if write else None  # noqa: SIM115 - closed by close()
        if self.file is not None:
            self.writer = csv.DictWriter(self.file, fieldnames=METRICS)
            self.writer.writeheader()
            self.writer.writerows(self.rows)
            self.file.flush()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.file is not None:
            self.writer.writerow(row)
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _init_wandb(cfg: TrainConfig, out_dir: Path, provenance: dict[str, Any]) -> Any:
    """A W&B run on the main process (resumed across restarts through an id kept in out_dir); None otherwise."""
    if cfg.wandb.mode == "disabled" or not distributed.is_main_process():
        return None
    import wandb

    id_file = out_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
    id_file.write_text(run_id)
    return wandb.init(
        mode=cfg.wandb.mode,
        project=cfg.wandb.project,
        entity=cfg.wandb.entity or None,
        dir=str(out_dir),
        id=run_id,
        resume="allow",
        config={"train": to_dict(cfg), "provenance": provenance},
    )


def train(
    cfg: TrainConfig,
    shard_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    provenance: dict[str, Any],
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Train MoSiC on the track cache; resumes from the latest checkpoint in ``out_dir/checkpoints``.

    Any number of processes (``torchrun``) trains as one process does on the same global batch: every rank starts
    from the same student and teacher, each draws the randomness of its clips from the clips' ids, the loss is
    normalised over the global batch, and every logged value is the global batch's. A checkpoint holds every
    rank's random states and the metrics rows so far, so a resumed run logs what the uninterrupted run logs.

    Args:
        cfg: training settings.
        shard_paths: the track-store shards.
        out_dir: run directory: ``checkpoints/``, ``final.safetensors`` (+ .json), ``backbone.safetensors``
            (+ .json, loads into plain timm), ``metrics.csv``, ``wandb/``.
        provenance: the record stored with every checkpoint and export (config, version, git sha).
        max_steps: stop after this many steps in total (tests use it to interrupt a run); None = all epochs.

    Returns:
        ``{"steps": steps done, "final": path of the final checkpoint or None if stopped early, ...}``.

    Raises:
        TrainingDiverged: when more than ``cfg.nan_limit`` steps had a non-finite loss.
    """
    # --- setup -------------------------------------------------------------------------------------------
    distributed.init_from_env()
    device = distributed.device()
    rank, world = distributed.rank(), distributed.world_size()
    main = distributed.is_main_process()
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    preset = PRESETS[cfg.preset]

    store = TrackStore(list(shard_paths))
    dataset = build_dataset(store, cfg, preset)
    if cfg.batch_size % world:
        raise ValueError(
            f"train.batch_size ({cfg.batch_size}) is not a multiple of the {world} training processes (with "
            "--resources gpu=N Snakemake lowers the train rule's GPUs to N): choose a batch size or a GPU count "
            "that divides it"
        )
    per_rank = cfg.batch_size // world
    loader, sampler = make_loader(
        dataset, batch_size_per_rank=per_rank, workers=cfg.workers, seed=cfg.seed, rank=rank, world_size=world
    )
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(store)} cached clips give no full batch of {cfg.batch_size} clips over {world} processes; "
            "cache more clips or lower train.batch_size"
        )
    total_steps = cfg.epochs * steps_per_epoch
    last_step = total_steps if max_steps is None else min(total_steps, max_steps)

    net, teacher = build_models(cfg, preset, device)
    _seed_everything(cfg.seed + rank)  # per-rank global streams (the step itself draws from seeded streams only)
    groups = param_groups(net, cfg)
    optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    schedules = {
        part: cosine_schedule(1.0, total_steps, warmup_steps=cfg.warmup_steps) for part in ("backbone", "head")
    }
    # A run resumes only checkpoints of the same run: same training config and the same cache (shard checksums).
    # A job rerun because its config or cache changed starts afresh; the old checkpoints move to checkpoints.old.
    fingerprint = config_hash({"train": to_dict(cfg), "shards": [store.shard(k).attrs.get("checksums")
                                                                for k in range(len(store.lengths))]})  # fmt: skip
    provenance = {**provenance, "run_fingerprint": fingerprint}
    step = 0
    history: list[dict[str, Any]] = []
    latest = latest_checkpoint(ckpt_dir)
    if latest is not None:
        previous = json.loads(latest.with_suffix(".json").read_text())["meta"].get("run_fingerprint")
        if previous != fingerprint:
            logger.warning("checkpoints in %s belong to another config or cache; starting afresh", ckpt_dir)
            distributed.barrier()
            if main:
                old = out_dir / "checkpoints.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(ckpt_dir, old)
                ckpt_dir.mkdir()
            distributed.barrier()
            latest = None
    initial = ckpt_dir / "initial_backbone.safetensors"
    nan_skipped = 0
    if latest is not None:
        meta = load_checkpoint(latest, modules={"student": net, "teacher": teacher}, optimizer=optimizer, rank=rank)
        step = int(meta["step"])
        nan_skipped = int(meta["meta"].get("nan_skipped", 0))
        if "metrics" in meta["extra_tensors"]:
            history = [r for r in _metrics_rows(meta["extra_tensors"]["metrics"]) if r["step"] <= step]
        logger.info("resumed from %s at step %d", latest, step)
    elif main:
        # The starting backbone, exactly as training begins (a random init differs per seed): what every
        # evaluation compares the trained backbone against. Kept with the checkpoints so a resumed run has it.
        export_backbone(net.backbone, initial, model_name=cfg.model, input_size=cfg.input_size,
                        meta={**provenance, "steps": 0})  # fmt: skip
    student: nn.Module = net
    if distributed.is_enabled():
        ids = [device.index] if device.type == "cuda" else None
        student = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    n_trainable = sum(p.numel() for g in groups for p in g["params"])
    logger.info(
        "training %s (%s preset): %d trainable parameters, %d clips, %d steps/epoch x %d epochs = %d steps, "
        "%d clips/step over %d process(es) on %s",
        cfg.model,
        cfg.preset,
        n_trainable,
        len(store),
        steps_per_epoch,
        cfg.epochs,
        total_steps,
        cfg.batch_size,
        world,
        device,
    )

    metrics = _MetricsLog(out_dir / "metrics.csv", history, write=main)
    run = _init_wandb(cfg, out_dir, provenance)

    def checkpoint(at_step: int, epoch: int, skipped: int) -> Path | None:
        """Every rank's random states and the metrics so far go with the weights; rank 0 writes them."""
        rng = distributed.gather_object(rng_state())
        if not main:
            return None
        return save_checkpoint(
            ckpt_dir,
            step=at_step,
            epoch=epoch,
            modules={"student": net, "teacher": teacher},
            optimizer=optimizer,
            extra_tensors={"metrics": _metrics_tensor(metrics.rows)},
            rng_states=rng,
            meta={**provenance, "total_steps": total_steps, "nan_skipped": skipped},
        )

    # --- loop ----------------------------------------------------------------------------------------------
    try:
        while step < last_step:
            epoch = step // steps_per_epoch
            sampler.set_epoch(epoch, start=(step - epoch * steps_per_epoch) * per_rank)  # resuming mid-epoch
            dataset.set_epoch(epoch)
            for batch in loader:
                if step >= last_step:
                    break
                start = time.perf_counter()
                # schedules
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * schedules[g["part"]][step]
                # forward and loss
                batch = batch.to(device)
                with amp:
                    out = mosic_step(student, teacher, batch, cfg, preset, step_seed(cfg.seed, step))
                loss = out["loss"]
                # The global batch's values (each rank's loss is its share; see mosic_step): one reduction
                # serves the log and the finiteness check, so every rank skips a non-finite step together.
                zero = loss.new_zeros(())
                stats = torch.stack([loss, out["loss_main"], out.get("loss_sym", zero), out["visible_fraction"]])
                stats = distributed.all_reduce_(stats.detach().float(), op="avg")
                if not torch.isfinite(stats[0]).item():
                    nan_skipped += 1
                    optimizer.zero_grad(set_to_none=True)
                    logger.warning("step %d: non-finite loss, skipped (%d so far)", step, nan_skipped)
                    if nan_skipped > cfg.nan_limit:
                        raise TrainingDiverged(
                            f"{nan_skipped} steps had a non-finite loss (train.nan_limit = {cfg.nan_limit}); "
                            "lower the learning rate or check the cache with `python -m mosic.store.verify`"
                        )
                    step += 1
                    continue
                # backward, clip, step
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                params = [p for g in optimizer.param_groups for p in g["params"]]
                max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
                optimizer.step()
                # EMA teacher
                ema_update_(teacher, net, cfg.ema_momentum)
                step += 1
                # log
                values = stats.tolist()
                row = {
                    "step": step,
                    "epoch": epoch,
                    "loss": values[0],
                    "loss_main": values[1],
                    "loss_sym": values[2] if "loss_sym" in out else "",
                    "lr_backbone": cfg.lr_backbone * schedules["backbone"][step - 1],
                    "lr_head": cfg.lr_head * schedules["head"][step - 1],
                    "grad_norm": float(grad_norm),
                    "cluster_entropy": out["cluster_entropy"].item(),
                    "visible_fraction": values[3],
                    "nan_skipped": nan_skipped,
                    "step_time_s": time.perf_counter() - start,
                }
                metrics.append(row)
                if run is not None:
                    run.log({k: v for k, v in row.items() if v != ""}, step=step)
                if main and (step % 10 == 0 or step == 1 or step == last_step):
                    logger.info(
                        "step %d/%d epoch %d loss %.4f entropy %.3f visible %.2f %.2fs",
                        step,
                        total_steps,
                        epoch,
                        row["loss"],
                        row["cluster_entropy"],
                        row["visible_fraction"],
                        row["step_time_s"],
                    )
                # checkpoint
                if step % cfg.checkpoint_every == 0 and step < total_steps:
                    checkpoint(step, epoch, nan_skipped)
    finally:
        metrics.close()
        if run is not None:
            run.finish()

    result: dict[str, Any] = {"steps": step, "total_steps": total_steps, "nan_skipped": nan_skipped, "final": None}
    if step >= total_steps:
        final = checkpoint(step, cfg.epochs - 1, nan_skipped)
        if main:
            meta = {**provenance, "steps": step, "checkpoint": final.name}
            export_backbone(net.backbone, out_dir / "backbone.safetensors", model_name=cfg.model,
                            input_size=cfg.input_size, meta=meta)  # fmt: skip
            export_backbone(teacher.backbone, out_dir / "teacher_backbone.safetensors", model_name=cfg.model,
                            input_size=cfg.input_size, meta=meta)  # fmt: skip
            for suffix in ("", ".json"):
                shutil.copyfile(f"{initial}{suffix}", out_dir / f"initial_backbone.safetensors{suffix}")
            result["final"] = final
            (out_dir / "final.json").write_text(json.dumps({**result, "checkpoint": str(final)}, indent=2,
                                                           default=str))  # fmt: skip
    distributed.barrier()
    return result
