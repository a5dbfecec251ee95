"""LK tracking through the frames between a clip's sampled frames (``track.substep``) against direct tracking.

Measures, for the LK settings of ``config.yaml`` (``track.lk``) on one thread:

1. **Real videos at the published setting**: 12-frame clips at step 6, frames resized to 224x224, a 32x32 query
   grid, from the clips in ``../shared/data/videos`` (apple, bear, cat, paragliding; two clips per video, from the
   first frame and ending on the last one; a video of fewer than 12 x 6 frames gets the smaller step
   :func:`mosic.data.clips.sample_clip` gives it: apple 4, paragliding 5). Per clip and as the median over clips:

   - *visible at the last frame*: the share of the grid LK still tracks at frame 11;
   - *forward-backward error*: the points visible at frame 11 are tracked back to frame 0 the same way (same
     substep, frames reversed), and the error is the distance from where they come back to where they started,
     over the points visible at the end of both passes (median per clip). No ground truth is needed: an error
     of a pixel or less says the round trip is consistent, not that the tracks are right. Since it only counts
     the survivors, the share of the whole grid that comes back within 1 px is reported too;
   - time: tracking one clip forward (s), and decoding its frames with the pipeline's reader
     (:class:`mosic.data.videofile.VideoFileReader`, resized to 224² by PyAV) for each substep.

2. **Synthetic videos with exact trajectories** (the demo data of ``config.yaml``'s ``synthetic`` section, rendered
   with 67 frames so that a 12-frame clip at step 6 fits): TAP-Vid δ_avg, average Jaccard and occlusion accuracy
   (:func:`mosic.tracking.metrics.tapvid_metrics`, thresholds in 256-px units, frame 0 excluded) of one 12-frame
   clip per video from frame 0, at steps 3 and 6, at 128x128 with a 32x32 grid.

"direct" tracks the 12 sampled frames (``track.substep: direct``, the behaviour before substeps); "substep k"
tracks every k-th source frame between them (:mod:`mosic.tracking.substep`). Writes
``benchmarks/results/substep.{json,md}``. About 2-3 minutes on 2 shared cores.

Usage: ``python benchmarks/substep.py [--videos 12] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import yaml
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.config import parse_config  # noqa: E402
from mosic.data.readers import open_video  # noqa: E402
from mosic.data.synthetic import render_video  # noqa: E402
from mosic.geometry import grid_queries  # noqa: E402
from mosic.tracking import tapvid_metrics  # noqa: E402
from mosic.tracking.ground_truth import clip_ground_truth  # noqa: E402
from mosic.tracking.lk import LKTracker  # noqa: E402
from mosic.tracking.substep import substep_frames, track_substep  # noqa: E402

VIDEOS = REPO / "../shared/data/videos"
NAMES = ("apple", "bear", "cat", "paragliding")
T, STEP, SIZE, GRID = 12, 6, 224, 32
SUBSTEPS: tuple[int | None, ...] = (None, 3, 2, 1)  # None = direct
TARGET_VISIBLE, TARGET_FB = 0.5, 1.0


def _label(substep: int | None) -> str:
    return "direct" if substep is None else f"substep {substep}"


def _clips(num_frames: int) -> list[tuple[int, np.ndarray]]:
    """(step, frame indices) of the two clips of a video: from frame 0 and ending on the last frame."""
    step = STEP if num_frames >= T * STEP else num_frames // T  # clips.sample_clip's rule for short videos
    last = num_frames - 1 - (T - 1) * step
    return [(step, start + step * np.arange(T)) for start in sorted({0, last})]


def _round_trip(tracker: LKTracker, frames: np.ndarray, queries: np.ndarray, idx: np.ndarray, substep: int | None):
    """Forward over the clip, then back from its last frame: visible share at the last frame, FB errors, seconds."""
    dense_idx, keep = substep_frames(idx, substep)
    dense = frames[dense_idx - dense_idx.min()]  # frames holds the clip's range from its first frame
    t0 = time.perf_counter()
    fwd = track_substep(tracker, dense, queries, keep)
    seconds = time.perf_counter() - t0
    alive = fwd.visibility[-1]
    back_idx, back_keep = dense_idx[::-1].copy(), (len(dense_idx) - 1 - keep)[::-1].copy()
    back = track_substep(tracker, dense[::-1].copy(), fwd.tracks[-1][alive], back_keep)
    ok = back.visibility[-1]
    assert np.array_equal(back_idx[back_keep], idx[::-1])
    errors = np.linalg.norm(back.tracks[-1][ok] - queries[alive][ok], axis=-1)
    return float(alive.mean()), errors, seconds


def _decode_seconds(path: Path, idx: np.ndarray, substep: int | None) -> float:
    dense_idx, _ = substep_frames(idx, substep)
    with open_video(path) as video:
        t0 = time.perf_counter()
        video.read(dense_idx, size=(SIZE, SIZE))
        return time.perf_counter() - t0


def real_videos(lk: dict) -> dict:
    tracker = LKTracker(**lk, threads=1)
    queries = grid_queries(SIZE, SIZE, GRID)
    rows = []
    for name in NAMES:
        path = VIDEOS / f"{name}.mp4"
        if not path.is_file():
            continue
        with open_video(path) as video:
            num_frames = video.num_frames
            for step, idx in _clips(num_frames):
                frames = video.read(np.arange(idx[0], idx[-1] + 1), size=(SIZE, SIZE))  # [span, H, W, 3]
                row = {"video": name, "frames": num_frames, "step": step, "start": int(idx[0]), "methods": {}}
                for substep in SUBSTEPS:  # as the pipeline applies clips.step 6's substeps to a shrunk step
                    visible, errors, seconds = _round_trip(tracker, frames, queries, idx, substep)
                    row["methods"][_label(substep)] = {
                        "visible_last": visible,
                        "fb_median_px": float(np.median(errors)) if errors.size else None,
                        "fb_points": int(errors.size),
                        "grid_back_within_1px": float((errors <= 1.0).sum() / len(queries)),
                        "track_s": seconds,
                        "decode_s": _decode_seconds(path, idx, substep),
                    }
                rows.append(row)
                print(
                    name, row["start"], {k: round(v["visible_last"], 3) for k, v in row["methods"].items()}, flush=True
                )
    summary = {}
    for substep in SUBSTEPS:
        label = _label(substep)
        at = [r["methods"][label] for r in rows if label in r["methods"]]
        if not at:
            continue
        fb = [m["fb_median_px"] for m in at if m["fb_median_px"] is not None]
        summary[label] = {
            "clips": len(at),
            "visible_last_median": statistics.median(m["visible_last"] for m in at),
            "fb_median_px_median": statistics.median(fb) if fb else None,
            "grid_back_within_1px_median": statistics.median(m["grid_back_within_1px"] for m in at),
            "track_s_median": statistics.median(m["track_s"] for m in at),
            "decode_s_median": statistics.median(m["decode_s"] for m in at),
        }
    return {"size": SIZE, "grid": GRID, "clip_frames": T, "step": STEP, "rows": rows, "summary": summary}


def synthetic(cfg, lk: dict, num_videos: int) -> dict:
    tracker = LKTracker(**lk, threads=1)
    syn = dataclasses.replace(cfg.synthetic, num_frames=(T - 1) * STEP + 1)
    videos = [render_video(syn, i) for i in range(num_videos)]
    size = (syn.height, syn.width)
    queries = grid_queries(*size, GRID)
    rows = []
    for step in (3, STEP):
        idx = step * np.arange(T)
        truth = [clip_ground_truth(v.scene, idx, queries, size) for v in videos]
        for substep in SUBSTEPS:
            if substep is not None and (substep >= step or step % substep):
                continue
            dense_idx, keep = substep_frames(idx, substep)
            tracks, visible, seconds = [], [], []
            for v in videos:
                t0 = time.perf_counter()
                result = track_substep(tracker, v.frames[dense_idx], queries, keep)
                seconds.append(time.perf_counter() - t0)
                tracks.append(result.tracks)
                visible.append(result.visibility)
            gt_t, gt_v = np.stack([t for t, _ in truth]), np.stack([v for _, v in truth])
            m = tapvid_metrics(np.stack(tracks), np.stack(visible), gt_t, gt_v, image_size=size)
            rows.append(
                {
                    "step": step,
                    "method": _label(substep),
                    "delta_avg": m["delta_avg"],
                    "average_jaccard": m["average_jaccard"],
                    "occlusion_accuracy": m["occlusion_accuracy"],
                    "visible_lk": float(np.stack(visible)[:, 1:].mean()),
                    "visible_gt": float(gt_v[:, 1:].mean()),
                    "track_s_median": statistics.median(seconds),
                }
            )
            print(rows[-1], flush=True)
    return {"videos": num_videos, "size": list(size), "grid": GRID, "clip_frames": T, "rows": rows}


def run(num_videos: int, out_dir: Path) -> dict:
    started = time.perf_counter()
    cv2.setNumThreads(1)
    cfg = parse_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    lk = dataclasses.asdict(cfg.track.lk)
    report = {
        "benchmark": "benchmarks/substep.py",
        "lk": lk,
        "threads": 1,
        "real": real_videos(lk),
        "synthetic": synthetic(cfg, lk, num_videos),
        "machine": machine_info(numpy=np.__version__, opencv=cv2.__version__, av=av.__version__),
    }
    report["wall_s"] = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "substep.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "substep.md").write_text(_markdown(report))
    return report


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _markdown(r: dict) -> str:
    lk, real, syn = r["lk"], r["real"], r["synthetic"]
    labels = [_label(s) for s in SUBSTEPS if _label(s) in real["summary"]]
    lines = [
        "# Tracking through in-between frames (`benchmarks/substep.py`)",
        "",
        f"LK as in `config.yaml` (window {lk['win_size']}, {lk['levels']} pyramid levels, forward-backward threshold "
        f"{lk['fb_threshold']} px per tracked step), one thread. *direct* tracks the sampled frames "
        "(`track.substep: direct`, the behaviour before substeps); *substep k* tracks every k-th source frame in "
        "between and keeps the sampled frames (`track.substep: k`; `auto` = 1 for LK).",
        "",
        f"## Real videos: {real['clip_frames']} frames at step {real['step']}, {real['size']}², "
        f"{real['grid']}x{real['grid']} grid",
        "",
        "Clips of `../shared/data/videos` (two per video: from frame 0 and ending on the last frame; videos of "
        "fewer than 72 frames get the smaller step clip sampling gives them: apple 4, paragliding 5, where a "
        "substep that does not divide the step ends each gap early, as in the pipeline). *visible*: share of the "
        "grid still tracked at frame 11. *FB*: the points visible at frame 11 are tracked back to frame 0 the same "
        "way; median distance (px) from where they return to where they started, over the points that survive "
        "both passes (a consistency check, not ground truth; direct tracking keeps fewer, easier points).",
        "",
        "| clip | step | " + " | ".join([f"visible, {m}" for m in labels] + [f"FB px, {m}" for m in labels]) + " |",
        "|---|---:|" + "---:|" * (2 * len(labels)),
    ]  # fmt: skip
    for row in real["rows"]:
        ms = row["methods"]
        vis = [_f(ms[m]["visible_last"], ".1%") if m in ms else "-" for m in labels]
        fb = [_f(ms[m]["fb_median_px"], ".2f") if m in ms else "-" for m in labels]
        lines.append(f"| {row['video']} @{row['start']} | {row['step']} | " + " | ".join(vis + fb) + " |")
    s = real["summary"]
    lines.append(
        f"| **median of {s['direct']['clips']} clips** | | "
        + " | ".join(f"**{s[m]['visible_last_median']:.1%}**" for m in labels)
        + " | "
        + " | ".join(f"**{_f(s[m]['fb_median_px_median'], '.2f')}**" for m in labels)
        + " |"
    )
    best = s.get("substep 1", s[labels[-1]])
    met = best["visible_last_median"] >= TARGET_VISIBLE and (best["fb_median_px_median"] or 1e9) <= TARGET_FB
    lines += [
        "",
        f"Target (median visible at the last frame >= {TARGET_VISIBLE:.0%}, median FB error <= {TARGET_FB:g} px): "
        f"substep 1 gives {best['visible_last_median']:.1%} and {_f(best['fb_median_px_median'], '.2f')} px, "
        f"target {'met' if met else 'NOT met'}; direct gives {s['direct']['visible_last_median']:.1%} and "
        f"{_f(s['direct']['fb_median_px_median'], '.2f')} px.",
        "",
        "Medians over clips. *grid back within 1 px*: share of all grid points visible at frame 11 that return "
        "within 1 px of their start. Time per clip: tracking forward on one thread, and decoding the frames the "
        "tracker needs with the pipeline's reader (PyAV decodes the frames in between anyway; with substeps they "
        "are also converted and resized to 224²).",
        "",
        "| median over clips | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| visible at the last frame | " + " | ".join(f"{s[m]['visible_last_median']:.1%}" for m in labels) + " |",
        "| FB error (px) | " + " | ".join(_f(s[m]["fb_median_px_median"], ".2f") for m in labels) + " |",
        "| grid back within 1 px | "
        + " | ".join(f"{s[m]['grid_back_within_1px_median']:.1%}" for m in labels)
        + " |",
        "| tracking (s per clip) | " + " | ".join(f"{s[m]['track_s_median']:.2f}" for m in labels) + " |",
        "| decoding (s per clip) | " + " | ".join(f"{s[m]['decode_s_median']:.2f}" for m in labels) + " |",
        "",
        f"## Synthetic videos with exact trajectories: {syn['clip_frames']} frames, {syn['size'][0]}², "
        f"{syn['grid']}x{syn['grid']} grid",
        "",
        f"{syn['videos']} videos of the demo data (`config.yaml` `synthetic` section, rendered with 67 frames), one "
        "clip per video from frame 0; TAP-Vid metrics against the renderer's tracks and visibility (thresholds in "
        "256-px units, frame 0 excluded). Objects move up to 3 px per frame, rotate, scale, occlude each other and "
        "drift in colour.",
        "",
        "| step | tracking | δ_avg | AJ | OA | visible LK / GT | s per clip |",
        "|---:|---|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for row in syn["rows"]:
        lines.append(
            f"| {row['step']} | {row['method']} | {row['delta_avg']:.3f} | {row['average_jaccard']:.3f} | "
            f"{row['occlusion_accuracy']:.3f} | {row['visible_lk']:.2f} / {row['visible_gt']:.2f} | "
            f"{row['track_s_median']:.2f} |"
        )
    m = r["machine"]
    lines += [
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}, shared), {m['platform']}; Python {m['python']}, numpy "
        f"{m['numpy']}, OpenCV {m['opencv']}, PyAV {m['av']}. Whole benchmark: {r['wall_s']:.0f} s. "
        "Reproduce: `python benchmarks/substep.py`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12, help="synthetic videos for the TAP-Vid table")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    report = run(args.videos, args.out)
    sys.stdout.write((args.out / "substep.md").read_text())
    sys.stdout.write(f"\nwrote {args.out / 'substep.json'} in {report['wall_s']:.0f} s\n")


if __name__ == "__main__":
    main()
