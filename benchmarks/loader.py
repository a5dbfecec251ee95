"""Training-loader benchmark: clips/s of :func:`mosic.train.data.make_loader` over a track store, per worker count.

Data (in a temporary directory, removed at the end): two stores of C = 256 clips, T = 12 frames, N = 1024 points
on a 32 x 32 grid with random-walk trajectories (1 px steps, 90 % visible), one at 128 x 128 and one at
256 x 256 cache resolution; frames are 16 distinct clips of random smooth textures (nearest-upsampled noise plus
fine noise) repeated, which costs the loader the same as real frames (no decoding: frames are stored raw).

Measures, for cache 128 / 256 px, input 224 / 128 px, num_points 256, crop_scale 0.4, flip on, and 0, 1, 2
DataLoader workers: throughput in clips/s over one epoch of one simulated rank (world size 4, so 64 clips =
8 batches of 8 per epoch), from ``iter(loader)`` to the last batch, with persistent workers already started
(worker start-up is timed separately), in two ways on the same loader:

- *loader*: the loader's batches (uint8 frames at the cache resolution, the draws, the tracks) moved to the
  device: what the workers deliver;
- *loader + views*: and their views made there (:class:`mosic.train.data.DeviceTransform`: crop, resize, flip,
  normalisation, photometric) of the frames a step uses (frame 0 and 3 others, the demo's ``train.teacher_frames:
  4``, drawn as the training loop draws them), what a training step receives. On the CPU the views are made in
  the training process, which a GPU run leaves to the GPU.

With workers, each row runs twice: workers write their batches into the loader's shared-memory slot pool and send
the slot (``slots``, the default of :func:`make_loader`), or send the batch's tensors (``tensors``, the loader before:
a new shared-memory segment per tensor and batch), side by side.

Variants at 256 -> 224: the student's photometric augmentation (frame 0), and photometric + the student's view
of every frame the step uses (symmetric loss; 0 and 2 workers); at 128 -> 128 (the demo's settings) photometric too.
Every item holds only its step's 4 frames (``TrainClips(teacher_frames=4)``, as the training loop builds it);
256 -> 224 base and 128 -> 128 photometric also run with items of all 12 frames (the loader before), side by side.
Baseline: reading the clips from the store alone. Every process runs one torch thread (workers=0 loads in the
main process). Runs are interleaved round-robin over the configurations and both ways after a warm-up epoch
each; medians of ``--runs`` runs. The store files were just written, so reads come from the page cache.

``--before loader.json`` adds the clips/s of an earlier run (before the views moved to the device its loader
made them, so it compares with *loader + views*) and the ratio to it.

With ``--device cuda`` every batch is also copied into GPU memory (pinned, non-blocking; the epoch ends with a
synchronisation), only the 256 -> 224 rows run, and the results go to ``loader_cuda.json`` / ``.md``.

Writes ``benchmarks/results/loader.json`` and ``loader.md``. Takes about a minute and a half on 2 cores.

Usage: ``python benchmarks/loader.py [--runs 5] [--device cpu|cuda] [--workers 0 1 2] [--before JSON]
[--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import zarr
from machine import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.data.augment import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from mosic.store import ClipRecord, ShardWriter, TrackStore  # noqa: E402
from mosic.train.data import TrainClips, make_loader  # noqa: E402
from mosic.train.step import step_seed, teacher_frame_indices  # noqa: E402

CLIPS, T, GRID = 256, 12, 32
NUM_POINTS, BATCH, WORLD = 256, 8, 4
TEACHER_FRAMES = 4  # the demo's train.teacher_frames: the views a step needs
PROVENANCE = {
    "mosic_version": "bench",
    "git_sha": "0" * 40,
    "config": {"grid": GRID},
    "config_hash": "bench",
    "tracker": {"name": "synthetic", "settings": {}},
}


def write_store(path: Path, res: int, seed: int = 0) -> TrackStore:
    """A 256-clip store at ``res x res`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    textures = []
    for _ in range(16):
        coarse = rng.integers(0, 256, (T, res // 8, res // 8, 3), dtype=np.uint8)
        fine = rng.integers(0, 32, (T, res, res, 3), dtype=np.uint8)
        textures.append(coarse.repeat(8, axis=1).repeat(8, axis=2) // 2 + fine)
    g = (np.arange(GRID) + 0.5) * res / GRID - 0.5
    gx, gy = np.meshgrid(g, g)
    start = np.stack([gx.ravel(), gy.ravel()], -1)[None]
    n = GRID * GRID
    with ShardWriter(path, num_frames=T, height=res, width=res, num_points=n, attrs=PROVENANCE) as writer:
        for c in range(CLIPS):
            walk = np.cumsum(rng.normal(0, 1.0, (T, n, 2)) * (np.arange(T) > 0)[:, None, None], axis=0)
            tracks = np.clip(start + walk, 0, res - 1).astype(np.float32)
            writer.add(
                ClipRecord(
                    video_id=f"v{c // 4}",
                    clip_id=c,
                    frame_indices=np.arange(T, dtype=np.int32),
                    frames=textures[c % 16],
                    tracks=tracks,
                    visibility=rng.random((T, n)) < 0.9,
                )
            )
    return TrackStore([path])


def _key(row: dict) -> tuple:
    return row["cache"], row["input"], row["variant"], row.get("items", "all")


def add_before(res: dict, before: dict) -> None:
    """Put an earlier run's clips/s (``before``) beside each row, with after / before for *loader + views*."""
    old = {(*_key(r)[:3], r["workers"]): r for r in before["rows"] if r.get("items", "all") == "all"}
    for row in res["rows"]:
        prev = old.get((*_key(row)[:3], row["workers"]))
        if prev is not None:
            row["before_clips_per_s"] = prev["clips_per_s"]
            row["views_x_before"] = round(row["views_clips_per_s"] / prev["clips_per_s"], 2)
            row["loader_x_before"] = round(row["clips_per_s"] / prev["clips_per_s"], 2)
    res["before"] = {"settings": before["settings"], "machine": before["machine"]}


def time_epoch(loader, sampler, dataset, epoch: int, device: torch.device, views: bool) -> tuple[float, int]:
    """Seconds for one epoch of the loader, each batch copied into `device`'s memory (and its views made there
    with `views`), and the clips it gave."""
    sampler.set_epoch(epoch)
    dataset.set_epoch(epoch)
    start = time.perf_counter()
    clips = 0
    for i, batch in enumerate(loader):
        batch = batch.to(device, non_blocking=True)
        if views:  # the step's frames, as the loop draws them (the sampler's step: epoch x steps + batch)
            dataset.transform(batch, teacher_frame_indices(T, TEACHER_FRAMES, step_seed(0, epoch * len(loader) + i)))
        clips += len(batch.clip_ids)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, clips


def run(runs: int, tmp: Path, device: torch.device, worker_counts: list[int]) -> dict:
    stores = {res: write_store(tmp / f"cache{res}.zarr", res) for res in (128, 256)}
    configs = []
    sizes = ((128, 224), (128, 128), (256, 224), (256, 128)) if device.type == "cpu" else ((256, 224),)
    step = {"items": "step"}  # items hold the step's 4 frames (the loop's loader)
    for res, size in sizes:
        for workers in worker_counts:
            configs.append({"cache": res, "input": size, "workers": workers, "variant": "base", **step})
    for workers in worker_counts:
        configs.append({"cache": 256, "input": 224, "workers": workers, "variant": "photometric", **step})
    for workers in sorted({worker_counts[0], worker_counts[-1]}):  # the slowest variant: fewer rows
        configs.append({"cache": 256, "input": 224, "workers": workers, "variant": "photometric+student_all", **step})
    if device.type == "cpu":
        for workers in worker_counts:  # the demo's settings
            configs.append({"cache": 128, "input": 128, "workers": workers, "variant": "photometric", **step})
    # The same with items of every frame (the loader before items held only their step's frames), side by side.
    alls = [(256, 224, "base")] + ([(128, 128, "photometric")] if device.type == "cpu" else [])
    for res, size, variant in alls:
        for workers in worker_counts:
            configs.append({"cache": res, "input": size, "workers": workers, "variant": variant, "items": "all"})

    # Workers write into the loader's slot pool (the default); the same rows with the tensors sent as before.
    for cfg in configs:
        cfg["send"] = "slots" if cfg["workers"] > 0 else "–"
    configs = [
        row
        for cfg in configs
        for row in (
            [cfg, {**cfg, "send": "tensors"}]
            if cfg["workers"] > 0 and cfg["items"] == "step" and cfg["variant"] != "photometric+student_all"
            else [cfg]
        )
    ]

    loaders = []
    for cfg in configs:
        ds = TrainClips(
            stores[cfg["cache"]],
            input_size=cfg["input"],
            num_points=NUM_POINTS,
            crop_scale=0.4,
            flip=True,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            track_source="cached",
            photometric=cfg["variant"] != "base",
            student_all_frames=cfg["variant"] == "photometric+student_all",
            seed=0,
            teacher_frames=TEACHER_FRAMES if cfg["items"] == "step" else 0,
        )
        loader, sampler = make_loader(
            ds,
            batch_size_per_rank=BATCH,
            workers=cfg["workers"],
            seed=0,
            rank=0,
            world_size=WORLD,
            slots=cfg["send"] != "tensors",
        )
        warm, _ = time_epoch(loader, sampler, ds, epoch=0, device=device, views=True)  # starts the workers
        cfg["first_epoch_s"] = round(warm, 3)
        cfg["times"], cfg["views_times"] = [], []
        loaders.append((cfg, loader, sampler, ds))

    read_times = []
    for r in range(runs):
        for cfg, loader, sampler, ds in loaders:
            for views, times in ((False, cfg["times"]), (True, cfg["views_times"])):
                seconds, clips = time_epoch(loader, sampler, ds, epoch=r + 1, device=device, views=views)
                times.append(seconds)
            cfg["clips_per_epoch"] = clips
        for res, store in stores.items():
            order = np.random.default_rng(r).permutation(CLIPS)[:64]
            start = time.perf_counter()
            for i in order:
                store[int(i)]
            read_times.append((res, time.perf_counter() - start))
    del loaders  # shuts the workers down

    rows = []
    for cfg in configs:
        rates = [cfg["clips_per_epoch"] / s for s in cfg["times"]]
        views_rates = [cfg["clips_per_epoch"] / s for s in cfg["views_times"]]
        rate, views_rate = statistics.median(rates), statistics.median(views_rates)
        rows.append(
            {
                "cache": cfg["cache"],
                "input": cfg["input"],
                "variant": cfg["variant"],
                "items": cfg["items"],
                "workers": cfg["workers"],
                "send": cfg["send"],
                "clips_per_s": round(rate, 1),
                "clips_per_s_per_process": round(rate / max(cfg["workers"], 1), 1),
                "ms_per_clip_per_process": round(1000 * max(cfg["workers"], 1) / rate, 2),
                "runs_clips_per_s": [round(x, 1) for x in rates],
                "views_clips_per_s": round(views_rate, 1),
                "views_runs_clips_per_s": [round(x, 1) for x in views_rates],
                "first_epoch_s": cfg["first_epoch_s"],
            }
        )
    for row in rows:  # throughput against the same configuration without workers (paired by configuration)
        none = next(r for r in rows if r["workers"] == worker_counts[0] and _key(r) == _key(row))
        row["x_workers_0"] = round(row["clips_per_s"] / none["clips_per_s"], 2)
        row["views_x_workers_0"] = round(row["views_clips_per_s"] / none["views_clips_per_s"], 2)
        same = [r for r in rows if r["workers"] == row["workers"] and r["send"] in (row["send"], "–")]
        whole = next((r for r in same if _key(r) == (*_key(row)[:3], "all")), None)
        if row["items"] == "step" and whole is not None:  # against items of every frame, same configuration
            row["x_all_items"] = round(row["clips_per_s"] / whole["clips_per_s"], 2)
            row["views_x_all_items"] = round(row["views_clips_per_s"] / whole["views_clips_per_s"], 2)
        sent = next(
            (r for r in rows if (r["workers"], r["send"], _key(r)) == (row["workers"], "tensors", _key(row))), None
        )
        if row["send"] == "slots" and sent is not None:  # the slot pool against sending the tensors
            row["x_tensors"] = round(row["clips_per_s"] / sent["clips_per_s"], 2)
            row["views_x_tensors"] = round(row["views_clips_per_s"] / sent["views_clips_per_s"], 2)
    reads = {str(res): round(statistics.median(64 / s for rr, s in read_times if rr == res), 1) for res in stores}
    return {
        "benchmark": "loader",
        "settings": {
            "clips": CLIPS,
            "T": T,
            "cached_points": GRID * GRID,
            "num_points": NUM_POINTS,
            "crop_scale": 0.4,
            "flip": True,
            "batch_size_per_rank": BATCH,
            "world_size": WORLD,
            "clips_per_epoch": 64,
            "runs": runs,
            "torch_threads_per_process": torch.get_num_threads(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        },
        "rows": rows,
        "store_read_only_clips_per_s": reads,
        "machine": machine_info(
            torch=torch.__version__, torchvision=torchvision.__version__, numpy=np.__version__, zarr=zarr.__version__
        ),
    }


def markdown(res: dict) -> str:
    s, m = res["settings"], res["machine"]
    lines = [
        f"# Training-loader benchmark into {s.get('device_name', 'cpu')} memory (`benchmarks/loader.py`)",
        "",
        f"Store: {s['clips']} clips, T = {s['T']}, N = {s['cached_points']} cached points, frames stored raw; "
        f"TrainClips with num_points = {s['num_points']}, crop_scale = {s['crop_scale']}, flip on; make_loader "
        f"with batches of {s['batch_size_per_rank']} clips on rank 0 of {s['world_size']} "
        f"({s['clips_per_epoch']} clips per epoch), persistent workers, {s['torch_threads_per_process']} torch "
        f"thread per process. Median of {s['runs']} epochs per row, interleaved round-robin after a warm-up "
        "epoch (first epoch = worker start-up + one epoch).",
        "",
        "*items*: `step` = each item holds only the 4 frames its step uses (`train.teacher_frames: 4` of T = 12; "
        "the training loop's loader), `all` = every frame (the loader before). *loader*: the loader's batches "
        "moved to the device; *+ views*: and the views of the 4 frames a step uses made there, as the training "
        "loop makes them (DeviceTransform; on the CPU in the training process). × w0: against the same row with "
        "no workers; × all: a `step` row against the same row with `all` items. *send*: `slots` = workers write "
        "their batches into the loader's shared-memory slot pool and send the slot (the default), `tensors` = "
        "they send the batch's tensors (a new shared-memory segment each, the loader before); × tensors: a "
        "`slots` row against the same row with `tensors`."
        + (
            " *before*: the earlier run of this benchmark given with --before, whose loader made the views in the "
            "worker (or the training process with no workers) and sent them as float32; after / before compares "
            "*+ views* with it."
            if "before" in res
            else ""
        ),
        "",
        "| cache px | input px | variant | items | workers | send | loader clips/s | × w0 | × all | × tensors "
        "| + views clips/s | × w0 | × all | × tensors | before clips/s | after / before | first epoch s |",
        "|---:|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        before = f"{r['before_clips_per_s']:.0f} | {r['views_x_before']:.2f}" if "before_clips_per_s" in r else "– | –"
        x = {k: f"{r[k]:.2f}" if k in r else "–" for k in ("x_all_items", "views_x_all_items", "x_tensors",
                                                            "views_x_tensors")}  # fmt: skip
        lines.append(
            f"| {r['cache']} | {r['input']} | {r['variant']} | {r.get('items', 'all')} | {r['workers']} | "
            f"{r.get('send', '–')} | {r['clips_per_s']:.0f} | {r['x_workers_0']:.2f} | {x['x_all_items']} | "
            f"{x['x_tensors']} | {r['views_clips_per_s']:.0f} | {r['views_x_workers_0']:.2f} | "
            f"{x['views_x_all_items']} | {x['views_x_tensors']} | {before} | {r['first_epoch_s']:.2f} |"
        )
    reads = res["store_read_only_clips_per_s"]
    lines += [
        "",
        "Baseline, reading the clips from the store alone (random order, one process): "
        + ", ".join(f"{v:.0f} clips/s at {k} px" for k, v in reads.items())
        + ".",
        "",
        "workers = 0 loads in the training process itself; with workers > 0 the training process only receives "
        "batches. On this 2-core machine, 2 workers compete with the main process and with each other. A batch "
        "carries the stored uint8 frames of its step (4 frames: 0.2 MB per clip at 128 px, 0.8 MB at 256 px, "
        "through shared memory; `all` items 0.6 and 2.4 MB) instead of float32 views (7.8 MB per clip at 224 px). "
        "Making an item is cheap (reading, the crop draw, the points), so sending a batch's tensors costs a "
        "worker more than making it: a new shared-memory segment per tensor and batch, whose pages the kernel "
        "maps one by one and whose handle crosses a socket; with the slot pool the worker copies the batch into "
        "memory mapped once and sends the slot's number. The student's "
        "photometric view of the 4 frames is dominated by torchvision's Gaussian blur (depthwise conv2d) and hue "
        "shift on CPU.",
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu_model']}), {m['platform']}; Python {m['python']}, torch "
        f"{m['torch']}, torchvision {m['torchvision']}, numpy {m['numpy']}, zarr {m['zarr']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark (or, with ``--markdown-only``, rewrite loader.md from loader.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed epochs per configuration (median reported; >= 5)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="output folder")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where each batch is copied")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader worker counts")
    parser.add_argument("--before", type=Path, help="an earlier run's loader.json to compare with")
    parser.add_argument("--markdown-only", action="store_true", help="only rewrite loader.md from loader.json")
    args = parser.parse_args()
    name = "loader" if args.device == "cpu" else f"loader_{args.device}"
    if args.markdown_only:
        (args.out / f"{name}.md").write_text(markdown(json.loads((args.out / f"{name}.json").read_text())))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but CUDA is not available")
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="mosic-loader-bench-"))
    try:
        res = run(args.runs, tmp, torch.device(args.device), args.workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.before is not None:
        add_before(res, json.loads(args.before.read_text()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(markdown(res))
    print((args.out / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
