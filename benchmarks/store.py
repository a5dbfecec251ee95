"""Track-store benchmark: the measurements behind the encodings, codecs and read path of :mod:`mosic.store`.

Data (all in a temporary directory, removed at the end):

- Tracks: C = 256 clips, T = 12, N = 1024 points on a 32 x 32 grid over 224 x 224 frames; smooth trajectories
  (camera pan with acceleration, zoom and rotation; 2-4 objects moving and rotating on top), 0.15 px Gaussian
  tracker noise from frame 1 on, visibility from leaving the frame and from occlusion by objects.
- Frames: 16 distinct 12-frame clips (every 2nd frame) cut from the real test videos in
  ``../shared/data/videos`` (bear, paragliding: 854 x 480; apple: 1296 x 720 resized to 854 x 480), saved as
  854 x 480 JPEGs at quality 90 (the original dataset), then decoded with PIL and resized to the cache size
  (224 x 224 and 112 x 112) like a cache builder would. The 256 cached clips are the 16 distinct ones under 16
  flip / channel-order variants. Without the videos, 1/f-noise textured scenes with moving discs stand in
  (said so in the results).

Measures:

1. Tracks + visibility encodings (one Zarr array each, 64-clip chunks): stored bytes per point per frame
   (on disk, metadata included), max coordinate error on this data and over a 2048-px frame, write and load
   time; visibility codecs; the chunk size of the chosen encoding.
2. Frame codecs on 64 clips at 224 x 224: compression ratio, write speed, per-clip decode time through Zarr and
   through the bare codec (the floor of any compressed read path), against a plain memcpy of the clip.
3. Random clip reads (frames + tracks + visibility, random order) at 224 x 224 and 112 x 112: the store's
   :class:`~mosic.store.ShardReader` against ``np.memmap`` of uncompressed ``.npy`` files of the same arrays,
   per-clip reads through the Zarr API, the reader with zstd-compressed frames, and decoding the clip's 12
   full-size JPEGs with PIL (``Image.open(f).convert("RGB").resize(size)``, the original code's path).
   Timed runs are interleaved round-robin after one warm-up run each; medians of ``--runs`` runs. All files
   were just written, so reads come from the page cache (software cost, not disk speed).

Writes ``benchmarks/results/store.json`` and ``store.md``. Takes about 2 minutes on 2 cores.

Usage: ``python benchmarks/store.py [--runs 7] [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numcodecs
import numpy as np
import PIL
import zarr
import zarr.codecs as zc
from machine import machine_info
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mosic.store import ClipRecord, ShardReader, ShardWriter, verify_shard  # noqa: E402
from mosic.store.schema import decode_tracks, encode_tracks  # noqa: E402

VIDEOS = REPO / "../shared/data/videos"
C, T, N, GRID = 256, 12, 1024, 32
UNIQUE, STEP = 16, 2
FULL = (854, 480)  # (width, height) of the JPEG "dataset"
JPEG_QUALITY = 90
NOISE_PX = 0.15
PROVENANCE = {
    "mosic_version": "bench",
    "git_sha": "bench",
    "config": {},
    "config_hash": "bench",
    "tracker": {"name": "synthetic", "settings": {"noise_px": NOISE_PX}},
}

warnings.filterwarnings("ignore", category=UserWarning, module="zarr")  # numcodecs codecs in zarr v3
warnings.filterwarnings("ignore", category=DeprecationWarning)


# --- data ---------------------------------------------------------------------------------------------------


def synth_tracks(rng: np.random.Generator, clips: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth synthetic trajectories: float32 [C, T, N, 2] (x, y) and bool [C, T, N] visibility."""
    g = (np.arange(GRID) + 0.5) / GRID
    ys, xs = np.meshgrid(g * h - 0.5, g * w - 0.5, indexing="ij")
    p0 = np.stack([xs.ravel(), ys.ravel()], -1)  # [N, 2]
    t = np.arange(T, dtype=np.float64)[:, None]
    ctr = np.array([(w - 1) / 2, (h - 1) / 2])

    def rot(angle: np.ndarray, scale: np.ndarray) -> np.ndarray:  # [T] -> [T, 2, 2]
        c, s = np.cos(angle) * scale, np.sin(angle) * scale
        return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)

    tracks = np.empty((clips, T, N, 2), np.float32)
    vis = np.empty((clips, T, N), bool)
    for k in range(clips):
        shift = rng.normal(0, 1.0, 2) * t + 0.5 * rng.normal(0, 0.1, 2) * t**2  # camera pan, px
        cam = rot(rng.normal(0, 0.005) * t[:, 0], 1 + rng.normal(0, 0.01) * t[:, 0])
        pos = ctr + np.einsum("tij,nj->tni", cam, p0 - ctr) - shift[:, None, :]
        layer = np.zeros(N, int)
        objects = []
        for j in range(rng.integers(2, 5)):
            c0, r = rng.uniform([0, 0], [w, h]), rng.uniform(15, 50)
            cen = c0 + rng.normal(0, 2.0, 2) * t + 0.5 * rng.normal(0, 0.15, 2) * t**2
            inside = np.linalg.norm(p0 - c0, axis=1) < r
            own = cen[:, None, :] + np.einsum("tij,nj->tni", rot(rng.normal(0, 0.03) * t[:, 0], 1.0), p0 - c0)
            pos[:, inside] = own[:, inside]
            layer[inside] = j + 1
            objects.append((cen, r))
        size = np.array([w - 0.5, h - 0.5])
        visible = ((pos >= -0.5) & (pos <= size)).all(-1)
        for j, (cen, r) in enumerate(objects):
            visible &= ~((np.linalg.norm(pos - cen[:, None, :], axis=-1) < r) & (layer[None, :] < j + 1))
        pos[1:] += rng.normal(0, NOISE_PX, pos[1:].shape)
        pos[visible] = np.clip(pos[visible], -0.5, size)  # a tracker reports visible points inside the frame
        tracks[k], vis[k] = pos, visible
    return tracks, vis


