"""Does any demo training setting beat its start? Train variants on the synthetic cache and score them.

    python benchmarks/demo_variants.py                      # -> benchmarks/results/demo_variants.{json,md}
    python benchmarks/demo_variants.py --videos 256 --variants default static lr3e-4

1. Builds the demo's track cache with Snakemake in `--workdir` (synthetic data, index, LK tracking; the shipped
   config.yaml with `synthetic.num_videos` = `--videos`), unless it is already there.
2. Trains each variant (the demo's train settings plus the variant's overrides; seed `--seed`) with
   `mosic.train.loop.train` in one process, and scores its starting and trained backbones with the demo's
   Hummingbird and linear-probe settings.
3. Writes each variant's scores and deltas (trained - start, mIoU) with the training time.

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

import yaml
from machine import machine_info

from mosic.config import parse_config, run_train_config
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
            tc = dataclasses.replace(run_train_config(cfg, variant, args.seed), epochs=epochs, **settings)
            tc = dataclasses.replace(tc, wandb=dataclasses.replace(tc.wandb, mode="disabled"))
            out = workdir / "variants" / name
            start = time.perf_counter()
            result = train(tc, shards, out, provenance={"benchmark": "demo_variants", "variant": name})
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
                    run_protocol(protocol, model=str(out / f"{model}.safetensors"), model_name=model, cfg=ev_v,
                                 image_root=str(ds / "data" / "voc"), video_root=str(ds / "data" / "ytvos"),
                                 out_path=path, provenance={})  # fmt: skip
                    scores[f"{model}_{protocol}"] = json.loads(path.read_text())["metrics"]["miou"]
            deltas = {f"delta_{p}": round(scores[f"backbone_{p}"] - scores[f"initial_backbone_{p}"], 4)
                      for p in ("hummingbird", "linear")}  # fmt: skip
            row = {"variant": name, "track_source": tc.track_source, "overrides": overrides, "steps": result["steps"],
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
    (RESULTS / "demo_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
