"""Does motion teach? The tracked run against its start and the static, shuffled and transposed controls.

One function, :func:`run_study`, runs the whole comparison on the synthetic turning-object data in a working folder,
outside Snakemake (``benchmarks/motion_teaches.py`` reports it; ``tests/test_motion_teaches.py`` asserts it on a tiny
configuration):

1. render the dataset (``synthetic:``), index it, cache the clips tracked with each tracker (``ground_truth``: the
   exact synthetic trajectories; ``lk``: Lucas-Kanade with ``track.substep`` as the pipeline resolves it);
2. make the image-pretrained start once when ``train.init`` is ``pretrain`` (it only ever saw face
   ``pretrain.face``);
3. per tracker and training seed, train the tracked run (``mosic``) and the controls from that start;
4. score the start and every run with :func:`score_model`: Hummingbird (same-face: the standard val split, memory
   from train) and cross-view Hummingbird (memory from ``train_face<a>``, queries ``val_face<b>``, both directions
   averaged).

Everything already in the folder (data, index, start, track caches, finished runs) is reused, so a study can be
extended run by run. Runs live in ``<work>/runs/<name>/<tracker>/<variant>_s<seed>``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mosic.config import Config, RunSpec, run_train_config, track_substep
from mosic.data.index import run_index
from mosic.data.synthetic import generate_synthetic
from mosic.evaluate.datasets import image_dataset
from mosic.evaluate.features import FeatureExtractor, load_model
from mosic.evaluate.hummingbird import hummingbird
from mosic.provenance import provenance
from mosic.tracking.shard import track_shard
from mosic.train.loop import train
from mosic.train.pretrain import run_pretrain

__all__ = ["VARIANTS", "run_study", "score_model", "summarize"]

VARIANTS = ("mosic", "static", "shuffled", "transposed")


def score_model(model_path: str | Path, cfg: Config, voc: Path, *, same: bool = True) -> dict[str, float]:
    """Hummingbird mIoU in points: ``same`` (train -> val; left out with ``same=False``) and ``cross`` (mean over
    ``train_face a -> val_face b``, a != b, each direction also under ``cross_<a>to<b>``)."""
    ev = cfg.evaluate
    hb = ev.hummingbird
    extractor = FeatureExtractor(load_model(str(model_path), input_size=hb.input_size), input_size=hb.input_size)
    out = {}
    if same:
        train_val = (image_dataset("synthetic", voc, split) for split in ("train", "val"))
        out["same"] = 100 * hummingbird(*train_val, extractor, hb, seed=ev.seed)["miou"]
    cross = []
    faces = cfg.synthetic.faces
    for a in range(faces):
        for b in range(faces):
            if a != b:
                memory = image_dataset("synthetic", voc, f"train_face{a}")
                queries = image_dataset("synthetic", voc, f"val_face{b}")
                out[f"cross_{a}to{b}"] = 100 * hummingbird(memory, queries, extractor, hb, seed=ev.seed)["miou"]
                cross.append(out[f"cross_{a}to{b}"])
    out["cross"] = statistics.mean(cross)
    return out


def run_study(
    cfg: Config,
    work: Path,
    *,
    trackers: Sequence[str] = ("ground_truth", "lk"),
    seeds: Sequence[int] = (0, 1),
    variants: Sequence[str] = VARIANTS,
    name: str = "study",
    same: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the study (module docstring) in `work`; returns ``{"scores": {"start_s<seed>" |
    "<tracker>/<variant>_s<seed>": score_model(...)}, "pretrain": the pretrained start's record or None}`` (a seed's
    start is the backbone its runs began from: the pretrained start, or the seed's random initialisation).
    ``same=False`` scores cross-view only."""
    if cfg.dataset.kind != "synthetic" or cfg.synthetic.faces < 2:
        raise ValueError("the motion study needs dataset.kind: synthetic with synthetic.faces >= 2")
    work.mkdir(parents=True, exist_ok=True)
    data, voc = work / "data", work / "data" / "voc"
    if not voc.is_dir():
        log("rendering the dataset ...")
        generate_synthetic(cfg.synthetic, data)
    prov = provenance(cfg, stage="motion_study")
    shard_clips = [work / "clips" / f"shard_{s:05d}.parquet" for s in range(cfg.clips.num_shards)]
    if not all(p.exists() for p in shard_clips):
        run_index(root=data / "ytvos", dataset=cfg.dataset, index=cfg.index, clips=cfg.clips,
                  index_path=work / "index.parquet", clips_path=work / "clips.parquet", provenance=prov,
                  shard_paths=shard_clips)  # fmt: skip
    start, pre = None, None
    if cfg.train.init == "pretrain":
        start = work / "pretrain" / "backbone.safetensors"
        if not start.exists():
            log("pretraining the start ...")
            run_pretrain(cfg.pretrain, voc, start, model=cfg.train.model, input_size=cfg.train.input_size,
                         faces=cfg.synthetic.faces, provenance=prov)  # fmt: skip
        pre = json.loads((start.parent / "pretrain.json").read_text())
    scores: dict[str, dict[str, float]] = {}
    for tracker in trackers:
        tcfg = dataclasses.replace(cfg, track=dataclasses.replace(cfg.track, tracker=tracker))
        shards = []
        for s in range(cfg.clips.num_shards):
            out = work / f"tracks_{tracker}" / f"shard_{s:05d}.zarr"
            if not out.exists():
                track_shard(shard=s, clips_path=shard_clips[s], num_frames=cfg.clips.num_frames, track=tcfg.track,
                            out_path=out, provenance=prov, scenes_dir=data / "ytvos" / "Scenes",
                            substep=track_substep(tcfg))  # fmt: skip
            shards.append(out)
        for seed in seeds:
            for variant in variants:
                key = f"{tracker}/{variant}_s{seed}"
                run = work / "runs" / name / key
                tc = run_train_config(cfg, pretrain_backbone=str(start) if start else None)
                train(tc, RunSpec(variant=variant, seed=seed), shards, run, provenance=prov)
                begin = f"start_s{seed}"
                if begin not in scores:  # every run of a seed starts from the same backbone, which it exported
                    done = [v for k, v in scores.items() if k.startswith("start_s")]
                    shared = start is not None and done  # the pretrained start is every seed's
                    scores[begin] = (
                        done[0] if shared else score_model(run / "initial_backbone.safetensors", cfg, voc, same=same)
                    )
                    log(f"{begin} {_short(scores[begin])}")
                scores[key] = score_model(run / "backbone.safetensors", cfg, voc, same=same)
                log(f"{key} {_short(scores[key])}")
    return {"scores": scores, "pretrain": pre}


