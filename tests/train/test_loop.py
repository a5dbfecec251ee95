"""The training loop on a real (tiny) track cache: finite losses, exact resume, NaN guard, presets, export."""

import csv
import json
from pathlib import Path

import pytest
import torch
from train_helpers import PROV, RUN, losses, tiny_cfg

from mosic.config import RunSpec
from mosic.model.export import load_exported
from mosic.store import ShardReader
from mosic.train import loop
from mosic.train import step as step_module


def test_training_runs_logs_and_exports(tmp_path, shards):
    cfg = tiny_cfg()
    result = loop.train(cfg, RUN, shards, tmp_path / "run", provenance=PROV)
    clips = sum(len(ShardReader(p)) for p in shards)
    assert result["steps"] == result["total_steps"] == clips // 4 * 2  # 4 clips per step, 2 epochs
    values = losses(tmp_path / "run")
    assert len(values) == result["steps"] and all(v == v and v > 0 for v in values)
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(0.0 <= float(r["cluster_entropy"]) <= 1.0 for r in rows)
    assert float(rows[0]["lr_backbone"]) < float(rows[1]["lr_backbone"])  # warm-up
    model = load_exported(tmp_path / "run" / "backbone.safetensors")
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 32, 32))
    assert feats.shape[-1] == 64
    assert result["final"] is not None and Path(result["final"]).exists()
    record = json.loads((tmp_path / "run" / "final.json").read_text())
    assert record["final"] == record["checkpoint"] == str(result["final"]) and record["steps"] == result["steps"]


def test_resume_continues_exactly(tmp_path, shards):
    cfg = tiny_cfg(photometric_aug=True, mask_ratio=0.25, teacher_frames=2)
    loop.train(cfg, RUN, shards, tmp_path / "full", provenance=PROV)
    loop.train(cfg, RUN, shards, tmp_path / "split", provenance=PROV, max_steps=3)  # interrupted after step 3
    assert len(losses(tmp_path / "split")) == 3
    loop.train(cfg, RUN, shards, tmp_path / "split", provenance=PROV)  # resumes from the step-2 checkpoint
    assert losses(tmp_path / "split") == losses(tmp_path / "full")


def test_resumed_run_keeps_the_whole_metrics_history(tmp_path, shards):
    """Snakemake deletes a failed job's metrics.csv before the rerun: the rows travel with the checkpoint."""
    cfg = tiny_cfg()
    loop.train(cfg, RUN, shards, tmp_path / "full", provenance=PROV)
    run = tmp_path / "split"
    loop.train(cfg, RUN, shards, run, provenance=PROV, max_steps=5)  # checkpoint at step 4
    (run / "metrics.csv").unlink()
    loop.train(cfg, RUN, shards, run, provenance=PROV)

    def rows(d):
        with open(d / "metrics.csv") as f:
            return [{k: v for k, v in r.items() if k != "step_time_s"} for r in csv.DictReader(f)]

    assert [int(r["step"]) for r in rows(run)] == list(range(1, len(rows(tmp_path / "full")) + 1))
    assert rows(run) == rows(tmp_path / "full")


def test_nan_guard_skips_then_stops(tmp_path, shards, monkeypatch):
    real = step_module.mosic_step

    def nan_step(*args, **kwargs):
        out = real(*args, **kwargs)
        out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(step_module, "mosic_step", nan_step)
    with pytest.raises(loop.TrainingDiverged, match="train.nan_limit = 2"):
        loop.train(tiny_cfg(nan_limit=2), RUN, shards, tmp_path / "nan", provenance=PROV)


@pytest.mark.parametrize(
    ("overrides", "variant"),
    [
        ({"preset": "faithful"}, "mosic"),
        ({}, "static"),
        ({}, "shuffled"),
        ({"symmetric": True, "assignment": "soft", "gather": "bilinear"}, "mosic"),
        ({"trainable_blocks": 2, "sinkhorn_log_domain": True}, "mosic"),
    ],
)
def test_variants_train(tmp_path, shards, overrides, variant):
    run = RunSpec(variant=variant, seed=0)
    result = loop.train(tiny_cfg(epochs=1, **overrides), run, shards, tmp_path / "v", provenance=PROV, max_steps=2)
    assert result["steps"] == 2 and all(v == v for v in losses(tmp_path / "v"))


