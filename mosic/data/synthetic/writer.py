"""Writing the synthetic dataset to disk: the YouTube-VOS layout (videos) and the Pascal VOC layout (images).

:func:`generate_synthetic` renders every video and image (:mod:`.render`) and saves them with their ground
truth; the output is a deterministic function of the config (fixed zip timestamps, x264 without mbtree).

Output layout of :func:`generate_synthetic` under ``out_root`` (video ids ``synth_00000``, ...; frame files
``%05d``; image ids ``img_00000``, ...)::

    ytvos/JPEGImages/<vid>/00000.jpg ...     RGB frames, JPEG quality 95
    ytvos/Annotations/<vid>/00000.png ...    palette PNGs of instance ids (0 = background)
    ytvos/meta.json                          {"videos": {vid: {"objects": {"1": {"category", "frames"}}}}}
    ytvos/Tracks/<vid>.npz                   queries [N,2], tracks [T,N,2], visibility [T,N], instance [N]
    ytvos/Scenes/<vid>.json                  scene parameters (load_scene): faces shown and turn of each object
    ytvos/provenance.json                    when a provenance record is given
    videos/<vid>.mp4                         when cfg.write_mp4 (H.264, yuv420p, 24 fps)
    voc/JPEGImages/<id>.jpg                  single frames of independent scenes (objects do not turn)
    voc/SegmentationClass/<id>.png           palette PNGs of class ids, 255 = 1-px boundary band (ignore)
    voc/SegmentationObject/<id>.png          palette PNGs of instance ids (as in objects.json), 255 = band
    voc/ImageSets/Segmentation/{train,val}.txt           img_<j>: each object shows a random face
    voc/ImageSets/Segmentation/{train,val}_face<f>.txt   img_<j>_face<f>: the same image, every object face f
    voc/objects.json                         which face each object shows (below)
    voc/classes.json                         class names, index = class id (0 = background)
    voc/provenance.json                      when a provenance record is given

The face variants (``faces > 1`` only) of an image share its scene, geometry, colours and noise, so their
class and instance masks equal the image's; any reader of this VOC layout opens them as split
``train_face0``, ``val_face1``, .... ``voc/objects.json`` is ``{"format": OBJECTS_FORMAT, "faces": F,
"images": {id: {"source": "img_<j>", "face": f or null, "frame": t, "objects": [{"instance", "class_id",
"category", "shape", "face", "pixels"}, ...]}}}`` for every image id (``face`` null: random per object;
``pixels``: where the object is on top, band included; 0 when out of view or hidden). The face shown at a
pixel is the ``face`` of the instance in ``SegmentationObject`` there.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mosic.config import SyntheticConfig
from mosic.data.synthetic.geometry import _tracks
from mosic.data.synthetic.render import _render_images, image_ids, render_video
from mosic.data.synthetic.scene import save_scene
from mosic.data.textures import class_names
from mosic.geometry import grid_queries

logger = logging.getLogger(__name__)

# The face record of the VOC-layout image set (voc/objects.json).
OBJECTS_FORMAT = "mosic.synthetic.voc_objects/1"

_FPS = 24


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez, but with fixed zip timestamps so that the file is byte-identical across runs."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def voc_palette() -> list[int]:
    """The Pascal VOC / DAVIS colour map (256 RGB entries, flattened; 255 is the light 'ignore' colour)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = voc_palette()


def _save_palette_png(path: Path, labels: np.ndarray) -> None:
    im = Image.fromarray(labels.astype(np.uint8))
    im.putpalette(_PALETTE)  # an "L" image becomes mode "P"
    im.save(path)