def _video_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [
            cv2.resize(f.to_ndarray(format="rgb24"), FULL, interpolation=cv2.INTER_AREA)
            for f in container.decode(video=0)
        ]


def _noise_scene(rng: np.random.Generator) -> list[np.ndarray]:
    """Fallback source: a 1/f-noise background panning under 2-4 textured discs (natural-image statistics)."""
    w, h, pad = FULL[0], FULL[1], 96

    def pink(hh: int, ww: int, beta: float) -> np.ndarray:
        f = np.hypot(np.fft.fftfreq(hh)[:, None], np.fft.rfftfreq(ww)[None, :])
        f[0, 0] = 1
        chans = []
        for _ in range(3):
            spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
            spec[0, 0] = 0
            img = np.fft.irfft2(spec, s=(hh, ww))
            chans.append(img / img.std())
        return np.stack(chans, -1) @ (rng.normal(0, 0.35, (3, 3)) + np.eye(3)).T

    world = np.clip(128 + 40 * pink(h + 2 * pad, w + 2 * pad, 2.6), 0, 255).astype(np.float32)
    discs = []
    for _ in range(rng.integers(2, 5)):
        r = int(rng.uniform(40, 120))
        tex = np.clip(rng.uniform(60, 200, 3) + 35 * pink(2 * r, 2 * r, 2.0), 0, 255).astype(np.float32)
        yy, xx = np.mgrid[: 2 * r, : 2 * r]
        mask = (((xx - r + 0.5) ** 2 + (yy - r + 0.5) ** 2) < r * r).astype(np.float32)
        discs.append((tex, mask, rng.uniform([0, 0], [w, h]), rng.normal(0, 6, 2)))
    v = rng.normal(0, 3, 2)
    frames = []
    for t in range(T * STEP):
        m = np.float32([[1, 0, pad + v[0] * t], [0, 1, pad + v[1] * t]])
        fr = cv2.warpAffine(world, m, FULL, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        for tex, mask, c0, u in discs:
            r = tex.shape[0] // 2
            m = np.float32([[1, 0, c0[0] + u[0] * t - r], [0, 1, c0[1] + u[1] * t - r]])
            a = cv2.warpAffine(mask, m, FULL)[..., None]
            fr = fr * (1 - a) + cv2.warpAffine(tex, m, FULL) * a
        frames.append(np.clip(fr + rng.normal(0, 1.0, fr.shape), 0, 255).astype(np.uint8))
    return frames


def make_jpeg_clips(rng: np.random.Generator, root: Path) -> tuple[list[list[Path]], str]:
    """Write UNIQUE clips of T full-size JPEGs under `root`; return their paths and a description."""
    names = ["bear.mp4", "paragliding.mp4", "apple.mp4"]
    if all((VIDEOS / n).exists() for n in names):
        sources = [_video_frames(VIDEOS / n) for n in names]
        source = f"real videos {', '.join(names)} from ../shared/data/videos"
    else:
        sources = [_noise_scene(rng) for _ in range(4)]
        source = "synthetic 1/f-noise scenes (../shared/data/videos is absent)"
    clips = []
    for u in range(UNIQUE):
        video = sources[u % len(sources)]
        start = int(rng.integers(0, len(video) - (T - 1) * STEP))
        folder = root / f"clip{u:02d}"
        folder.mkdir(parents=True)
        paths = []
        for t in range(T):
            path = folder / f"{t:05d}.jpg"
            Image.fromarray(video[start + t * STEP]).save(path, quality=JPEG_QUALITY)
            paths.append(path)
        clips.append(paths)
    return clips, source


def decode_jpeg_clip(paths: list[Path], size: int) -> np.ndarray:
    """The original code's path: PIL open, convert to RGB, resize; uint8 [T, size, size, 3]."""
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)) for p in paths])


