"""Decoding speed of the mosic readers against the naive ways, on the same frames, side by side.

Measures (median of --runs timed runs per method, interleaved round-robin after one warm-up run each):

1. JPEG folder -> 224x224 frames: our :class:`~mosic.data.readers.JpegFolderReader` (PIL ``draft`` DCT-domain
   downscale, then ``cv2.INTER_AREA``; 1 and 2 threads) against the loop of the original MoSiC code:
   ``Image.open(f).convert("RGB").resize((224, 224))`` at full resolution.
2. mp4 -> 224x224 frames: our :class:`~mosic.data.readers.VideoFileReader` (scaled inside swscale) against
   decoding full-size RGB and ``cv2.resize(INTER_AREA)``; both with ``thread_type = "AUTO"``.
3. Random access: 12-frame clips at step 4 from random starts, at 224x224, from the JPEG folder and the mp4
   (apple.mp4 has a single keyframe, so every clip decodes the video from its start: a worst case).

Input: the frames of ``../shared/data/videos/apple.mp4`` (1296x720, 50 frames) written to a temporary JPEG
folder at quality 90; without that file, a synthetic 1280x720 textured clip (said so in the results).
Writes ``benchmarks/results/decode.json`` and ``decode.md``. Takes about a minute on 2 cores.

Usage: ``python benchmarks/decode.py [--runs 7] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import PIL
from machine import machine_info
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.data.readers import open_video, probe  # noqa: E402

APPLE = REPO / "../shared/data/videos/apple.mp4"
SIZE = (224, 224)
CLIP_T, CLIP_STEP, NUM_CLIPS = 12, 4, 10


def _time_round_robin(methods: dict[str, Callable[[], int]], runs: int) -> dict[str, dict[str, float]]:
    """Time every method `runs` times, interleaved (one run of each per round) after one warm-up run each.

    Interleaving spreads slow drifts of the machine (allocator warm-up, CPU clocks, a neighbour's load) over
    all methods instead of penalising whichever is measured first. Each method returns the frames it made.
    """
    frames = {name: fn() for name, fn in methods.items()}  # warm-up: file cache, lazy init, allocator
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(runs):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            frames[name] = fn()
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {
            "frames": frames[name],
            "median_s": med,
            "fps": frames[name] / med,
            "min_s": min(ts),
            "max_s": max(ts),
        }
    return out


def _synthetic_clip(num_frames: int = 50, height: int = 720, width: int = 1280) -> np.ndarray:
    """A textured clip (smooth noise + edges, panning): JPEG sizes close to real footage."""
    rng = np.random.default_rng(0)
    base = cv2.resize(rng.integers(0, 255, (height // 8, (width + 8 * num_frames) // 8, 3), dtype=np.uint8),
                      (width + 8 * num_frames, height), interpolation=cv2.INTER_CUBIC)  # fmt: skip
    base = cv2.add(base, rng.integers(0, 24, base.shape, dtype=np.uint8))
    return np.stack([base[:, 8 * k : 8 * k + width] for k in range(num_frames)])


def _source_frames() -> tuple[np.ndarray, str, Path | None]:
    if APPLE.is_file():
        with open_video(probe("apple", APPLE, "video_file")) as video:
            return video.read(range(video.num_frames)), f"frames of {APPLE.resolve()}", APPLE
    return _synthetic_clip(), "synthetic 1280x720 textured clip (apple.mp4 not found)", None


def _encode_mp4(frames: np.ndarray, path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())


def _machine() -> dict[str, object]:
    return machine_info(
        numpy=np.__version__,
        pillow=PIL.__version__,
        opencv=cv2.__version__,
        cv2_threads=cv2.getNumThreads(),
        av=av.__version__,
        ffmpeg_libavcodec=".".join(map(str, av.library_versions.get("libavcodec", ()))),
    )


def run(runs: int, out_dir: Path) -> dict[str, object]:
    cv2.setNumThreads(1)  # one resize thread everywhere: rows differ by decoding method, not by OpenCV pools
    frames, source, mp4 = _source_frames()
    n, h, w = frames.shape[:3]
    methods: dict[str, Callable[[], int]] = {}
    rng = np.random.default_rng(0)
    starts = rng.integers(0, n - (CLIP_T - 1) * CLIP_STEP, NUM_CLIPS)
    clips = [list(range(s, s + CLIP_T * CLIP_STEP, CLIP_STEP)) for s in starts]

    with tempfile.TemporaryDirectory(prefix="mosic-bench-") as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for k, f in enumerate(frames):
            Image.fromarray(f).save(folder / f"{k:05d}.jpg", quality=90)
        jpeg_kb = sum(p.stat().st_size for p in folder.iterdir()) / n / 1024
        if mp4 is None:
            mp4 = Path(tmp) / "clip.mp4"
            _encode_mp4(frames, mp4)
        files = sorted(folder.iterdir())
        info = probe("frames", folder, "jpeg_folder")
        vinfo = probe("video", mp4, "video_file")

        # 1. JPEG folder -> 224x224
        def naive_jpeg() -> int:
            for f in files:
                np.asarray(Image.open(f).convert("RGB").resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR))
            return len(files)

        def ours_jpeg(threads: int) -> Callable[[], int]:
            def fn() -> int:
                with open_video(info, threads=threads) as video:
                    return len(video.read(range(n), size=SIZE))

            return fn

        methods["jpeg_naive"] = naive_jpeg
        methods["jpeg_ours_t1"] = ours_jpeg(1)
        methods["jpeg_ours_t2"] = ours_jpeg(2)

        # 2. mp4 -> 224x224
        def naive_mp4() -> int:
            with av.open(str(mp4)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                count = 0
                for frame in container.decode(stream):
                    cv2.resize(frame.to_ndarray(format="rgb24"), (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
                    count += 1
            return count

        def ours_mp4() -> int:
            with open_video(vinfo) as video:
                return len(video.read(range(vinfo.num_frames), size=SIZE))

        methods["mp4_naive"] = naive_mp4
        methods["mp4_ours"] = ours_mp4

        # 3. random 12-frame clips
        def clip_reader(video_info) -> Callable[[], int]:
            def fn() -> int:
                with open_video(video_info) as video:
                    return sum(len(video.read(c, size=SIZE)) for c in clips)

            return fn

        def naive_clips() -> int:
            for c in clips:
                for k in c:
                    np.asarray(
                        Image.open(files[k]).convert("RGB").resize((SIZE[1], SIZE[0]), Image.Resampling.BILINEAR)
                    )
            return len(clips) * CLIP_T

        methods["clips_jpeg_naive"] = naive_clips
        methods["clips_jpeg_ours"] = clip_reader(info)

        def naive_mp4_clips() -> int:
            for c in clips:  # decode from the start, convert the wanted frames at full size, then resize
                wanted = set(c)
                with av.open(str(mp4)) as container:
                    stream = container.streams.video[0]
                    stream.thread_type = "AUTO"
                    for k, frame in enumerate(container.decode(stream)):
                        if k in wanted:
                            rgb = frame.to_ndarray(format="rgb24")
                            cv2.resize(rgb, (SIZE[1], SIZE[0]), interpolation=cv2.INTER_AREA)
                        if k >= c[-1]:
                            break
            return len(clips) * CLIP_T

        methods["clips_mp4_naive"] = naive_mp4_clips
        methods["clips_mp4_ours"] = clip_reader(vinfo)
        results = _time_round_robin(methods, runs)
        with av.open(str(mp4)) as container:
            keyframes = sum(p.is_keyframe for p in container.demux(video=0) if p.size)

    report = {
        "source": source,
        "frames": n,
        "frame_size": f"{w}x{h}",
        "jpeg_quality": 90,
        "jpeg_mean_kb": round(jpeg_kb, 1),
        "mp4": str(mp4.resolve()) if mp4.exists() else "temporary re-encode (libx264 defaults)",
        "mp4_keyframes": keyframes,
        "target_size": f"{SIZE[1]}x{SIZE[0]}",
        "runs": runs,
        "clips": {"count": NUM_CLIPS, "frames": CLIP_T, "step": CLIP_STEP},
        "machine": _machine(),
        "results": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "decode.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "decode.md").write_text(_markdown(report))
    return report


def _markdown(r: dict) -> str:
    res = r["results"]
    rows = [
        (
            "JPEG folder -> 224x224",
            "naive: PIL open + convert(RGB) + resize, full resolution",
            "jpeg_naive",
            "jpeg_naive",
        ),
        ("", "ours: JpegFolderReader, draft + INTER_AREA, 1 thread", "jpeg_ours_t1", "jpeg_naive"),
        ("", "ours: JpegFolderReader, 2 threads", "jpeg_ours_t2", "jpeg_naive"),
        ("mp4 -> 224x224", "naive: PyAV full-size rgb24 + cv2.resize(INTER_AREA)", "mp4_naive", "mp4_naive"),
        ("", "ours: VideoFileReader, scaled in swscale (AREA)", "mp4_ours", "mp4_naive"),
        ("random 12-frame clips", "naive: PIL loop over the clip's JPEGs", "clips_jpeg_naive", "clips_jpeg_naive"),
        ("", "ours: JpegFolderReader.read(clip)", "clips_jpeg_ours", "clips_jpeg_naive"),
        ("", "naive: PyAV decode from the start, full-size rgb24 + cv2.resize", "clips_mp4_naive", "clips_mp4_naive"),
        ("", "ours: VideoFileReader.read(clip) (seek + decode forward)", "clips_mp4_ours", "clips_mp4_naive"),
    ]
    m = r["machine"]
    lines = [
        "# Decoding benchmark (`benchmarks/decode.py`)",
        "",
        f"Input: {r['source']}; {r['frames']} frames of {r['frame_size']}; JPEG quality {r['jpeg_quality']} "
        f"(mean {r['jpeg_mean_kb']} kB/frame); mp4 with {r['mp4_keyframes']} keyframe(s). Output {r['target_size']} "
        f"RGB uint8. Median of {r['runs']} runs per method, interleaved round-robin after a warm-up. "
        f"Clips: {r['clips']['count']} random clips of "
        f"{r['clips']['frames']} frames at step {r['clips']['step']}.",
        "",
        "| task | method | frames/s (median) | ms/frame | vs baseline |",
        "|---|---|---:|---:|---:|",
    ]
    for task, method, key, base in rows:
        fps = res[key]["fps"]
        lines.append(f"| {task} | {method} | {fps:.0f} | {1000 / fps:.2f} | {fps / res[base]['fps']:.2f}x |")
    lines += [
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model'] or 'unknown model'}), {m['platform']}; Python {m['python']}, "
        f"numpy {m['numpy']}, Pillow {m['pillow']}, OpenCV {m['opencv']} (cv2 threads {m['cv2_threads']}), "
        f"PyAV {m['av']} (libavcodec {m['ffmpeg_libavcodec']}).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per measurement (median reported; >= 5)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="output folder")
    args = parser.parse_args()
    t0 = time.perf_counter()
    run(max(args.runs, 1), args.out)
    print((args.out / "decode.md").read_text())
    print(f"total {time.perf_counter() - t0:.0f} s; wrote {args.out / 'decode.json'}")


if __name__ == "__main__":
    main()