def test_trainable_blocks_by_index_freezes_the_rest(shards):
    net = loop.build_net(tiny_cfg(trainable_blocks=2), RUN, loop.PRESETS["default"])
    trainable = {n for n, p in net.backbone.named_parameters() if p.requires_grad}
    assert any(n.startswith("blocks.5.") for n in trainable) and any(n.startswith("blocks.4.") for n in trainable)
    assert not any(n.startswith("blocks.3.") for n in trainable) and "patch_embed.proj.weight" not in trainable
    groups = loop.param_groups(net, tiny_cfg(trainable_blocks=2))
    no_decay = [g for g in groups if g["name"].endswith("no_decay")]
    assert all(g["weight_decay"] == 0.0 for g in no_decay)
    assert all(p.ndim == 1 for g in no_decay for p in g["params"])


def test_wandb_offline_writes_one_run(tmp_path, shards, monkeypatch):
    wandb = pytest.importorskip("wandb")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_env"))
    monkeypatch.setenv("WANDB_X_DISABLE_STATS", "true")
    wandb.teardown()
    cfg = tiny_cfg(epochs=1, wandb={"mode": "offline", "project": "t", "entity": ""})
    loop.train(cfg, RUN, shards, tmp_path / "run", provenance=PROV, max_steps=2)
    wandb.teardown()
    runs = list((tmp_path / "run").glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    assert (tmp_path / "run" / "wandb_id.txt").read_text().strip() in runs[0].name


def test_changed_config_starts_afresh_and_keeps_old_checkpoints(tmp_path, shards):
    run = tmp_path / "run"
    loop.train(tiny_cfg(epochs=1), RUN, shards, run, provenance=PROV)
    first = losses(run)
    result = loop.train(tiny_cfg(epochs=1, lr_head=0.01), RUN, shards, run, provenance=PROV)
    assert result["steps"] == len(first) and len(losses(run)) == len(first)  # a full new run, not a resume
    assert list((run / "checkpoints.old").glob("step_*.safetensors"))
    assert (run / "initial_backbone.safetensors").exists() and (run / "initial_backbone.safetensors.json").exists()


def test_another_seed_or_variant_starts_afresh_and_each_checkpoint_records_its_run(tmp_path, shards):
    run_dir = tmp_path / "run"
    for run in (RUN, RunSpec(variant="static", seed=0), RunSpec(variant="mosic", seed=1)):
        assert loop.train(tiny_cfg(epochs=1), run, shards, run_dir, provenance=PROV, max_steps=2)["steps"] == 2
        [sidecar] = (run_dir / "checkpoints").glob("step_*.json")  # this run's step-2 checkpoint, not a resumed one
        assert json.loads(sidecar.read_text())["meta"]["run"] == {"variant": run.variant, "seed": run.seed}
    assert list((run_dir / "checkpoints.old").glob("step_*.safetensors"))


def test_batch_not_divisible_by_processes_fails_before_training(tmp_path, shards, monkeypatch):
    """A clamped GPU count (--resources gpu=3 with batch 4) stops with a message instead of a silent batch of 3."""
    monkeypatch.setattr(loop.distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match=r"train.batch_size \(4\) is not a multiple of the 3 training processes"):
        loop.train(tiny_cfg(), RUN, shards, tmp_path / "run", provenance=PROV)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path, shards):
    """train.compile: torch.compile keeps parameter names (EMA, checkpoints, export) and the maths."""
    eager = loop.train(tiny_cfg(epochs=1), RUN, shards, tmp_path / "eager", provenance=PROV, max_steps=2)
    compiled = loop.train(tiny_cfg(epochs=1, compile=True), RUN, shards, tmp_path / "compiled", provenance=PROV,
                          max_steps=2)  # fmt: skip
    assert eager["steps"] == compiled["steps"] == 2
    torch.testing.assert_close(torch.tensor(losses(tmp_path / "compiled")), torch.tensor(losses(tmp_path / "eager")),
                               rtol=1e-3, atol=1e-4)  # fmt: skip