def cache_frames(jpeg_clips: list[list[Path]], size: int) -> np.ndarray:
    """uint8 [C, T, size, size, 3]: the distinct clips under 16 flip / channel-order variants."""
    base = [decode_jpeg_clip(paths, size) for paths in jpeg_clips]
    out = np.empty((C, T, size, size, 3), np.uint8)
    orders = [(0, 1, 2), (2, 1, 0), (1, 2, 0), (0, 2, 1)]
    for c in range(C):
        v = c // UNIQUE
        clip = base[c % UNIQUE]
        clip = clip[:, :, ::-1] if v & 1 else clip
        out[c] = clip[..., list(orders[(v >> 1) % 4])]
    return out


# --- helpers ------------------------------------------------------------------------------------------------


def du(path: Path) -> int:
    """Bytes of a file, or of all files under a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def files(path: Path) -> int:
    return sum(len(fs) for _, _, fs in os.walk(path))


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def round_robin(methods: dict[str, Callable[[], int]], runs: int) -> dict[str, dict[str, float]]:
    """Time each method `runs` times, one run of each per round, after one warm-up run each.

    Each method returns how many clips it read. Interleaving spreads the drift of a shared machine over all
    methods; the per-round ratios are what the targets are judged on.
    """
    counts = {name: fn() for name, fn in methods.items()}
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(runs):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            counts[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {
        name: {
            "clips": counts[name],
            "runs_s": ts,
            "median_s": statistics.median(ts),
            "clips_per_s": counts[name] / statistics.median(ts),
            "ms_per_clip": 1e3 * statistics.median(ts) / counts[name],
        }
        for name, ts in times.items()
    }


def machine() -> dict[str, object]:
    return machine_info(
        numpy=np.__version__,
        zarr=zarr.__version__,
        numcodecs=numcodecs.__version__,
        pillow=PIL.__version__,
        blosc_threads=numcodecs.blosc.get_nthreads(),
    )


# --- 1. tracks + visibility ---------------------------------------------------------------------------------


def _blosc(shuffle: str, typesize: int, cname: str = "zstd", clevel: int = 5) -> zc.BloscCodec:
    return zc.BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle, typesize=typesize)


def _max_error_2048(kind: str) -> float:
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.5, 2047.5, size=(200_000, 2)).astype(np.float32)
    if kind == "float16":
        back = x.astype(np.float16).astype(np.float32)
    elif kind == "int16":
        back = decode_tracks(encode_tracks(x, 2048, 2048), 2048, 2048)
    else:
        back = x
    return float(np.abs(back - x).max())


def bench_tracks(tracks: np.ndarray, vis: np.ndarray, tmp: Path, runs: int) -> dict[str, list[dict]]:
    h = w = 224
    q = encode_tracks(tracks, h, w)
    per_point = tracks.shape[0] * T * N
    vis_codecs = {"blosc-zstd5 bitshuffle": ((), (_blosc("bitshuffle", 1),))}
    candidates = {
        # name: (stored array, filters, compressors, decoded float32, kind)
        "float32, zstd-3 (lossless reference)": (tracks, (), (zc.ZstdCodec(level=3),), "float32"),
        "float16, blosc-zstd5 byte shuffle": (tracks.astype(np.float16), (), (_blosc("shuffle", 2),), "float16"),
        "int16 @ 1/16 px, zstd-3": (q, (), (zc.ZstdCodec(level=3),), "int16"),
        "int16 @ 1/16 px, blosc-zstd5 byte shuffle": (q, (), (_blosc("shuffle", 2),), "int16"),
        "int16 @ 1/16 px, blosc-zstd5 bitshuffle (chosen)": (q, (), (_blosc("bitshuffle", 2),), "int16"),
        "int16 @ 1/16 px, blosc-lz4 bitshuffle": (q, (), (_blosc("bitshuffle", 2, "lz4"),), "int16"),
        "int16 @ 1/16 px, transpose to [C,T,2,N] + blosc-zstd5 bitshuffle": (
            q,
            (zc.TransposeCodec(order=(0, 1, 3, 2)),),
            (_blosc("bitshuffle", 2),),
            "int16",
        ),
        "int16 @ 1/16 px, [C,T,2,N] + numcodecs Delta (non-standard) + blosc-zstd5 bitshuffle": (
            q,
            (zc.TransposeCodec(order=(0, 1, 3, 2)), zc.Delta(dtype="<i2")),
            (_blosc("bitshuffle", 2),),
            "int16",
        ),
    }

    def store(path: Path, data: np.ndarray, filters, compressors, chunk: int = 64) -> tuple[zarr.Array, float]:
        shutil.rmtree(path, ignore_errors=True)
        arr = zarr.create_array(
            path,
            shape=data.shape,
            chunks=(chunk, *data.shape[1:]),
            dtype=data.dtype,
            filters=filters,
            compressors=(*compressors, zc.Crc32cCodec()),
            zarr_format=3,
        )
        return arr, timed(lambda: arr.__setitem__(slice(None), data))

    vis_rows = []
    for name, (filters, comps) in {
        **vis_codecs,
        "zstd-3": ((), (zc.ZstdCodec(level=3),)),
        "transpose to [C,N,T] + blosc-zstd5 bitshuffle": (
            (zc.TransposeCodec(order=(0, 2, 1)),),
            (_blosc("bitshuffle", 1),),
        ),
    }.items():
        store(tmp / "vis", vis, filters, comps)
        vis_rows.append({"codec": name, "bytes_per_point_frame": du(tmp / "vis") / per_point})
    vis_bytes = vis_rows[0]["bytes_per_point_frame"]
    filters, comps = vis_codecs["blosc-zstd5 bitshuffle"]
    store(tmp / "vis", vis, filters, comps)

    rows = []
    for name, (data, filters, comps, kind) in candidates.items():
        arr, write_s = store(tmp / "tracks", data, filters, comps)
        load_s = statistics.median(timed(lambda: arr[:]) for _ in range(runs))  # noqa: B023 - called right away
        stored = np.asarray(arr[:])
        back = decode_tracks(stored, h, w) if kind == "int16" else stored.astype(np.float32)
        tracks_b = du(tmp / "tracks") / per_point
        rows.append(
            {
                "encoding": name,
                "tracks_bytes_per_point_frame": tracks_b,
                "vis_bytes_per_point_frame": vis_bytes,
                "bytes_per_point_frame": tracks_b + vis_bytes,
                "max_error_px": float(np.abs(back - tracks).max()),
                "max_error_px_2048": _max_error_2048(kind),
                "write_mb_s": data.nbytes / 1e6 / write_s,
                "load_ms": load_s * 1e3,
            }
        )
    chunk_rows = []
    for chunk in (16, 32, 64, 128):
        arr, write_s = store(tmp / "tracks", q, (), (_blosc("bitshuffle", 2),), chunk)
        load_s = statistics.median(timed(lambda: arr[:]) for _ in range(runs))  # noqa: B023
        chunk_rows.append(
            {
                "chunk_clips": chunk,
                "tracks_bytes_per_point_frame": du(tmp / "tracks") / per_point,
                "files": files(tmp / "tracks") - 1,
                "write_mb_s": q.nbytes / 1e6 / write_s,
                "load_ms": load_s * 1e3,
            }
        )
    shutil.rmtree(tmp / "tracks")
    shutil.rmtree(tmp / "vis")
    return {"encodings": rows, "visibility": vis_rows, "chunks": chunk_rows}


# --- 2. frame codecs ----------------------------------------------------------------------------------------


def bench_frame_codecs(frames: np.ndarray, tmp: Path, runs: int) -> list[dict]:
    clip_shape = frames.shape[1:]
    codecs = {
        "none (crc32c only; chosen)": ((), None),
        "blosc-lz4 level 5": ((zc.BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle", typesize=1),),
                              numcodecs.Blosc("lz4", 5, numcodecs.Blosc.NOSHUFFLE)),
        "zstd level 1": ((zc.ZstdCodec(level=1),), numcodecs.Zstd(level=1)),
        "zstd level 3": ((zc.ZstdCodec(level=3),), numcodecs.Zstd(level=3)),
    }  # fmt: skip
    # Results are dropped right away, as a read loop does, so the allocator reuses the buffers.
    memcpy_s = statistics.median(timed(lambda: [np.array(c).shape for c in frames]) for _ in range(runs))
    rows = []
    order = np.random.default_rng(3).permutation(len(frames))
    for name, (comps, raw_codec) in codecs.items():
        path = tmp / "frames_codec"
        shutil.rmtree(path, ignore_errors=True)
        arr = zarr.create_array(
            path,
            shape=frames.shape,
            chunks=(1, *clip_shape),
            shards=(16, *clip_shape),
            dtype=np.uint8,
            compressors=(*comps, zc.Crc32cCodec()),
            zarr_format=3,
        )
        write_s = timed(lambda: arr.__setitem__(slice(None), frames))  # noqa: B023
        zarr_s = statistics.median(timed(lambda: [arr[int(i)].shape for i in order]) for _ in range(runs))  # noqa: B023
        row = {
            "codec": name,
            "ratio": frames.nbytes / du(path),
            "write_mb_s": frames.nbytes / 1e6 / write_s,
            "zarr_read_ms_per_clip": zarr_s * 1e3 / len(frames),
            "codec_decode_ms_per_clip": None,
            "memcpy_ms_per_clip": memcpy_s * 1e3 / len(frames),
        }
        if raw_codec is not None:
            blobs = [raw_codec.encode(np.ascontiguousarray(c)) for c in frames]
            dec_s = statistics.median(timed(lambda: [len(raw_codec.decode(b)) for b in blobs]) for _ in range(runs))  # noqa: B023
            row["codec_decode_ms_per_clip"] = dec_s * 1e3 / len(frames)
        rows.append(row)
    shutil.rmtree(tmp / "frames_codec")
    return rows


# --- 3. random clip reads -----------------------------------------------------------------------------------


def _write_shard(path: Path, frames: np.ndarray, tracks: np.ndarray, vis: np.ndarray, size: int) -> float:
    def write() -> None:
        with ShardWriter(path, num_frames=T, height=size, width=size, num_points=N, attrs=PROVENANCE) as w:
            for c in range(len(frames)):
                w.add(
                    ClipRecord(
                        video_id=f"video_{c % UNIQUE:02d}",
                        clip_id=c,
                        frame_indices=np.arange(T, dtype=np.int32) * STEP,
                        frames=frames[c],
                        tracks=tracks[c],
                        visibility=vis[c],
                    )
                )

    return timed(write)


def _rewrite_frames(src: Path, dst: Path, frames: np.ndarray, **layout) -> None:
    """A copy of shard `src` whose frames array has another layout."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("frames"))
    group = zarr.open_group(dst, mode="r+")
    arr = group.create_array("frames", shape=frames.shape, dtype=np.uint8, **layout)
    for start in range(0, len(frames), 16):
        arr[start : start + 16] = frames[start : start + 16]