def _short(score: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.1f}" for k, v in score.items())


def summarize(scores: dict[str, dict[str, float]], trackers: Sequence[str], variants: Sequence[str],
              seeds: Sequence[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Per tracker and variant, the change against the start (mean and per seed) on both metrics, and per tracker
    the verdict: the tracked run beats its start and every control by >= 3 points on cross-view in every seed, and
    loses <= 1 point on the standard protocol."""
    rows = []
    for tracker in trackers:
        for variant in variants:
            row: dict[str, Any] = {"tracker": tracker, "variant": variant}
            for metric in ("same", "cross"):
                deltas = [scores[f"{tracker}/{variant}_s{s}"][metric] - scores[f"start_s{s}"][metric] for s in seeds]
                row[f"d_{metric}"] = round(statistics.mean(deltas), 2)
                row[f"d_{metric}_seeds"] = [round(d, 2) for d in deltas]
            rows.append(row)
    verdict = {}
    for tracker in trackers:
        mine = {r["variant"]: r for r in rows if r["tracker"] == tracker}
        if "mosic" not in mine:
            continue
        m = mine["mosic"]
        margins = {v: [round(a - b, 2) for a, b in zip(m["d_cross_seeds"], r["d_cross_seeds"], strict=True)]
                   for v, r in mine.items() if v != "mosic"}  # fmt: skip
        verdict[tracker] = {
            "cross_vs_start": m["d_cross_seeds"],
            "cross_margin_vs_controls": margins,
            "same_vs_start": m["d_same_seeds"],
            "target_met": all(d >= 3 for d in m["d_cross_seeds"])
            and all(x >= 3 for d in margins.values() for x in d)
            and all(d >= -1 for d in m["d_same_seeds"]),
        }
    return rows, verdict
