"""Clip animations for the report: cached tracks next to per-clip cluster maps of two backbones, as GIFs.

Each GIF frame is a row of panels: the clip frame with a subset of its tracked points (one colour per point,
filled where visible, hollow where the tracker marks it occluded or lost, with a short trail), then one
cluster map per backbone (the starting backbone, the trained one). A cluster map is K-means on the
L2-normalised patch tokens of *every* frame of the clip at once, so a cluster keeps its colour through time;
every model after the first has its clusters relabelled by Hungarian matching to the first model's, so equal
colours mean the most-overlapping clusters. Maps are upsampled (nearest) to the frame size and shaded with the
frame's brightness.
"""

from __future__ import annotations

import base64
import colorsys
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from scipy.optimize import linear_sum_assignment

from mosic.evaluate.features import FeatureExtractor, load_model
from mosic.evaluate.kmeans import kmeans
from mosic.store import ShardReader

logger = logging.getLogger(__name__)

__all__ = [
    "cluster_clip",
    "match_clusters",
    "upsample_labels",
    "colourise",
    "point_colours",
    "select_points",
    "draw_tracks",
    "animate_clip",
    "pick_clips",
    "render_clip_animations",
    "gallery_html",
]

# tab10 followed by two more distinct colours; cycled (darkened) beyond 12 clusters.
_PALETTE = np.array(
    [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
        (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (255, 255, 80), (0, 0, 128),
    ],
    dtype=np.uint8,
)  # fmt: skip
_HEADER = 16  # pixels of the title strip above each panel
_GAP = 4  # pixels between panels


def palette(k: int) -> np.ndarray:
    """``k`` distinct RGB colours, uint8 [k, 3]."""
    reps = [(_PALETTE.astype(np.float32) * (0.7**r)).astype(np.uint8) for r in range(math.ceil(k / len(_PALETTE)))]
    return np.concatenate(reps)[:k]


def cluster_clip(features: torch.Tensor | np.ndarray, k: int, *, seed: int = 0, iters: int = 25) -> np.ndarray:
    """K-means cluster labels of every patch of every frame of a clip, fitted jointly on all frames.

    Args:
        features: float [T, S, S, D] patch tokens.
        k: number of clusters (fewer when the clip has fewer patches).
        seed: K-means seed; the same features and seed give the same labels.
        iters: Lloyd iterations.

    Returns:
        int64 [T, S, S] labels in ``0 .. k-1``, numbered by decreasing cluster size (0 = the largest).
    """
    f = torch.as_tensor(np.asarray(features, dtype=np.float32) if not torch.is_tensor(features) else features)
    t, s1, s2, d = f.shape
    x = torch.nn.functional.normalize(f.reshape(-1, d).float(), dim=-1)
    k = max(1, min(k, len(x)))
    km_logger = logging.getLogger("mosic.evaluate.kmeans")
    level = km_logger.level
    km_logger.setLevel(logging.ERROR)  # a clip has few patches; faiss's "too few points" advice does not apply
    try:
        _, labels = kmeans(x, k, iters=iters, restarts=1, seed=seed, use_faiss=False)
    finally:
        km_logger.setLevel(level)
    counts = np.bincount(labels, minlength=k)
    order = np.argsort(-counts, kind="stable")  # old label of the largest cluster first
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels].reshape(t, s1, s2)