def bench_reads(
    size: int, tracks: np.ndarray, vis: np.ndarray, jpeg_clips: list[list[Path]], tmp: Path, runs: int
) -> dict[str, object]:
    frames = cache_frames(jpeg_clips, size)
    clip_shape = frames.shape[1:]
    root = tmp / f"reads_{size}"
    root.mkdir()
    shard = root / "shard.zarr"
    write_s = _write_shard(shard, frames, tracks, vis, size)
    _rewrite_frames(shard, root / "per_clip.zarr", frames, chunks=(1, *clip_shape), compressors=(zc.Crc32cCodec(),))
    _rewrite_frames(
        shard,
        root / "zstd1.zarr",
        frames,
        chunks=(1, *clip_shape),
        shards=(16, *clip_shape),
        compressors=(zc.ZstdCodec(level=1), zc.Crc32cCodec()),
    )
    for name, arr in (("frames", frames), ("tracks", tracks), ("vis", vis)):
        np.save(root / f"{name}.npy", arr)
    del frames

    problems: list[str] = []
    verify_s = timed(lambda: problems.extend(verify_shard(shard)))
    assert not problems, problems
    mm = {name: np.load(root / f"{name}.npy", mmap_mode="r") for name in ("frames", "tracks", "vis")}
    open_s = statistics.median(timed(lambda: ShardReader(shard)) for _ in range(3))
    reader = ShardReader(shard)
    per_clip = ShardReader(root / "per_clip.zarr")
    zstd = ShardReader(root / "zstd1.zarr")
    assert reader._frames.fast and per_clip._frames.fast and not zstd._frames.fast
    group = zarr.open_group(shard, mode="r")
    zf, zt, zv = group["frames"], group["tracks"], group["visibility"]
    rng = np.random.default_rng(size)

    def order(n: int) -> list[int]:
        return rng.permutation(C)[:n].tolist()

    def run_memmap() -> int:
        for i in order(C):
            np.array(mm["frames"][i]), np.array(mm["tracks"][i]), np.array(mm["vis"][i])
        return C

    def run_reader(r: ShardReader, n: int = C) -> Callable[[], int]:
        def run() -> int:
            for i in order(n):
                r[i]
            return n

        return run

    def run_zarr_api() -> int:
        n = 64
        for i in order(n):
            zf[i], decode_tracks(zt[i], size, size), zv[i]
        return n

    def run_jpeg() -> int:
        n = 8
        for i in order(n):
            decode_jpeg_clip(jpeg_clips[i % UNIQUE], size), np.array(mm["tracks"][i]), np.array(mm["vis"][i])
        return n

    methods = {
        "memmap": run_memmap,
        "store": run_reader(reader),
        "store, frames one file per clip": run_reader(per_clip),
        "zarr API per clip (frames[i], tracks[i], visibility[i])": run_zarr_api,
        "store, zstd-1 frames (read through zarr)": run_reader(zstd, 64),
        "jpeg + PIL": run_jpeg,
    }
    results = round_robin(methods, runs)
    ratios = [s / m for s, m in zip(results["memmap"]["runs_s"], results["store"]["runs_s"], strict=True)]
    sizes = {name: du(root / name) / 2**20 for name in ("shard.zarr", "per_clip.zarr", "zstd1.zarr")} | {
        "memmap (.npy)": sum(du(root / f"{k}.npy") for k in ("frames", "tracks", "vis")) / 2**20
    }
    tv = (du(shard / "tracks") + du(shard / "visibility")) / (C * T * N)
    out = {
        "size": size,
        "clip_mb": T * size * size * 3 / 2**20,
        "methods": results,
        "store_vs_memmap_per_round": ratios,
        "store_vs_memmap": statistics.median(ratios),
        "store_vs_jpeg": results["store"]["clips_per_s"] / results["jpeg + PIL"]["clips_per_s"],
        "shard_write_s": write_s,
        "shard_write_mb_s": du(shard) / 2**20 / write_s,
        "shard_open_ms": open_s * 1e3,
        "verify_s": verify_s,
        "disk_mib": sizes,
        "files": {"shard.zarr": files(shard), "per_clip.zarr": files(root / "per_clip.zarr")},
        "tracks_vis_bytes_per_point_frame": tv,
    }
    shutil.rmtree(root)
    return out


