"""Does any demo training setting beat its start? Train variants on the synthetic cache and score them.

    python benchmarks/demo_variants.py                      # -> benchmarks/results/demo_variants.{json,md}
    python benchmarks/demo_variants.py --videos 256 --variants default static lr3e-4

1. Builds the demo's track cache with Snakemake in `--workdir` (synthetic data, index, LK tracking; the shipped
   config.yaml with `synthetic.num_videos` = `--videos`), unless it is already there.
2. Trains each variant (the demo's train settings plus the variant's overrides; seed `--seed`) with
   `mosic.train.loop.train` in one process, and scores its starting and trained backbones with the demo's
   Hummingbird and linear-probe settings.
3. Writes each variant's scores and deltas (trained - start, mIoU) with the training time, and the structure of
   the starting and trained features on 64 validation images: mean cosine similarity of patch tokens within an
   image and across images, and, for foreground patches of different images, of the same class against
   different classes (the class gap), plus the share of feature variance explained by patch position.

This is how the README's "What the demo shows" table of attempts was measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from machine import machine_info
from PIL import Image

from mosic.config import RunSpec, evaluate_job, parse_config, run_train_config
from mosic.evaluate.datasets import image_dataset
from mosic.evaluate.features import FeatureExtractor, load_model
from mosic.evaluate.run import run_protocol
from mosic.train.loop import train

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# name -> (train-section overrides, variant: mosic / shuffled / static); epochs_x multiplies --epochs.
VARIANTS: dict[str, tuple[dict, str]] = {
    "default": ({}, "mosic"),
    "static": ({}, "static"),
    "shuffled": ({}, "shuffled"),
    "3x-steps": ({"epochs_x": 3}, "mosic"),  # three times --epochs
    "test_vit3": ({"model": "test_vit3"}, "mosic"),
    "lr3e-4": ({"lr_backbone": 3e-4, "lr_head": 3e-4}, "mosic"),
    "no-photometric": ({"photometric_aug": False}, "mosic"),
    "input256": ({"input_size": 256}, "mosic"),
}


def build_cache(workdir: Path, videos: int) -> Path:
    """The demo's data and track cache in `workdir` (Snakemake; a no-op when it is there); returns the dataset dir."""
    over = workdir / "variants.yaml"
    over.write_text(yaml.safe_dump({"synthetic": {"num_videos": videos}}))
    target = "results/synthetic/tracking_metrics.json"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           target, "--cores", "all", "--configfile", str(over)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return workdir / "results" / "synthetic"


