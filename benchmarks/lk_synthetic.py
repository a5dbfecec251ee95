"""LK accuracy on the synthetic demo data (TAP-Vid metrics against exact ground truth), over LK settings and clip steps.

Picks the demo's tracking defaults by measurement: window, forward-backward threshold and clip step, each tracked
directly between the sampled frames (``track.substep: direct``) and, for steps > 1, through every frame in between
(substep 1, what ``track.substep: auto`` does for LK). The data are the demo's (``synthetic`` of ``config.yaml``).
Writes ``benchmarks/results/lk_synthetic.{json,md}``. About a minute on 2 cores.
Usage: ``python benchmarks/lk_synthetic.py [--videos 8]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import yaml
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.config import parse_config  # noqa: E402
from mosic.data.synthetic import render_video  # noqa: E402
from mosic.geometry import grid_queries  # noqa: E402
from mosic.tracking.evaluate import clip_ground_truth  # noqa: E402
from mosic.tracking.lk import LKTracker  # noqa: E402
from mosic.tracking.metrics import tapvid_metrics  # noqa: E402
from mosic.tracking.substep import substep_frames, track_substep  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lk_synthetic")
    args = ap.parse_args()
    cfg = parse_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    syn, track = cfg.synthetic, cfg.track
    videos = [render_video(syn, i) for i in range(args.videos)]
    queries = grid_queries(track.height, track.width, track.grid)
    t_len = cfg.clips.num_frames
    steps = (1, 2, 3)
    # Per step: each video's two clips (from the first frame, ending on the last) and their exact ground truth,
    # which no tracker setting changes.
    clips = {step: [(v, np.minimum(start + step * np.arange(t_len), syn.num_frames - 1))
                    for v in videos for start in (0, max(0, syn.num_frames - (t_len - 1) * step - 1))]
             for step in steps}  # fmt: skip
    truth = {step: [clip_ground_truth(v.scene, idx, queries, (track.height, track.width)) for v, idx in clips[step]]
             for step in steps}  # fmt: skip
    rows = []
    settings = itertools.product(steps, (None, 1), (15, 21), (3,), (1.0, 2.0, 4.0))
    for step, substep, win, levels, fb in settings:
        if substep is not None and substep >= step:
            continue
        tracker = LKTracker(win_size=win, levels=levels, fb_threshold=fb, threads=2)
        preds, pvis, times = [], [], []
        for v, idx in clips[step]:
            dense_idx, keep = substep_frames(idx, substep)
            t0 = time.perf_counter()
            res = track_substep(tracker, v.frames[dense_idx], queries, keep)
            times.append(time.perf_counter() - t0)
            preds.append(res.tracks)
            pvis.append(res.visibility)
        p_t, p_v = np.stack(preds), np.stack(pvis)
        g_t, g_v = (np.stack([gt[k] for gt in truth[step]]) for k in (0, 1))
        m = tapvid_metrics(p_t, p_v, g_t, g_v, image_size=(track.height, track.width))
        static = tapvid_metrics(
            np.broadcast_to(p_t[:, :1], p_t.shape), np.ones_like(p_v), g_t, g_v, image_size=(track.height, track.width)
        )
        rows.append(
            {
                "step": step,
                "substep": "direct" if substep is None else substep,
                "win_size": win,
                "levels": levels,
                "fb_threshold": fb,
                "delta_avg": m["delta_avg"],
                "average_jaccard": m["average_jaccard"],
                "occlusion_accuracy": m["occlusion_accuracy"],
                "visible_lk": float(p_v[:, 1:].mean()),
                "visible_gt": float(g_v[:, 1:].mean()),
                "static_delta_avg": static["delta_avg"],
                "ms_per_clip": 1000 * float(np.median(times)),
            }
        )
        print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "videos": args.videos,
        "clips": 2 * args.videos,
        "size": [track.height, track.width],
        "grid": track.grid,
        "machine": machine_info(numpy=np.__version__, opencv=cv2.__version__),
    }
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# LK on the synthetic demo (`benchmarks/lk_synthetic.py`)",
        "",
        f"{2 * args.videos} clips of {t_len} frames, {track.width}x{track.height}, {track.grid}x{track.grid} grid; "
        "TAP-Vid metrics vs exact ground truth (frame 0 excluded). ms = median per clip, 2 threads. substep: "
        "`direct` tracks the sampled frames, 1 every frame in between (`track.substep: auto` for LK); static δ_avg: "
        "every point left where it was at frame 0.",
        "",
        "| step | substep | win | levels | fb px | δ_avg | AJ | OA | visible LK / GT | static δ_avg | ms/clip |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['substep']} | {r['win_size']} | {r['levels']} | {r['fb_threshold']} | "
            f"{r['delta_avg']:.3f} | "
            f"{r['average_jaccard']:.3f} | {r['occlusion_accuracy']:.3f} | "
            f"{r['visible_lk']:.2f} / {r['visible_gt']:.2f} | {r['static_delta_avg']:.3f} | {r['ms_per_clip']:.0f} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