def upsample_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour upsampling of label maps [..., S1, S2] to [..., H, W] (patch-aligned, no interpolation)."""
    h, w = size
    s1, s2 = labels.shape[-2:]
    rows = (np.arange(h) * s1) // h
    cols = (np.arange(w) * s2) // w
    return labels[..., rows[:, None], cols[None, :]]


def match_clusters(reference: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Relabel `labels` so each cluster takes the label of the `reference` cluster it overlaps most (Hungarian).

    Both are int label maps of the same shape with values in ``0 .. k-1``. The mapping is a permutation, so
    the number of clusters and the partition are unchanged; only the colours move.
    """
    if reference.shape != labels.shape:
        raise ValueError(f"label maps differ in shape: {reference.shape} vs {labels.shape}")
    overlap = np.zeros((k, k), dtype=np.int64)
    np.add.at(overlap, (labels.ravel(), reference.ravel()), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.arange(k)
    mapping[rows] = cols
    return mapping[labels]


def colourise(labels: np.ndarray, k: int, frame: np.ndarray | None = None, *, shade: float = 0.3) -> np.ndarray:
    """uint8 RGB [H, W, 3] of a label map [H, W]; with `frame`, darkened by up to `shade` where the frame is dark."""
    rgb = palette(k)[labels].astype(np.float32)
    if frame is not None:
        lum = (frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
        rgb *= (1.0 - shade + shade * lum)[..., None]
    return rgb.clip(0, 255).astype(np.uint8)


def point_colours(n: int) -> np.ndarray:
    """``n`` well-spread RGB colours (golden-ratio hues), uint8 [n, 3]."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 1.0)] for h in hues], dtype=np.uint8)


def select_points(num_points: int, max_points: int) -> np.ndarray:
    """Indices of at most `max_points` of `num_points` query points, a regular sub-grid when N is a square."""
    if num_points <= max_points:
        return np.arange(num_points)
    g = math.isqrt(num_points)
    if g * g == num_points:
        step = math.ceil(math.sqrt(num_points / max_points))
        rows = np.arange(step // 2, g, step)
        return (rows[:, None] * g + rows[None, :]).ravel()
    return np.unique(np.linspace(0, num_points - 1, max_points).round().astype(np.int64))


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def draw_tracks(
    frame: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray,
    t: int,
    *,
    points: np.ndarray,
    colours: np.ndarray,
    scale: int = 1,
    trail: int = 3,
) -> Image.Image:
    """Frame `t` upscaled by `scale` with the selected points drawn.

    Args:
        frame: uint8 [H, W, 3], the clip's frame t.
        tracks: float [T, N, 2] positions (x, y), pixel centres at integer coordinates.
        visibility: bool [T, N].
        t: the frame index in the clip.
        points: indices of the points to draw.
        colours: uint8 [len(points), 3], one colour per drawn point.
        scale: integer upscale factor of the frame.
        trail: how many previous frames the trail of a visible point covers.
    """
    h, w = frame.shape[:2]
    img = Image.fromarray(frame).resize((w * scale, h * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    r = max(2.0, 1.2 * scale)

    def px(xy: np.ndarray) -> tuple[float, float]:
        return ((xy[0] + 0.5) * scale - 0.5, (xy[1] + 0.5) * scale - 0.5)

    for colour, n in zip(map(tuple, colours.tolist()), points, strict=True):
        pos = tracks[t, n]
        if not np.isfinite(pos).all():
            continue
        if visibility[t, n]:
            path = [px(tracks[s, n]) for s in range(max(0, t - trail), t + 1)
                    if visibility[s, n] and np.isfinite(tracks[s, n]).all()]  # fmt: skip
            if len(path) > 1:
                draw.line(path, fill=colour, width=max(1, scale // 2))
            x, y = px(pos)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(0, 0, 0))
        elif -0.5 <= pos[0] < w - 0.5 and -0.5 <= pos[1] < h - 0.5:
            x, y = px(pos)
            draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=1)
    return img


def animate_clip(
    frames: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray,
    maps: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    k: int,
    max_points: int = 64,
    trail: int = 3,
    panel_size: int = 192,
    duration_ms: int = 300,
    shade: float = 0.3,
    title: str = "",
) -> Path:
    """Write the GIF of one clip: [frame with tracks] | [cluster map of each model], one GIF frame per frame.

    Args:
        frames: uint8 [T, H, W, 3].
        tracks: float [T, N, 2]; visibility: bool [T, N].
        maps: model name -> int label maps [T, S, S] (any S; upsampled nearest to H × W).
        path: the GIF file.
        k: number of clusters (the palette size).
        max_points: at most this many points are drawn (a regular sub-grid of the query grid).
        trail: trail length in frames.
        panel_size: panels are upscaled by an integer factor to at least this side.
        duration_ms: display time of each frame.
        shade: how much the frame's brightness darkens the cluster colours (0: flat colours, smallest GIF).
        title: text in front of the frame counter in the first panel's header.

    Returns:
        `path`.
    """
    t_len, h, w = frames.shape[:3]
    scale = max(1, math.ceil(panel_size / max(h, w)))
    pw, ph = w * scale, h * scale
    points = select_points(tracks.shape[1], max_points)
    colours = point_colours(len(points))
    up = {name: upsample_labels(np.asarray(m), (ph, pw)) for name, m in maps.items()}
    font = _font()
    width = pw * (1 + len(up)) + _GAP * len(up)
    images = []
    for t in range(t_len):
        canvas = Image.new("RGB", (width, ph + _HEADER), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        panel = draw_tracks(frames[t], tracks, visibility, t, points=points, colours=colours, scale=scale, trail=trail)
        canvas.paste(panel, (0, _HEADER))
        draw.text((2, 2), f"{title}tracks  t={t + 1}/{t_len}", fill=(0, 0, 0), font=font)
        plain = np.asarray(Image.fromarray(frames[t]).resize((pw, ph), Image.Resampling.NEAREST))
        for j, (name, m) in enumerate(up.items(), start=1):
            x0 = j * (pw + _GAP)
            canvas.paste(Image.fromarray(colourise(m[t], k, plain, shade=shade)), (x0, _HEADER))
            draw.text((x0 + 2, 2), f"{name}: K-means, k={k}", fill=(0, 0, 0), font=font)
        images.append(canvas)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_gif(images, path, duration_ms)
    return path


def _save_gif(images: Sequence[Image.Image], path: Path, duration_ms: int) -> None:
    """An endless GIF with one palette for all frames (no colour flicker between frames, smaller file)."""
    w, h = images[0].size
    montage = Image.new("RGB", (w, h * len(images)))
    for i, im in enumerate(images):
        montage.paste(im, (0, h * i))
    pal = montage.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    frames = [im.quantize(palette=pal, dither=Image.Dither.NONE) for im in images]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)


def pick_clips(shards: Sequence[str | Path], n: int) -> list[tuple[int, int]]:
    """(shard position, clip index) of `n` clips spread over the first shard, continuing into later shards only
    when the first holds fewer than `n`; repeats clips when the store holds fewer than `n` in all."""
    candidates: list[tuple[int, int]] = []
    for s, shard in enumerate(shards):
        candidates += [(s, i) for i in range(len(ShardReader(shard)))]
        if len(candidates) >= n:
            break
    if not candidates:
        raise ValueError(f"no clips in the shards {list(map(str, shards))}")
    if len(candidates) < n:
        logger.warning("only %d clip(s) in the store; %d animation(s) repeat a clip", len(candidates), n)
        return [candidates[i % len(candidates)] for i in range(n)]
    picks = np.linspace(0, len(candidates) - 1, n).round().astype(int)
    return [candidates[i] for i in picks]


def _extractor(source: str | Path, input_size: int | None) -> FeatureExtractor:
    """A CPU feature extractor of an exported backbone, at `input_size` or else at its training size."""
    size = input_size or int(json.loads(Path(f"{source}.json").read_text())["img_size"])
    return FeatureExtractor(load_model(str(source), input_size=size), input_size=size, device="cpu", batch_size=16)


def render_clip_animations(
    shards: Sequence[str | Path],
    models: Mapping[str, str | Path],
    out_paths: Sequence[str | Path],
    *,
    k: int = 6,
    input_size: int | None = None,
    seed: int = 0,
    max_points: int = 64,
) -> list[dict]:
    """One GIF per output path from the cached clips, with a cluster map per model.

    Args:
        shards: the track-store shards, the first one first (clips are taken from it).
        models: display name -> exported backbone (``.safetensors``); the first is the colour reference.
        out_paths: the GIFs to write; their number is the number of clips.
        k: K-means clusters per clip.
        input_size: the side frames are resized to for the backbones (None: each model's training size).
        seed: K-means seed.
        max_points: tracked points drawn per clip.

    Returns:
        One record per GIF: ``path``, ``video_id``, ``clip_id`` (the stable 63-bit id), ``source_frames`` (first and
        last frame index in the video), ``shard``, ``frames``, ``points``.
    """
    extractors = {name: _extractor(path, input_size) for name, path in models.items()}
    readers: dict[int, ShardReader] = {}
    records = []
    for out, (s, i) in zip(out_paths, pick_clips(shards, len(out_paths)), strict=True):
        reader = readers.setdefault(s, ShardReader(shards[s]))
        clip = reader[i]
        maps: dict[str, np.ndarray] = {}
        reference = None
        for name, extractor in extractors.items():
            labels = cluster_clip(extractor(clip.frames), k, seed=seed)
            if reference is None:
                reference = labels
            else:  # match at the frame resolution: the models may have different grids
                size = clip.frames.shape[1:3]
                ref_up, lab_up = upsample_labels(reference, size), upsample_labels(labels, size)
                k_eff = int(max(ref_up.max(), lab_up.max())) + 1
                labels = match_clusters(ref_up, lab_up, k_eff)
            maps[name] = labels
        animate_clip(clip.frames, clip.tracks, clip.visibility, maps, out, k=k, max_points=max_points,
                     title=f"{clip.video_id}  ")  # fmt: skip
        records.append({"path": str(out), "video_id": clip.video_id, "clip_id": clip.clip_id,
                        "source_frames": [int(clip.frame_indices[0]), int(clip.frame_indices[-1])],
                        "shard": str(shards[s]), "frames": int(len(clip.frames)),
                        "points": int(min(max_points, clip.tracks.shape[1]))})  # fmt: skip
        logger.info("wrote %s (%s clip %d, %d frames)", out, clip.video_id, clip.clip_id, len(clip.frames))
    return records


def gallery_html(records: Sequence[Mapping], *, title: str = "Clips") -> str:
    """A standalone HTML page showing GIFs inline (embedded as data URIs), each under a heading.

    Args:
        records: dicts with ``path`` (a GIF) and optionally ``video_id``, ``source_frames`` (headed "<video>
            frames a–b"; without it "<video> clip <clip_id>"), ``shard``.
    """
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             "<style>body{font-family:sans-serif;font-size:13px;margin:1em}"
             "img{image-rendering:pixelated;max-width:100%}</style></head>"
             f"<body><h1>{html.escape(title)}</h1>"]  # fmt: skip
    for r in records:
        data = base64.b64encode(Path(r["path"]).read_bytes()).decode("ascii")
        span = r.get("source_frames")
        where = f"frames {span[0]}–{span[1]}" if span else f"clip {r.get('clip_id', '')}"
        label = f"{r.get('video_id', '')} {where}".strip()
        parts.append(f"<h2>{html.escape(label)}</h2><p><code>{html.escape(Path(r['path']).name)}</code>"
                     f" from <code>{html.escape(str(r.get('shard', '')))}</code></p>"
                     f"<img alt='{html.escape(label)}' src='data:image/gif;base64,{data}'>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)