def feature_structure(model: Path, voc_root: Path, size: int, images: int = 64) -> dict[str, float]:
    """Cosine-similarity structure of a backbone's patch tokens on the first `images` validation images."""
    ds = image_dataset("synthetic", str(voc_root), "val")
    n = min(images, len(ds))
    extractor = FeatureExtractor(load_model(str(model), input_size=size), input_size=size, device="cpu")
    feats = F.normalize(extractor(np.stack([ds.image(i) for i in range(n)])).float(), dim=-1)  # [n, S, S, D]
    grid = feats.shape[1]
    labels = torch.as_tensor(np.stack([np.asarray(Image.fromarray(ds.mask(i)).resize((grid, grid), Image.NEAREST))
                                       for i in range(n)]).reshape(-1).astype(np.int64))  # fmt: skip
    flat = feats.reshape(n, grid * grid, -1)
    sim = flat.reshape(n * grid * grid, -1) @ flat.reshape(n * grid * grid, -1).T
    image = torch.arange(n).repeat_interleave(grid * grid)
    other_image = image[:, None] != image[None, :]
    fg = (labels > 0) & (labels != ds.ignore_index)
    pair_fg = fg[:, None] & fg[None, :] & other_image
    same = labels[:, None] == labels[None, :]
    centred = feats - feats.mean((0, 1, 2))
    return {
        "within_image_cos": float(sim[~other_image].mean()),
        "across_image_cos": float(sim[other_image].mean()),
        "fg_class_gap": float(sim[pair_fg & same].mean() - sim[pair_fg & ~same].mean()),
        "position_share": float((centred.mean(0) ** 2).sum(-1).mean() / (centred**2).sum(-1).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where the cache is built (default: a temporary directory)")
    parser.add_argument("--videos", type=int, default=256, help="synthetic videos (the demo has 32)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of every variant that does not set them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cfg = parse_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    ev = cfg.evaluate
    with tempfile.TemporaryDirectory(prefix="mosic-variants-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"building the cache ({args.videos} videos) in {workdir} ...", flush=True)
        ds = build_cache(workdir, args.videos)
        shards = sorted(str(p) for p in (ds / "tracks").glob("shard_*.zarr"))
        rows = []
        for name in args.variants:
            overrides, variant = VARIANTS[name]
            settings = {k: v for k, v in overrides.items() if k != "epochs_x"}
            epochs = args.epochs * overrides.get("epochs_x", 1)
            run = RunSpec(variant=variant, seed=args.seed)
            tc = run_train_config(cfg)
            tc = dataclasses.replace(tc, epochs=epochs, **{"init": "random", **settings})  # the table: random init
            tc = dataclasses.replace(tc, wandb=dataclasses.replace(tc.wandb, mode="disabled"))
            out = workdir / "variants" / name
            start = time.perf_counter()
            result = train(tc, run, shards, out, provenance={"benchmark": "demo_variants", "variant": name})
            seconds = time.perf_counter() - start
            size = tc.input_size if tc.input_size != cfg.train.input_size else None
            ev_v = ev
            if size is not None:  # evaluate at the training size
                ev_v = dataclasses.replace(
                    ev, input_size=size, hummingbird=dataclasses.replace(ev.hummingbird, input_size=size)
                )
            scores = {}
            for model in ("initial_backbone", "backbone"):
                for protocol in ("hummingbird", "linear"):
                    path = out / f"{model}.{protocol}.json"
                    run_protocol(evaluate_job(ev_v, protocol), model=str(out / f"{model}.safetensors"),
                                 model_name=model, image_root=str(ds / "data" / "voc"),
                                 video_root=str(ds / "data" / "ytvos"), out_path=path, provenance={})  # fmt: skip
                    scores[f"{model}_{protocol}"] = json.loads(path.read_text())["metrics"]["miou"]
            for model in ("initial_backbone", "backbone"):
                stats = feature_structure(out / f"{model}.safetensors", ds / "data" / "voc", size or ev.input_size)
                scores |= {f"{model}_{k}": v for k, v in stats.items()}
            deltas = {f"delta_{p}": round(scores[f"backbone_{p}"] - scores[f"initial_backbone_{p}"], 4)
                      for p in ("hummingbird", "linear")}  # fmt: skip
            row = {"variant": name, "track_source": run.track_source, "overrides": overrides, "steps": result["steps"],
                   "train_s": round(seconds, 1), **{k: round(v, 4) for k, v in scores.items()}, **deltas}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"machine": machine_info(), "videos": args.videos, "epochs": args.epochs, "seed": args.seed, "rows": rows}
    (RESULTS / "demo_variants.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        "# Demo training variants: trained vs start (synthetic data, random-init ViT)",
        "",
        f"{args.videos} synthetic videos ({2 * args.videos} clips), {args.epochs} epochs unless the variant sets them, "
        f"seed {args.seed}. Command: `python benchmarks/demo_variants.py`. mIoU; Δ = trained - start.",
        "",
        "| variant | steps | train s | HB start | HB trained | Δ HB | linear start | linear trained | Δ linear |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['steps']} | {r['train_s']} | {r['initial_backbone_hummingbird']:.3f} | "
            f"{r['backbone_hummingbird']:.3f} | {r['delta_hummingbird']:+.3f} | {r['initial_backbone_linear']:.3f} | "
            f"{r['backbone_linear']:.3f} | {r['delta_linear']:+.3f} |"
        )
    lines += [
        "",
        "Feature structure on 64 validation images, start -> trained: mean cosine similarity of patch tokens within an",
        "image and across images; the class gap (foreground patches of different images: same class minus different",
        "class); the share of the feature variance explained by patch position.",
        "",
        "| variant | within-image cos | across-image cos | class gap | position share |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            f"{r[f'initial_backbone_{k}']:.3f} -> {r[f'backbone_{k}']:.3f}"
            for k in ("within_image_cos", "across_image_cos", "fg_class_gap", "position_share")
        ]
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    (RESULTS / "demo_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
