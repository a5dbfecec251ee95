"""Does motion teach? The tracked run against its start and the static, shuffled and transposed controls.

The demo's claim, measured on synthetic data the demo does not use (``--synthetic-seed`` and ``--texture-seed``
replace ``synthetic.seed`` and ``synthetic.texture_seed`` of ``config.yaml``; every other setting is the demo's):

1. render the turning-object dataset, index it, cache the clips tracked with each ``--trackers`` entry
   (``ground_truth``: the exact synthetic trajectories; ``lk``: the demo's Lucas-Kanade tracker);
2. make the image-pretrained start once (``pretrain:`` section; it only ever saw face ``pretrain.face``);
3. per tracker and training seed, train the tracked run (``mosic``) and the controls from that start;
4. score the start and every run with Hummingbird (same-face: the standard val split, memory from train) and
   cross-view Hummingbird (memory from ``train_face<a>``, queries ``val_face<b>``, both directions averaged).

Reported (mIoU points): each run's change against the start, per seed and the mean; the target is that the
tracked run beats its start and every control by >= 3 points on cross-view, in every seed, while losing <= 1 point
on the standard protocol. Writes ``benchmarks/results/motion_teaches.json`` and ``.md``. About 10-15 minutes on
2 CPU cores with the defaults.

Usage: ``python benchmarks/motion_teaches.py [--seeds 0 1] [--trackers ground_truth lk] [--workdir DIR]
[--set train.lr_backbone=1e-4 ...]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.config import parse_config, run_train_config  # noqa: E402
from mosic.data.index import run_index  # noqa: E402
from mosic.data.synthetic import generate_synthetic  # noqa: E402
from mosic.evaluate.datasets import image_dataset  # noqa: E402
from mosic.evaluate.features import FeatureExtractor, load_model  # noqa: E402
from mosic.evaluate.hummingbird import hummingbird  # noqa: E402
from mosic.provenance import provenance  # noqa: E402
from mosic.tracking.shard import track_shard  # noqa: E402
from mosic.train.loop import train  # noqa: E402
from mosic.train.pretrain import run_pretrain  # noqa: E402

VARIANTS = ("mosic", "static", "shuffled", "transposed")


def set_key(raw: dict, assignment: str) -> None:
    """``section.key=value`` (YAML value) into the raw config."""
    key, value = assignment.split("=", 1)
    *path, last = key.split(".")
    node = raw
    for part in path:
        node = node[part]
    node[last] = yaml.safe_load(value)


def score(model_path: str, cfg, voc: Path, faces: int) -> dict[str, float]:
    """Hummingbird mIoU (points): standard (train -> val) and cross-view (train_face a -> val_face b, a != b)."""
    ev = cfg.evaluate
    hb = ev.hummingbird
    extractor = FeatureExtractor(load_model(model_path, input_size=hb.input_size), input_size=hb.input_size)
    same = hummingbird(image_dataset("synthetic", voc, "train"), image_dataset("synthetic", voc, "val"), extractor, hb,
                       seed=ev.seed)  # fmt: skip
    out = {"same": 100 * same["miou"]}
    cross = []
    for a in range(faces):
        for b in range(faces):
            if a != b:
                memory, queries = (
                    image_dataset("synthetic", voc, f"{s}_face{f}") for s, f in (("train", a), ("val", b))
                )
                r = hummingbird(memory, queries, extractor, hb, seed=ev.seed)
                out[f"cross_{a}to{b}"] = 100 * r["miou"]
                cross.append(out[f"cross_{a}to{b}"])
    out["cross"] = statistics.mean(cross)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-seed", type=int, default=11)
    parser.add_argument("--texture-seed", type=int, default=7)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    parser.add_argument("--trackers", nargs="+", default=["ground_truth", "lk"], choices=["ground_truth", "lk"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", action="append", default=[], help="config override section.key=value (YAML)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep data, caches and runs here")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="motion_teaches", help="results file name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)

    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["synthetic"]["seed"], raw["synthetic"]["texture_seed"] = args.synthetic_seed, args.texture_seed
    raw["train"]["wandb"]["mode"] = "disabled"
    for assignment in args.set:
        set_key(raw, assignment)
    cfg = parse_config(raw)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mosic-motion-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        if not (data / "voc").is_dir():
            print("rendering the dataset ...", flush=True)
            generate_synthetic(cfg.synthetic, data)
        prov = provenance(cfg, stage="motion_teaches")
        shard_clips = [work / "clips" / f"shard_{s:05d}.parquet" for s in range(cfg.clips.num_shards)]
        run_index(root=data / "ytvos", dataset=cfg.dataset, index=cfg.index, clips=cfg.clips,
                  index_path=work / "index.parquet", clips_path=work / "clips.parquet", provenance=prov,
                  shard_paths=shard_clips)  # fmt: skip
        start = work / "pretrain" / "backbone.safetensors"
        if not start.exists():
            print("pretraining the start ...", flush=True)
            pre = run_pretrain(cfg.pretrain, data / "voc", start, model=cfg.train.model,
                               input_size=cfg.train.input_size, faces=cfg.synthetic.faces, provenance=prov)  # fmt: skip
        else:
            pre = json.loads((start.parent / "pretrain.json").read_text())
        voc, faces = data / "voc", cfg.synthetic.faces
        scores = {"start": score(str(start), cfg, voc, faces)}
        print("start", {k: round(v, 1) for k, v in scores["start"].items()}, flush=True)
        for tracker in args.trackers:
            track = dataclasses.replace(cfg.track, tracker=tracker)
            shards = []
            for s in range(cfg.clips.num_shards):
                out = work / f"tracks_{tracker}" / f"shard_{s:05d}.zarr"
                if not out.exists():
                    track_shard(shard=s, clips_path=shard_clips[s], num_frames=cfg.clips.num_frames, track=track,
                                out_path=out, provenance=prov, scenes_dir=data / "ytvos" / "Scenes")  # fmt: skip
                shards.append(out)
            for seed in args.seeds:
                for variant in args.variants:
                    name = f"{tracker}/{variant}_s{seed}"
                    tc = run_train_config(cfg, variant, seed, pretrain_backbone=str(start))
                    t0 = time.perf_counter()
                    train(tc, shards, work / "runs" / name, provenance=prov)
                    scores[name] = score(str(work / "runs" / name / "backbone.safetensors"), cfg, voc, faces)
                    print(name, f"{time.perf_counter() - t0:.0f}s", {k: round(v, 1) for k, v in scores[name].items()},
                          flush=True)  # fmt: skip

    base = scores["start"]
    rows = []
    for tracker in args.trackers:
        for variant in args.variants:
            per_seed = [scores[f"{tracker}/{variant}_s{s}"] for s in args.seeds]
            row = {"tracker": tracker, "variant": variant}
            for metric in ("same", "cross"):
                deltas = [r[metric] - base[metric] for r in per_seed]
                row[f"d_{metric}"] = round(statistics.mean(deltas), 2)
                row[f"d_{metric}_seeds"] = [round(d, 2) for d in deltas]
            rows.append(row)
    verdict = {}
    for tracker in args.trackers:
        mine = {r["variant"]: r for r in rows if r["tracker"] == tracker}
        if "mosic" not in mine:
            continue
        m = mine["mosic"]
        margins = {v: [a - b for a, b in zip(m["d_cross_seeds"], r["d_cross_seeds"], strict=True)]
                   for v, r in mine.items() if v != "mosic"}  # fmt: skip
        verdict[tracker] = {
            "cross_vs_start": m["d_cross_seeds"],
            "cross_margin_vs_controls": {v: [round(x, 2) for x in d] for v, d in margins.items()},
            "same_vs_start": m["d_same_seeds"],
            "target_met": all(d >= 3 for d in m["d_cross_seeds"])
            and all(x >= 3 for d in margins.values() for x in d)
            and all(d >= -1 for d in m["d_same_seeds"]),
        }
    res = {
        "benchmark": "motion_teaches",
        "settings": {
            "synthetic_seed": args.synthetic_seed,
            "texture_seed": args.texture_seed,
            "seeds": args.seeds,
            "trackers": args.trackers,
            "overrides": args.set,
            "train": dataclasses.asdict(cfg.train),
            "pretrain": dataclasses.asdict(cfg.pretrain),
            "synthetic": dataclasses.asdict(cfg.synthetic),
        },  # fmt: skip
        "pretrain": {k: pre[k] for k in ("val_patch_accuracy", "final_loss", "steps")},
        "scores": {k: {m: round(v, 2) for m, v in s.items()} for k, s in scores.items()},
        "rows": rows,
        "verdict": verdict,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine_info(torch=torch.__version__),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(res))
    print(markdown(res))


def markdown(res: dict[str, Any]) -> str:
    s = res["settings"]
    start = res["scores"]["start"]
    lines = [
        "# Does motion teach? (`benchmarks/motion_teaches.py`)",
        "",
        f"Synthetic seed {s['synthetic_seed']}, texture seed {s['texture_seed']} (the demo uses 0 and 0), training "
        f"seeds {s['seeds']}, overrides {s['overrides'] or 'none'}; every run starts from the image-pretrained start "
        f"(patch accuracy {res['pretrain']['val_patch_accuracy']}). Start: Hummingbird {start['same']:.1f}, "
        f"cross-view Hummingbird {start['cross']:.1f} mIoU.",
        "",
        "| tracker | run | Δ Hummingbird (mean; per seed) | Δ cross-view Hummingbird (mean; per seed) |",
        "|---|---|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['tracker']} | {r['variant']} | {r['d_same']:+.1f} ("
            + ", ".join(f"{d:+.1f}" for d in r["d_same_seeds"])
            + f") | {r['d_cross']:+.1f} ("
            + ", ".join(f"{d:+.1f}" for d in r["d_cross_seeds"])
            + ") |"
        )
    lines.append("")
    for tracker, v in res["verdict"].items():
        lines.append(
            f"- {tracker}: target (tracked run >= +3 over its start and every control on cross-view in every seed, "
            f">= -1 on the standard protocol) **{'met' if v['target_met'] else 'not met'}**; margins over the "
            f"controls per seed: {v['cross_margin_vs_controls']}."
        )
    lines += ["", f"Wall time {res['wall_s']:.0f} s on {res['machine']['cpu_count']} CPUs.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