def _save_jpeg(path: Path, frame: np.ndarray) -> None:
    Image.fromarray(frame).save(path, quality=95)


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    """H.264/yuv420p at 24 fps; odd sizes are padded by one replicated row/column (yuv420p needs even sizes)."""
    import av  # PyAV is only needed when cfg.write_mp4

    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=_FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # x264's macroblock-tree rate control gave run-to-run different bitstreams on small frames (64 x 64,
        # same input, one thread); without it the output is byte-identical, as the dataset promises.
        stream.options = {"crf": "18", "x264-params": "mbtree=0"}
        for t, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, _FPS)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def _generate_videos(cfg: SyntheticConfig, root: Path, videos_dir: Path | None) -> None:
    for sub in ("JPEGImages", "Annotations", "Tracks", "Scenes"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if videos_dir is not None:
        videos_dir.mkdir(parents=True, exist_ok=True)
    queries = grid_queries(cfg.height, cfg.width, cfg.track_grid)
    meta: dict[str, Any] = {"videos": {}}
    every = max(1, cfg.num_videos // 10)
    for i in range(cfg.num_videos):
        video = render_video(cfg, i)
        vid = video.video_id
        (root / "JPEGImages" / vid).mkdir(exist_ok=True)
        (root / "Annotations" / vid).mkdir(exist_ok=True)
        for t, (frame, mask) in enumerate(zip(video.frames, video.masks, strict=True)):
            _save_jpeg(root / "JPEGImages" / vid / f"{t:05d}.jpg", frame)
            _save_palette_png(root / "Annotations" / vid / f"{t:05d}.png", mask)
        tracks, visibility, instance = _tracks(video.scene, queries, 0)
        _save_npz(
            root / "Tracks" / f"{vid}.npz",
            queries=queries,
            tracks=tracks,
            visibility=visibility,
            instance=instance.astype(np.int16),
        )
        save_scene(video.scene, root / "Scenes" / f"{vid}.json")
        objects = {}
        for inst, category in video.categories.items():
            present = np.flatnonzero((video.masks == inst).any(axis=(1, 2)))
            if present.size:  # like YouTube-VOS, list only objects that appear at all
                objects[str(inst)] = {"category": category, "frames": [f"{t:05d}" for t in present]}
        meta["videos"][vid] = {"objects": objects}
        if videos_dir is not None:
            _write_mp4(videos_dir / f"{vid}.mp4", video.frames)
        if (i + 1) % every == 0 or i + 1 == cfg.num_videos:
            logger.info("synthetic videos: %d/%d rendered", i + 1, cfg.num_videos)
    _write_json(root / "meta.json", meta)


def _generate_images(cfg: SyntheticConfig, root: Path) -> None:
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    count = cfg.images_train + cfg.images_val
    variants = [None] + (list(range(cfg.faces)) if cfg.faces > 1 else [])
    splits: dict[str, list[str]] = {}
    records: dict[str, Any] = {}
    for j in range(count):
        split = "train" if j < cfg.images_train else "val"
        source = image_ids(j, cfg.faces)[0]
        for face, image in zip(variants, _render_images(cfg, j, variants), strict=True):
            _save_jpeg(root / "JPEGImages" / f"{image.image_id}.jpg", image.image)
            _save_palette_png(root / "SegmentationClass" / f"{image.image_id}.png", image.labels)
            _save_palette_png(root / "SegmentationObject" / f"{image.image_id}.png", image.instances)
            splits.setdefault(split if face is None else f"{split}_face{face}", []).append(image.image_id)
            records[image.image_id] = {"source": source, "face": face, "frame": image.frame, "objects": image.objects}
    split_dir = root / "ImageSets" / "Segmentation"
    for name, ids in splits.items():
        (split_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    _write_json(root / "classes.json", class_names(cfg.num_classes, cfg.faces))
    _write_json(root / "objects.json", {"format": OBJECTS_FORMAT, "faces": cfg.faces, "images": records})
    logger.info(
        "synthetic images: %d train, %d val%s",
        cfg.images_train,
        cfg.images_val,
        f", each also with every object showing face f = 0..{cfg.faces - 1}" if cfg.faces > 1 else "",
    )


def generate_synthetic(cfg: SyntheticConfig, out_root: Path, *, provenance: dict | None = None) -> None:
    """Render the whole synthetic dataset: videos in YouTube-VOS layout with exact ground truth, and an
    image segmentation set in Pascal VOC layout (see the module docstring for the file layout).

    The output is a deterministic function of ``cfg``: the same config gives byte-identical files (except
    ``provenance.json``, which holds what the caller passes). Video ``i`` depends only on ``cfg.seed`` and
    ``i``; VOC images come from a separate random stream, so they never repeat a video scene.

    Args:
        cfg: dataset settings.
        out_root: directory to write into (created if missing; the caller handles atomicity).
        provenance: a record to store as ``provenance.json`` in ``ytvos/`` and ``voc/``.
    """
    out_root = Path(out_root)
    ytvos, voc = out_root / "ytvos", out_root / "voc"
    _generate_videos(cfg, ytvos, out_root / "videos" if cfg.write_mp4 else None)
    _generate_images(cfg, voc)
    if provenance is not None:
        for root in (ytvos, voc):
            _write_json(root / "provenance.json", provenance)
