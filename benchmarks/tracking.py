"""Speed and accuracy of the LK tracker (:class:`mosic.tracking.lk.LKTracker`) with the pipeline's settings.

The settings are ``track.lk`` of ``config.yaml`` (what ``snakemake`` runs), not the class's own defaults.

Measures:

1. **Speed**: ms per 12-frame clip for a 16x16 (256) and a 32x32 (1024) query grid at cache resolutions
   112², 224² and 448², with 1 and 2 OpenCV threads; median of ``--runs`` timed runs after one warm-up.
   Content: the first 12 frames of ``../shared/data/videos/bear.mp4`` (854x480 H.264, a walking bear with a
   slight camera pan), decoded with PyAV and resized with ``cv2.INTER_AREA``; without that file a synthetic
   textured clip panning 2 px per frame (said so in the results). Also reported: the share of points still
   visible at the last frame.
2. **Accuracy on synthetic warps with exact ground truth** (TAP-Vid metrics δ_avg / AJ / OA of
   :func:`mosic.tracking.metrics.tapvid_metrics`, distances scaled to 256², frame 0 excluded): the full-size
   frame 0 of the same content is warped per frame by a cumulative similarity transform about the centre of
   its middle 224x224 crop (``cv2.warpAffine``), the crop is cut out and Gaussian noise σ = 2 added, so
   content entering the crop is real image content; the ground truth is the 16x16 grid pushed through the
   same transforms, visible while inside ``[0, W-1] x [0, H-1]``. The warps are those of
   ``shared/reference/cotracker.md`` section 3, which warped a 224² frame with a black border instead (so
   its numbers differ). Not comparable to published TAP-Vid numbers.
3. **Accuracy on the project's synthetic videos** (the demo data of ``config.yaml``'s ``synthetic`` section:
   moving, rotating, scaling, occluding objects with appearance drift): 12-frame clips at steps 1 and 3 of
   the first ``--videos`` videos, against the renderer's exact tracks and visibility; step 3 both directly
   between the sampled frames and through every frame in between (``track.substep: auto``, as the pipeline
   tracks).

Writes ``benchmarks/results/tracking.json`` and ``tracking.md``. Takes about a minute on 2 cores.

Usage: ``python benchmarks/tracking.py [--runs 7] [--videos 12] [--out benchmarks/results]``
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
from mosic.data.synthetic import ground_truth_tracks, render_video  # noqa: E402
from mosic.geometry import grid_queries, inside_pixel_centres  # noqa: E402
from mosic.tracking import tapvid_metrics  # noqa: E402
from mosic.tracking.lk import LKTracker  # noqa: E402
from mosic.tracking.substep import substep_frames, track_substep  # noqa: E402

BEAR = REPO / "../shared/data/videos/bear.mp4"
T = 12
SIZES = (112, 224, 448)
GRIDS = (16, 32)
THREADS = (1, 2)
# (name, rotation deg per frame, scale per frame, translation px per frame) at 224².
WARPS = (
    ("rot 1.5°, scale x1.02, t=(4,-2)", 1.5, 1.02, (4.0, -2.0)),
    ("rot 3°, scale x1.04, t=(8,-4)", 3.0, 1.04, (8.0, -4.0)),
    ("translation (12, 6)", 0.0, 1.0, (12.0, 6.0)),
    ("sub-pixel translation (0.7, -0.4)", 0.0, 1.0, (0.7, -0.4)),
)


def _decode(path: Path, num_frames: int) -> np.ndarray:
    """The first frames of a video as uint8 [T, H, W, 3] RGB at full size."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == num_frames:
                break
    return np.stack(frames)


