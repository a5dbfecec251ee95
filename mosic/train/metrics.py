"""What training logs: ``metrics.csv`` (one row per step), Weights & Biases, and the progress lines.

The step's statistics stay on the device until :meth:`StepLog.flush` reads a group of them back at once (every
step on the CPU, every ``flush_every`` steps on a GPU), so the training loop never waits for the device to log.
The rows also travel with every checkpoint (:func:`rows_to_tensor`): Snakemake deletes a failed job's declared
outputs, ``metrics.csv`` among them, before it reruns the job, and a resumed run rewrites the file from the
checkpoint, one row per step from step 1.
"""

from __future__ import annotations

import csv
import logging
import math
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mosic import distributed
from mosic.config import RunSpec, TrainConfig, run_record
from mosic.train.step import STATS

__all__ = ["METRICS", "StepLog", "init_wandb", "rows_from_tensor", "rows_to_tensor"]

logger = logging.getLogger(__name__)

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
_INTEGER = frozenset({"step", "epoch", "nan_skipped"})


def rows_to_tensor(rows: list[dict[str, Any]]) -> Tensor:
    """float64 [rows, len(METRICS)] of logged rows (an empty value as NaN), to store in a checkpoint."""
    values = [[float("nan") if r[k] == "" else float(r[k]) for k in METRICS] for r in rows]
    return torch.tensor(values, dtype=torch.float64).view(len(rows), len(METRICS))


def rows_from_tensor(table: Tensor) -> list[dict[str, Any]]:
    """The rows of :func:`rows_to_tensor`, integer columns as ints and NaN as an empty value (as first logged)."""
    return [
        {k: "" if math.isnan(v) else int(v) if k in _INTEGER else v for k, v in zip(METRICS, values, strict=True)}
        for values in table.tolist()
    ]


def init_wandb(cfg: TrainConfig, run: RunSpec, out_dir: Path, provenance: dict[str, Any]) -> Any:
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
        config={"train": run_record(cfg, run), "provenance": provenance},
    )


class StepLog:
    """The rows of one run: those of the resumed checkpoint, then one per finished step (skipped steps have none).

    Args:
        path: ``metrics.csv``; rewritten from `rows` at once (main process only, see `write`).
        rows: the rows logged before (a resumed run's, from its checkpoint).
        nan_skipped: steps skipped before, for a non-finite loss.
        total_steps: for the progress lines.
        symmetric: the run has the symmetric loss term (else ``loss_sym`` is left empty).
        write: write the file, W&B and progress lines (the main process); other ranks keep the rows only.
        wandb_run: a W&B run or None.
    """

    def __init__(
        self,
        path: Path,
        rows: list[dict[str, Any]],
        *,
        nan_skipped: int,
        total_steps: int,
        symmetric: bool,
        write: bool,
        wandb_run: Any = None,
    ) -> None:
        self.rows = list(rows)
        self.nan_skipped = nan_skipped
        self.total_steps = total_steps
        self.symmetric = symmetric
        self.run = wandb_run
        self._pending: list[tuple[int, int, Tensor, float, float]] = []
        self._since = time.perf_counter()
        self.file = open(path, "w", newline="") if write else None  # noqa: SIM115 - closed by close()
        if self.file is not None:
            self.writer = csv.DictWriter(self.file, fieldnames=METRICS)
            self.writer.writeheader()
            self.writer.writerows(self.rows)
            self.file.flush()

    def add(self, step: int, epoch: int, stats: Tensor, lr_backbone: float, lr_head: float) -> None:
        """Keep step `step`'s statistics (float [len(STATS)], on the device) until the next :meth:`flush`."""
        self._pending.append((step, epoch, stats, lr_backbone, lr_head))

    def flush(self) -> None:
        """Read the kept statistics back (one wait for the device) and log one row per finite step."""
        if not self._pending:
            return
        values = torch.stack([p[2] for p in self._pending]).cpu().tolist()
        now = time.perf_counter()
        seconds = (now - self._since) / len(self._pending)  # the group's mean: the device runs ahead of the host
        self._since = now
        for (step, epoch, _, lr_backbone, lr_head), v in zip(self._pending, values, strict=True):
            stat = dict(zip(STATS, v, strict=True))
            if stat["finite"] < 1.0:
                self.nan_skipped += 1
                logger.warning("step %d: non-finite loss, skipped (%d so far)", step, self.nan_skipped)
                continue
            row = {
                "step": step,
                "epoch": epoch,
                "loss": stat["loss"],
                "loss_main": stat["loss_main"],
                "loss_sym": stat["loss_sym"] if self.symmetric else "",
                "lr_backbone": lr_backbone,
                "lr_head": lr_head,
                "grad_norm": stat["grad_norm"],
                "cluster_entropy": stat["cluster_entropy"],
                "visible_fraction": stat["visible_fraction"],
                "nan_skipped": self.nan_skipped,
                "step_time_s": seconds,
            }
            self.rows.append(row)
            if self.file is not None:
                self.writer.writerow(row)
                if self.run is not None:
                    self.run.log({k: v for k, v in row.items() if v != ""}, step=step)
                if step % 10 == 0 or step == 1 or step == self.total_steps:
                    logger.info(
                        "step %d/%d epoch %d loss %.4f entropy %.3f visible %.2f %.3fs/step",
                        step,
                        self.total_steps,
                        epoch,
                        row["loss"],
                        row["cluster_entropy"],
                        row["visible_fraction"],
                        seconds,
                    )
        if self.file is not None:
            self.file.flush()
        self._pending.clear()

    def close(self) -> None:
        """Flush what is kept and close the file and the W&B run."""
        try:
            self.flush()
        finally:
            if self.file is not None:
                self.file.close()
            if self.run is not None:
                self.run.finish()
