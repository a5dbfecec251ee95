"""Which training settings let motion teach? The tracked run against the static control under several settings.

Each entry of :data:`SWEEP` is one :func:`mosic.motion_study.run_study` (exact tracks, training seed 0, the tracked
run and the static control, on the data ``benchmarks/motion_teaches.py`` uses: synthetic seed 11, texture seed 7)
with the demo's config plus the entry's overrides. Reported per entry: both runs' change against the start on
Hummingbird, cross-view Hummingbird, cross-face object retrieval (:func:`mosic.motion_study.object_retrieval`) and
face linking (:func:`mosic.motion_study.face_linking`). Entries that change the data or the start (``synthetic.*``,
``pretrain.*``) get their own folder.

Writes ``benchmarks/results/motion_sweep.json`` and ``.md``; with ``--only`` the named entries replace theirs in an
existing results file and the others are kept. About 2 minutes per entry on 2 CPU cores (runs and data already in
``--workdir`` are reused); the ``balanced`` entries train on every frame with the symmetric term, about 5 minutes
(``v256bal`` about 45).

Usage: ``python benchmarks/motion_sweep.py [--workdir DIR] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from machine import machine_info
from motion_teaches import set_key

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.config import parse_config  # noqa: E402
from mosic.motion_study import run_study  # noqa: E402

BALANCED = ["train.points=moving", "train.lr_backbone=0.0003", "train.symmetric=true", "train.teacher_frames=0"]
# name: (what it tries, overrides)
SWEEP: dict[str, tuple[str, list[str]]] = {
    "base": ("the demo's settings", []),
    "lrb4": ("backbone learning rate 1e-4 (head 1e-3)", ["train.lr_backbone=0.0001"]),
    "sym": ("symmetric term (every student frame predicts frame 0)", ["train.symmetric=true"]),
    "lrb4sym": ("both", ["train.lr_backbone=0.0001", "train.symmetric=true"]),
    "lrb3": ("backbone learning rate 3e-4 (head 1e-3)", ["train.lr_backbone=0.0003"]),
    "lrb3sym": ("backbone 3e-4 and the symmetric term", ["train.lr_backbone=0.0003", "train.symmetric=true"]),
    "lrb3symlong": ("the same for 80 epochs", ["train.lr_backbone=0.0003", "train.symmetric=true", "train.epochs=80"]),
    "head4": (
        "backbone 3e-4, head 1e-4, symmetric (the backbone, not the head, must link)",
        ["train.lr_backbone=0.0003", "train.lr_head=0.0001", "train.symmetric=true"],
    ),
    "tf0": ("the teacher on all 12 frames", ["train.teacher_frames=0"]),
    "long": ("4x the steps (80 epochs)", ["train.epochs=80"]),
    "bs64": ("64 clips per batch (more clips than prototypes), 80 epochs", ["train.batch_size=64", "train.epochs=80"]),
    "k128": ("128 prototypes (8 per clip of a batch)", ["train.num_prototypes=128"]),
    "v128": ("4x the videos (128), 5 epochs (same steps)", ["synthetic.num_videos=128", "train.epochs=5"]),
    "pre1500": ("a stronger start: 1,500 pretraining steps", ["pretrain.steps=1500"]),
    # The balanced setting of benchmarks/results/motion_teaches_balanced.md, and changes to it.
    "balanced": ("moving points, backbone 3e-4, symmetric, teacher on all frames (the balanced setting)", BALANCED),
    "mask50": ("balanced, the student sees half its patches (mask_ratio 0.5)", [*BALANCED, "train.mask_ratio=0.5"]),
    "ema95": ("balanced, a faster teacher (EMA momentum 0.95)", [*BALANCED, "train.ema_momentum=0.95"]),
    "soft": ("balanced, soft Sinkhorn targets", [*BALANCED, "train.assignment=soft"]),
    "disk": (
        "balanced, every object a disk (no outline links an object's faces)",
        [*BALANCED, "synthetic.shape=disk"],
    ),
    "v256bal": ("balanced, 8x the videos (256) and so 8x the steps (640)", [*BALANCED, "synthetic.num_videos=256"]),
}
METRICS = ("same", "cross", "objects", "linking")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="data, caches and runs (reused when present)")
    parser.add_argument("--only", nargs="+", default=list(SWEEP), choices=list(SWEEP))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    started = time.perf_counter()
    entries, wall = [], 0.0
    previous = args.out / "motion_sweep.json"
    if set(args.only) != set(SWEEP) and previous.exists():  # keep the entries not rerun
        old = json.loads(previous.read_text())
        entries, wall = [e for e in old["entries"] if e["name"] not in args.only], old["wall_s"]
    for name in args.only:
        what, overrides = SWEEP[name]
        raw = yaml.safe_load((REPO / "config.yaml").read_text())
        raw["synthetic"]["seed"], raw["synthetic"]["texture_seed"] = 11, 7
        raw["train"]["wandb"]["mode"] = "disabled"
        for assignment in overrides:
            set_key(raw, assignment)
        own_data = any(o.startswith(("synthetic.", "pretrain.")) for o in overrides)
        work = args.workdir / name if own_data else args.workdir
        study = run_study(parse_config(raw), work, trackers=["ground_truth"], seeds=[0], variants=["mosic", "static"],
                          name=name, log=lambda line: print(line, flush=True))  # fmt: skip
        scores = study["scores"]
        start, mosic, static = scores["start_s0"], scores["ground_truth/mosic_s0"], scores["ground_truth/static_s0"]
        entries.append({
            "name": name, "what": what, "overrides": overrides,
            "start": {m: round(start[m], 2) for m in METRICS},
            "machine": machine_info(torch=torch.__version__),
            "mosic": {m: round(mosic[m] - start[m], 2) for m in METRICS},
            "static": {m: round(static[m] - start[m], 2) for m in METRICS},
            "margin": {m: round(mosic[m] - static[m], 2) for m in METRICS},
        })  # fmt: skip
    entries.sort(key=lambda e: list(SWEEP).index(e["name"]))
    res = {"entries": entries, "wall_s": round(wall + time.perf_counter() - started, 1),
           "machine": machine_info(torch=torch.__version__)}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "motion_sweep.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "motion_sweep.md").write_text(markdown(res))
    print(markdown(res))


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Which settings let motion teach? (`benchmarks/motion_sweep.py`)",
        "",
        "Exact tracks, training seed 0, synthetic seed 11 / texture seed 7; the tracked run (`mosic`) and the static "
        "control from the image-pretrained start, change against the start: Hummingbird and cross-view Hummingbird in "
        "mIoU points, cross-face object retrieval in percent (object patches only: is the nearest patch of the other "
        "face's images of the same class; chance 16.7; – where an entry predates it), face linking in cosine points "
        "x 100 (an object's two faces against another object of the same clip, on the training videos; what tracks "
        "can teach and a still point cannot).",
        "",
        "| entry | what | start HB / cross / objects / linking | mosic Δ HB | static Δ HB | mosic Δ cross "
        "| static Δ cross | mosic Δ objects | static Δ objects | mosic Δ linking | static Δ linking |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(d: dict, key: str, fmt: str) -> str:
        return format(d[key], fmt) if key in d else "–"

    for e in res["entries"]:
        s, m, c = e["start"], e["mosic"], e["static"]
        lines.append(
            f"| {e['name']} | {e['what']} | {s['same']:.1f} / {s['cross']:.1f} / {cell(s, 'objects', '.1f')} / "
            f"{s['linking']:+.1f} | {m['same']:+.1f} | {c['same']:+.1f} | {m['cross']:+.1f} | {c['cross']:+.1f} "
            f"| {cell(m, 'objects', '+.1f')} | {cell(c, 'objects', '+.1f')} "
            f"| {m['linking']:+.1f} | {c['linking']:+.1f} |"
        )
    cpus = res["machine"]["cpu_count"]
    lines += ["", f"Wall time {res['wall_s']:.0f} s on {cpus} CPUs (every run that made these entries).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