def _synthetic_source(num_frames: int, height: int = 480, width: int = 854) -> np.ndarray:
    """A smooth random texture panning 2 px per frame (used when bear.mp4 is missing)."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.normal(size=(height, width + 2 * num_frames, 3)).astype(np.float32), (0, 0), 3)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.stack([big[:, 2 * t : 2 * t + width] for t in range(num_frames)])


def _source() -> tuple[np.ndarray, str]:
    if BEAR.is_file():
        return _decode(BEAR, T), f"first {T} frames of {BEAR.resolve().name} (PyAV, resized with cv2.INTER_AREA)"
    return _synthetic_source(T), "SYNTHETIC panning texture: bear.mp4 not found"


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def _time(tracker: LKTracker, clip: np.ndarray, queries: np.ndarray, runs: int) -> tuple[list[float], float]:
    result = tracker.track(clip, queries)  # warm-up (OpenCV thread pool, caches)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        tracker.track(clip, queries)
        times.append((time.perf_counter() - t0) * 1000)
    return times, float(result.visibility[-1].mean())


def _similarity(rot_deg: float, scale: float, shift: tuple[float, float], centre: tuple[float, float]) -> np.ndarray:
    """3x3 similarity about ``centre`` followed by a shift (pixel centres at integers)."""
    m = np.eye(3)
    m[:2] = cv2.getRotationMatrix2D(centre, rot_deg, scale)
    m[:2, 2] += shift
    return m


def _warp_case(
    source: np.ndarray, rot: float, scale: float, shift: tuple[float, float], size: int = 224, grid: int = 16
):
    """A T-frame clip: the centre ``size`` crop of ``source`` under a cumulative similarity, with exact tracks.

    The warp is applied to the whole source frame before cropping, so content moving into the crop is real
    image content, not a black border (a border that appears would act like an occluder; see the docstring
    of :mod:`mosic.tracking.lk`).
    """
    H, W = source.shape[:2]
    x0, y0 = (W - size) // 2, (H - size) // 2
    c = (size - 1) / 2
    step = _similarity(rot, scale, shift, (c, c))  # in crop coordinates
    to_crop = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])
    rng = np.random.default_rng(1)
    queries = grid_queries(size, size, grid)
    hom = np.concatenate([queries, np.ones((len(queries), 1), np.float32)], axis=1).astype(np.float64)
    frames, gt = [], []
    m = np.eye(3)
    for _ in range(T):
        m_source = np.linalg.inv(to_crop) @ m @ to_crop  # the same motion in source-frame coordinates
        warped = cv2.warpAffine(source, m_source[:2], (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        crop = warped[y0 : y0 + size, x0 : x0 + size].astype(np.float32)
        frames.append(np.clip(crop + rng.normal(0, 2.0, crop.shape), 0, 255).astype(np.uint8))
        gt.append((hom @ m.T)[:, :2])
        m = step @ m
    gt_tracks = np.stack(gt).astype(np.float32)
    return np.stack(frames), queries, gt_tracks, inside_pixel_centres(gt_tracks, size, size)


def _metrics_row(pred: list, pred_vis: list, gt: list, gt_vis: list, size: int) -> dict[str, float]:
    m = tapvid_metrics(np.stack(pred), np.stack(pred_vis), np.stack(gt), np.stack(gt_vis), image_size=(size, size))
    return {
        "delta_avg": m["delta_avg"],
        "average_jaccard": m["average_jaccard"],
        "occlusion_accuracy": m["occlusion_accuracy"],
        "gt_visible": float(np.mean([v[1:].mean() for v in gt_vis])),
        "pred_visible": float(np.mean([v[1:].mean() for v in pred_vis])),
    }


def _machine() -> dict[str, object]:
    return machine_info(numpy=np.__version__, opencv=cv2.__version__, av=av.__version__)


def run(runs: int, num_videos: int, out_dir: Path) -> dict[str, object]:
    started = time.perf_counter()
    config = parse_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    lk = dataclasses.asdict(config.track.lk)
    frames, source = _source()
    speed = []
    for size in SIZES:
        clip = _resize(frames, size)
        for grid in GRIDS:
            queries = grid_queries(size, size, grid)
            for threads in THREADS:
                times, visible_last = _time(LKTracker(**lk, threads=threads), clip, queries, runs)
                speed.append(
                    {
                        "size": size,
                        "grid": grid,
                        "points": grid * grid,
                        "threads": threads,
                        "median_ms": statistics.median(times),
                        "min_ms": min(times),
                        "max_ms": max(times),
                        "runs": runs,
                        "visible_at_last_frame": visible_last,
                    }
                )

    tracker = LKTracker(**lk)
    warps = []
    for name, rot, scale, shift in WARPS:
        clip, queries, gt, gt_vis = _warp_case(frames[0], rot, scale, shift)
        result = tracker.track(clip, queries)
        warps.append({"warp": name, **_metrics_row([result.tracks], [result.visibility], [gt], [gt_vis], 224)})

    cfg = config.synthetic
    videos = [render_video(cfg, i) for i in range(num_videos)]
    queries = grid_queries(cfg.height, cfg.width, 16)
    synthetic = []
    for step, substep in ((1, None), (3, None), (3, 1)):
        idx = np.arange(T) * step
        if idx[-1] >= cfg.num_frames:
            continue
        dense_idx, keep = substep_frames(idx, substep)
        pred, pred_vis, gt, gt_vis = [], [], [], []
        for video in videos:
            tracks, vis = ground_truth_tracks(video.scene, queries)
            result = track_substep(tracker, video.frames[dense_idx], queries, keep)
            pred.append(result.tracks)
            pred_vis.append(result.visibility)
            gt.append(tracks[idx])
            gt_vis.append(vis[idx])
        method = "direct" if substep is None else f"substep {substep}"
        synthetic.append({"step": step, "method": method, **_metrics_row(pred, pred_vis, gt, gt_vis, cfg.height)})

    report = {
        "benchmark": "benchmarks/tracking.py",
        "source": source,
        "clip_frames": T,
        "tracker": {"name": tracker.name, "settings": tracker.settings},
        "speed": speed,
        "synthetic_warps": {"size": 224, "grid": 16, "noise_sigma": 2.0, "rows": warps},
        "synthetic_videos": {
            "config": "config.yaml synthetic section",
            "size": [cfg.height, cfg.width],
            "videos": num_videos,
            "grid": 16,
            "rows": synthetic,
        },
        "machine": _machine(),
        "wall_s": time.perf_counter() - started,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tracking.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "tracking.md").write_text(_markdown(report))
    return report


def _markdown(r: dict) -> str:
    s = r["tracker"]["settings"]
    lines = [
        "# Tracking benchmark (`benchmarks/tracking.py`)",
        "",
        f"LK tracker, the pipeline's settings (`track.lk` of config.yaml): window {s['win_size']}, "
        f"{s['levels']} pyramid levels, forward-backward "
        f"threshold {s['fb_threshold']} px, {s['max_iter']} iterations / eps {s['eps']}.",
        "",
        "## Speed: ms per 12-frame clip",
        "",
        f"Content: {r['source']}. Median (min-max) of {r['speed'][0]['runs']} runs after a warm-up. The 2 cores "
        "are shared: a wide min-max range means other work overlapped that row.",
        "",
        "| size | grid (points) | 1 thread | 2 threads | visible at frame 11 |",
        "|---|---|---:|---:|---:|",
    ]
    rows: dict[tuple[int, int], dict[int, dict]] = {}
    for row in r["speed"]:
        rows.setdefault((row["size"], row["grid"]), {})[row["threads"]] = row
    for (size, grid), by_threads in rows.items():
        cells = [f"{by_threads[t]['median_ms']:.1f} ({by_threads[t]['min_ms']:.1f}-{by_threads[t]['max_ms']:.1f})"
                 for t in THREADS]  # fmt: skip
        visible = by_threads[1]["visible_at_last_frame"]
        lines.append(f"| {size}² | {grid}x{grid} ({grid * grid}) | {' | '.join(cells)} | {visible:.1%} |")
    w = r["synthetic_warps"]
    lines += [
        "",
        "## Accuracy on synthetic warps with exact ground truth",
        "",
        f"Full-size frame 0 warped per frame (cumulative, about the centre of its middle {w['size']}² crop), "
        f"cropped, + noise σ={w['noise_sigma']}; "
        f"{w['grid']}x{w['grid']} grid; TAP-Vid metrics at 256², frame 0 excluded. Not comparable to published "
        "TAP-Vid numbers.",
        "",
        "| warp per frame | GT visible | LK visible | δ_avg | AJ | OA |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in w["rows"]:
        lines.append(
            f"| {row['warp']} | {row['gt_visible']:.2f} | {row['pred_visible']:.2f} | {100 * row['delta_avg']:.1f} "
            f"| {100 * row['average_jaccard']:.1f} | {100 * row['occlusion_accuracy']:.1f} |"
        )
    v = r["synthetic_videos"]
    lines += [
        "",
        "## Accuracy on the project's synthetic videos",
        "",
        f"{v['videos']} videos of the demo dataset ({v['config']}, {v['size'][0]}x{v['size'][1]}), one 12-frame clip "
        f"each from frame 0, {v['grid']}x{v['grid']} grid, against the renderer's exact tracks and visibility "
        "(objects occlude each other, rotate, scale and drift in appearance).",
        "",
        "*direct*: tracked between the sampled frames; *substep 1*: through every frame in between, keeping the "
        "sampled ones (`track.substep: auto`, what the pipeline does at `clips.step` > 1).",
        "",
        "| frame step | tracked | GT visible | LK visible | δ_avg | AJ | OA |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in v["rows"]:
        lines.append(
            f"| {row['step']} | {row['method']} | {row['gt_visible']:.2f} | {row['pred_visible']:.2f} "
            f"| {100 * row['delta_avg']:.1f} "
            f"| {100 * row['average_jaccard']:.1f} | {100 * row['occlusion_accuracy']:.1f} |"
        )
    m = r["machine"]
    lines += [
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['platform']}; Python {m['python']}, numpy "
        f"{m['numpy']}, OpenCV {m['opencv']}, PyAV {m['av']}. Whole benchmark: {r['wall_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per configuration (median reported)")
    parser.add_argument("--videos", type=int, default=12, help="synthetic demo videos for the accuracy table")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    report = run(args.runs, args.videos, args.out)
    sys.stdout.write((args.out / "tracking.md").read_text())
    sys.stdout.write(f"\nwrote {args.out / 'tracking.json'} in {report['wall_s']:.0f} s\n")


if __name__ == "__main__":
    main()