# --- report -------------------------------------------------------------------------------------------------


def markdown(res: dict) -> str:
    lines = [
        "# Track-store benchmark (`benchmarks/store.py`)",
        "",
        f"Data: {res['data']['clips']} clips, T = {T}, N = {N} ({GRID}x{GRID} grid), synthetic smooth trajectories "
        f"({NOISE_PX} px tracker noise, {100 * res['data']['visible_fraction']:.1f} % visible). Frames: "
        f"{res['data']['frames_source']}; {UNIQUE} distinct clips as {FULL[0]}x{FULL[1]} JPEGs (quality "
        f"{JPEG_QUALITY}, mean {res['data']['jpeg_mean_kb']:.0f} kB), decoded and resized to the cache size, "
        f"x16 flip/channel variants. Medians of {res['runs']} timed runs (interleaved, after a warm-up); "
        "page-cache-hot reads.",
        "",
        "## 1. Tracks + visibility encodings (target: <= 3 B per point per frame, <= 1/16 px error)",
        "",
        "| tracks encoding (+ visibility: bool, blosc-zstd5 bitshuffle) | B/point/frame | of which tracks "
        "| max err px (this data) | max err px (2048-px frame) | write MB/s | load all ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["tracks"]["encodings"]:
        lines.append(
            f"| {r['encoding']} | {r['bytes_per_point_frame']:.3f} | {r['tracks_bytes_per_point_frame']:.3f} "
            f"| {r['max_error_px']:.4f} | {r['max_error_px_2048']:.4f} | {r['write_mb_s']:.0f} | {r['load_ms']:.1f} |"
        )
    lines += ["", "| visibility codec | B/point/frame |", "|---|---:|"]
    lines += [f"| {r['codec']} | {r['bytes_per_point_frame']:.4f} |" for r in res["tracks"]["visibility"]]
    lines += [
        "",
        "| chosen tracks encoding, clips per chunk | tracks B/point/frame | chunk files | write MB/s | load all ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['chunk_clips']} | {r['tracks_bytes_per_point_frame']:.3f} | {r['files']} | {r['write_mb_s']:.0f} "
        f"| {r['load_ms']:.1f} |"
        for r in res["tracks"]["chunks"]
    ]
    lines += [
        "",
        "## 2. Frame codecs (64 clips at 224x224, 1 clip per inner chunk, 16 clips per shard file)",
        "",
        "| codec | ratio | write MB/s | read via zarr ms/clip | bare codec decode ms/clip | memcpy ms/clip |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["frame_codecs"]:
        dec = "-" if r["codec_decode_ms_per_clip"] is None else f"{r['codec_decode_ms_per_clip']:.2f}"
        lines.append(
            f"| {r['codec']} | {r['ratio']:.3f} | {r['write_mb_s']:.0f} | {r['zarr_read_ms_per_clip']:.2f} | {dec} "
            f"| {r['memcpy_ms_per_clip']:.3f} |"
        )
    lines += ["", "## 3. Random clip reads: frames + tracks + visibility (targets: >= 0.5x memmap, >= 10x JPEG)", ""]
    for r in res["reads"]:
        m = r["methods"]
        lines += [
            f"### {r['size']}x{r['size']} ({r['clip_mb']:.2f} MiB of frames per clip)",
            "",
            "| method | clips/s | ms/clip | vs memmap | vs JPEG |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, v in m.items():
            lines.append(
                f"| {name} | {v['clips_per_s']:.0f} | {v['ms_per_clip']:.3f} "
                f"| {v['clips_per_s'] / m['memmap']['clips_per_s']:.2f}x "
                f"| {v['clips_per_s'] / m['jpeg + PIL']['clips_per_s']:.1f}x |"
            )
        sizes = ", ".join(f"{k} {v:.1f} MiB" for k, v in r["disk_mib"].items())
        lines += [
            "",
            f"Store / memmap, median of the per-round ratios: **{r['store_vs_memmap']:.2f}x** "
            f"(rounds: {', '.join(f'{x:.2f}' for x in r['store_vs_memmap_per_round'])}); store / JPEG: "
            f"**{r['store_vs_jpeg']:.0f}x**. Shard written by ShardWriter in {r['shard_write_s']:.2f} s "
            f"({r['shard_write_mb_s']:.0f} MiB/s), opened (small arrays loaded) in {r['shard_open_ms']:.1f} ms, "
            f"verified in {r['verify_s']:.2f} s; "
            f"tracks + visibility {r['tracks_vis_bytes_per_point_frame']:.3f} B/point/frame; files: "
            f"{r['files']['shard.zarr']} (sharded frames) vs {r['files']['per_clip.zarr']} (one file per clip). "
            f"Disk: {sizes}.",
            "",
        ]
    mc = res["machine"]
    lines += [
        f"Machine: {mc['cpu_count']} CPUs ({mc['cpu_model']}), {mc['memory_gib']} GiB, {mc['platform']}; Python "
        f"{mc['python']}, numpy {mc['numpy']}, zarr {mc['zarr']}, numcodecs {mc['numcodecs']} (blosc threads "
        f"{mc['blosc_threads']}), Pillow {mc['pillow']}. Total benchmark time {res['elapsed_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per method (median reported)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    t_start = time.perf_counter()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="mosic_store_bench_") as tmp_name:
        tmp = Path(tmp_name)
        jpeg_clips, source = make_jpeg_clips(rng, tmp / "jpeg")
        jpeg_kb = np.mean([p.stat().st_size for clip in jpeg_clips for p in clip]) / 1e3
        tracks224, vis224 = synth_tracks(rng, C, 224, 224)
        print(f"data ready ({time.perf_counter() - t_start:.0f} s); tracks", flush=True)
        res: dict[str, object] = {
            "runs": args.runs,
            "data": {
                "clips": C,
                "T": T,
                "N": N,
                "frames_source": source,
                "jpeg_size": list(FULL),
                "jpeg_quality": JPEG_QUALITY,
                "jpeg_mean_kb": jpeg_kb,
                "tracker_noise_px": NOISE_PX,
                "visible_fraction": float(vis224.mean()),
            },
            "machine": machine(),
            "tracks": bench_tracks(tracks224, vis224, tmp, args.runs),
        }
        print(f"frame codecs ({time.perf_counter() - t_start:.0f} s)", flush=True)
        res["frame_codecs"] = bench_frame_codecs(cache_frames(jpeg_clips, 224)[:64], tmp, args.runs)
        reads = []
        for size in (224, 112):
            print(f"reads at {size} ({time.perf_counter() - t_start:.0f} s)", flush=True)
            tracks, vis = (tracks224, vis224) if size == 224 else synth_tracks(np.random.default_rng(1), C, size, size)
            reads.append(bench_reads(size, tracks, vis, jpeg_clips, tmp, args.runs))
        res["reads"] = reads
    res["elapsed_s"] = time.perf_counter() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "store.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "store.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
