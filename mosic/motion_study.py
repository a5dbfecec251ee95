"""Does motion teach? The tracked run against its start and the static, shuffled and transposed controls.

One function, :func:`run_study`, runs the whole comparison on the synthetic turning-object data in a working folder,
outside Snakemake (``benchmarks/motion_teaches.py`` reports it; ``tests/test_motion_teaches.py`` asserts it on a tiny
configuration):

1. render the dataset (``synthetic:``), index it, cache the clips tracked with each tracker (``ground_truth``: the
   exact synthetic trajectories; ``lk``: Lucas-Kanade with ``track.substep`` as the pipeline resolves it);
2. make the image-pretrained start once when ``train.init`` is ``pretrain`` (it only ever saw face
   ``pretrain.face``);
3. per tracker and training seed, train the tracked run (``mosic``) and the controls from that start;
4. score the start and every run with :func:`score_model`: Hummingbird (same-face: the standard val split, memory
   from train) and cross-view Hummingbird (memory from ``train_face<a>``, queries ``val_face<b>``, both directions
   averaged), and :func:`face_linking` on the training videos: how much more a turning object's two faces resemble
   each other than they resemble another object's faces in the same video (what tracks can teach and a static
   point cannot; the clip's shared context counts for both);
5. optionally (``labelled=True``) the labelled reference: the start trained with class labels on images whose
   objects show every face (split ``train``), for as many steps as a video run, scored the same way. Labels say
   outright what motion has to discover, so its change against the start calibrates the protocols: how far the
   backbone can move in that budget when it is told that the faces belong together.

Everything already in the folder (data, index, start, track caches, finished runs) is reused, so a study can be
extended run by run. Runs live in ``<work>/runs/<name>/<tracker>/<variant>_s<seed>``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mosic.config import Config, RunSpec, run_train_config, track_substep
from mosic.data.frames import decode_image, list_frame_files
from mosic.data.index import run_index
from mosic.data.synthetic import generate_synthetic, load_scene
from mosic.evaluate.clustering import cluster_xview, overcluster
from mosic.evaluate.datasets import image_dataset
from mosic.evaluate.datasets.files import read_label_png
from mosic.evaluate.features import FeatureExtractor, load_model
from mosic.evaluate.hummingbird import hummingbird
from mosic.provenance import provenance
from mosic.tracking.shard import track_shard
from mosic.train.loop import train
from mosic.train.pretrain import run_pretrain

__all__ = [
    "CROSS_METRICS",
    "METRICS",
    "STANDARD_METRICS",
    "VARIANTS",
    "face_linking",
    "object_retrieval",
    "run_study",
    "score_model",
    "summarize",
    "variance_shares",
]

VARIANTS = ("mosic", "static", "shuffled", "transposed")
# score_model's headline metrics in the order reported; the cross-view ones and the standard protocols' ones
METRICS = ("same", "cluster", "cross", "cross_cluster", "objects", "linking", "class_var", "image_var")
CROSS_METRICS = ("cross", "cross_cluster")
STANDARD_METRICS = ("same", "cluster")


def _patch_blocks(mask: np.ndarray, grid: int) -> np.ndarray:
    """The labels under each patch of a `grid` x `grid` token map: [grid, grid, p * p] (p = mask side // grid)."""
    p = mask.shape[0] // grid
    return mask[: grid * p, : grid * p].reshape(grid, p, grid, p).transpose(0, 2, 1, 3).reshape(grid, grid, p * p)


def face_linking(extractor: FeatureExtractor, videos: Path, *, coverage: float = 0.75,
                 frame_step: int = 3) -> dict[str, float]:  # fmt: skip
    """Does a turning object's other face look like itself, beyond what the clip's context explains?

    On the synthetic videos under `videos` (YouTube-VOS layout with ``Scenes/``), every patch token at least
    `coverage` covered by one turning object, in every `frame_step`-th frame, is labelled with the face the object
    shows in that frame (frames during the turn are left out); each object's tokens are averaged per face. ``own``
    is the mean cosine similarity between an object's face-a and face-b means; ``context`` the same between two
    different objects of the same video (faces a and b); ``linking = own - context``: zero when the features link
    the two faces only through the clip's shared context (background, lighting, camera), which a static point learns
    as well as a tracked one.
    Values in cosine units x 100.
    """
    means: dict[tuple[str, int, int], Tensor] = {}
    for path in sorted((videos / "Scenes").glob("*.json")):
        scene = load_scene(path)
        turning = [o for o in scene.objects if len(o.shown) == 2]
        if not turning:
            continue
        files = list_frame_files(videos / "JPEGImages" / scene.name)[::frame_step]
        frames = np.stack([decode_image(f) for f in files])
        masks = np.stack([read_label_png(videos / "Annotations" / scene.name / f"{f.stem}.png") for f in files])
        feats = extractor(frames)  # [T, S, S, D]
        s = feats.shape[1]
        tokens: dict[tuple[int, int], list[Tensor]] = defaultdict(list)
        for i, f in enumerate(files):
            t = int(f.stem)  # YouTube-VOS frame names are frame numbers
            blocks = _patch_blocks(masks[i], s)
            for obj in turning:
                if obj.turn_start <= t < obj.turn_start + obj.turn_frames:
                    continue
                face = obj.shown[1] if t >= obj.turn_start + obj.turn_frames else obj.shown[0]
                rows, cols = np.nonzero((blocks == obj.instance).mean(-1) >= coverage)
                tokens[(obj.instance, face)].extend(feats[i, rows, cols])
        for (instance, face), items in tokens.items():
            if not items:  # never covered enough of a patch on this face
                continue
            means[(scene.name, instance, face)] = F.normalize(torch.stack(items).mean(0), dim=0)
    own, context = [], []
    keys = list(means)
    for video, instance, face in keys:
        for video2, instance2, face2 in keys:
            if video2 != video or face2 == face or (instance2, face2) < (instance, face):
                continue
            sim = float(means[(video, instance, face)] @ means[(video2, instance2, face2)])
            (own if instance2 == instance else context).append(sim)
    if not own or not context:
        raise ValueError(f"no video under {videos} has two objects seen on two faces each")
    out = {"own": 100 * statistics.mean(own), "context": 100 * statistics.mean(context)}
    out["linking"] = out["own"] - out["context"]
    return out


def _labelled_tokens(feats: Tensor, dataset: Any, coverage: float, *,
                     background: bool) -> tuple[Tensor, np.ndarray, np.ndarray]:  # fmt: skip
    """The patch tokens of `feats` ([B, S, S, D], the features of every image of `dataset`) at least `coverage`
    covered by one label, the ignore label left out and background 0 too unless `background`: tokens [M, D], their
    labels [M] and image indices [M]."""
    s = feats.shape[1]
    kept, labels, images = [], [], []
    for i in range(len(dataset)):
        blocks = _patch_blocks(dataset.mask(i), s)
        for c in np.unique(blocks):
            if c == dataset.ignore_index or (c == 0 and not background):
                continue
            rows, cols = np.nonzero((blocks == c).mean(-1) >= coverage)
            kept.append(feats[i, rows, cols])
            labels.append(np.full(len(rows), int(c)))
            images.append(np.full(len(rows), i))
    if not sum(len(x) for x in labels):
        raise ValueError(f"{dataset!r} has no patch at least {coverage:.0%} covered by one "
                         f"{'label' if background else 'object class'}")  # fmt: skip
    return torch.cat(kept), np.concatenate(labels), np.concatenate(images)


def _images(dataset: Any) -> np.ndarray:
    return np.stack([dataset.image(i) for i in range(len(dataset))])


def object_retrieval(extractor: Callable[[np.ndarray], Tensor], memory: Any, queries: Any, *,
                     coverage: float = 0.75) -> float:  # fmt: skip
    """Class-level retrieval among object patches only, in percent: for every query patch covered by one object
    class, is the nearest (cosine) such patch of the memory images of the same class? The mean over the query
    classes of each class's hit rate; chance is 100 / the number of classes.

    Cross-view Hummingbird also asks whether an object patch is told from the background; this asks only whether
    the other face of a class lands near its own class (memory ``train_face<a>``, queries ``val_face<b>``).
    `memory` and `queries` are image segmentation sets (``len``, ``image(i)``, ``mask(i)``, ``ignore_index``).
    """
    memory_feats, memory_labels, _ = _labelled_tokens(extractor(_images(memory)), memory, coverage, background=False)
    query_feats, query_labels, _ = _labelled_tokens(extractor(_images(queries)), queries, coverage, background=False)
    memory_feats, query_feats = F.normalize(memory_feats, dim=-1), F.normalize(query_feats, dim=-1)
    nearest = memory_labels[(query_feats @ memory_feats.T).argmax(1).numpy()]
    hits = [float(np.mean(nearest[query_labels == c] == c)) for c in np.unique(query_labels)]
    return 100 * statistics.mean(hits)


def variance_shares(extractor: Callable[[np.ndarray], Tensor], dataset: Any, *,
                    coverage: float = 0.75) -> dict[str, float]:  # fmt: skip
    """How the features' variance splits, in percent: over every patch token of `dataset` at least `coverage`
    covered by one label (background included, the ignore label left out), each feature standardised, the share of
    the total variance that the label's means explain (``class``) and that the image's means explain (``image``).

    A backbone whose tokens say what is under them has a high class share; one whose tokens say which image (clip,
    background, lighting) they come from has a high image share, and K-means then groups by image. `dataset` is an
    image segmentation set (``len``, ``image(i)``, ``mask(i)``, ``ignore_index``).
    """
    tokens, labels, images = _labelled_tokens(extractor(_images(dataset)), dataset, coverage, background=True)
    x = tokens.double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    total = float((x**2).sum())

    def explained(groups: np.ndarray) -> float:
        ids, inverse, counts = torch.unique(torch.from_numpy(groups), return_inverse=True, return_counts=True)
        means = torch.zeros(len(ids), x.shape[1], dtype=x.dtype).index_add_(0, inverse, x) / counts[:, None]
        return 100 * float((counts[:, None] * means**2).sum()) / total

    return {"class": explained(labels), "image": explained(images)}


def score_model(model_path: str | Path, cfg: Config, voc: Path, *, same: bool = True,
                videos: Path | None = None) -> dict[str, float]:  # fmt: skip
    """Hummingbird mIoU in points: ``same`` (train -> val; left out with ``same=False``) and ``cross`` (mean over
    ``train_face a -> val_face b``, a != b, each direction also under ``cross_<a>to<b>``); the same directions'
    :func:`object_retrieval` (percent) under ``objects`` (mean) and ``objects_<a>to<b>``; K-means with K = the
    classes (Hungarian), mIoU in points: ``cluster`` on the val split (left out with ``same=False``) and
    ``cross_cluster``, :func:`mosic.evaluate.clustering.cluster_xview` over every face's val images;
    :func:`variance_shares` of the val images under ``class_var`` and ``image_var`` (percent); with `videos`
    (the training videos), also :func:`face_linking`'s values under ``link_own``, ``link_context`` and
    ``linking``."""
    ev = cfg.evaluate
    hb = ev.hummingbird
    extractor = FeatureExtractor(load_model(str(model_path), input_size=hb.input_size), input_size=hb.input_size)
    clusters = extractor
    if ev.input_size != hb.input_size:
        clusters = FeatureExtractor(load_model(str(model_path), input_size=ev.input_size), input_size=ev.input_size)
    out = {}
    if videos is not None:
        link = face_linking(extractor, videos)
        out.update(link_own=link["own"], link_context=link["context"], linking=link["linking"])
    if same:
        train_val = (image_dataset("synthetic", voc, split) for split in ("train", "val"))
        out["same"] = 100 * hummingbird(*train_val, extractor, hb, seed=ev.seed)["miou"]
    cross, objects = [], []
    faces = cfg.synthetic.faces
    for a in range(faces):
        for b in range(faces):
            if a != b:
                memory = image_dataset("synthetic", voc, f"train_face{a}")
                queries = image_dataset("synthetic", voc, f"val_face{b}")
                out[f"cross_{a}to{b}"] = 100 * hummingbird(memory, queries, extractor, hb, seed=ev.seed)["miou"]
                out[f"objects_{a}to{b}"] = object_retrieval(extractor, memory, queries)
                cross.append(out[f"cross_{a}to{b}"])
                objects.append(out[f"objects_{a}to{b}"])
    out["cross"] = statistics.mean(cross)
    out["objects"] = statistics.mean(objects)
    if same:
        val = image_dataset("synthetic", voc, "val")
        k_classes = dataclasses.replace(ev.clustering, ks=[0])
        out["cluster"] = 100 * overcluster(val, clusters, k_classes)["k"][val.num_classes]["miou"]
    val_faces = [image_dataset("synthetic", voc, f"val_face{f}") for f in range(faces)]
    out["cross_cluster"] = 100 * cluster_xview(val_faces, clusters, ev.clustering)["miou"]
    shares = variance_shares(clusters, image_dataset("synthetic", voc, "val"))
    out["class_var"], out["image_var"] = shares["class"], shares["image"]
    return out


def run_study(
    cfg: Config,
    work: Path,
    *,
    trackers: Sequence[str] = ("ground_truth", "lk"),
    seeds: Sequence[int] = (0, 1),
    variants: Sequence[str] = VARIANTS,
    name: str = "study",
    same: bool = True,
    linking: bool = True,
    labelled: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the study (module docstring) in `work`; returns ``{"scores": {"start_s<seed>" |
    "<tracker>/<variant>_s<seed>": score_model(...)}, "pretrain": the pretrained start's record or None}`` (a seed's
    start is the backbone its runs began from: the pretrained start, or the seed's random initialisation).
    ``same=False`` scores cross-view only; ``linking=False`` leaves :func:`face_linking` out; ``labelled=True`` adds
    ``scores["labelled"]`` and ``"labelled"``: the labelled reference's record (module docstring, step 5)."""
    if cfg.dataset.kind != "synthetic" or cfg.synthetic.faces < 2:
        raise ValueError("the motion study needs dataset.kind: synthetic with synthetic.faces >= 2")
    if labelled and (cfg.train.init != "pretrain" or not seeds or not variants):
        raise ValueError("the labelled reference needs train.init: pretrain and at least one seed and variant")
    work.mkdir(parents=True, exist_ok=True)
    data, voc = work / "data", work / "data" / "voc"
    videos = data / "ytvos" if linking else None
    if not voc.is_dir():
        log("rendering the dataset ...")
        generate_synthetic(cfg.synthetic, data)
    prov = provenance(cfg, stage="motion_study")
    shard_clips = [work / "clips" / f"shard_{s:05d}.parquet" for s in range(cfg.clips.num_shards)]
    if not all(p.exists() for p in shard_clips):
        run_index(root=data / "ytvos", dataset=cfg.dataset, index=cfg.index, clips=cfg.clips,
                  index_path=work / "index.parquet", clips_path=work / "clips.parquet", provenance=prov,
                  shard_paths=shard_clips)  # fmt: skip
    start, pre = None, None
    if cfg.train.init == "pretrain":
        start = work / "pretrain" / "backbone.safetensors"
        if not start.exists():
            log("pretraining the start ...")
            run_pretrain(cfg.pretrain, voc, start, model=cfg.train.model, input_size=cfg.train.input_size,
                         faces=cfg.synthetic.faces, provenance=prov)  # fmt: skip
        pre = json.loads((start.parent / "pretrain.json").read_text())
    scores: dict[str, dict[str, float]] = {}
    total_steps = 0
    for tracker in trackers:
        tcfg = dataclasses.replace(cfg, track=dataclasses.replace(cfg.track, tracker=tracker))
        shards = []
        for s in range(cfg.clips.num_shards):
            out = work / f"tracks_{tracker}" / f"shard_{s:05d}.zarr"
            if not out.exists():
                track_shard(shard=s, clips_path=shard_clips[s], num_frames=cfg.clips.num_frames, track=tcfg.track,
                            out_path=out, provenance=prov, scenes_dir=data / "ytvos" / "Scenes",
                            substep=track_substep(tcfg))  # fmt: skip
            shards.append(out)
        for seed in seeds:
            for variant in variants:
                key = f"{tracker}/{variant}_s{seed}"
                run = work / "runs" / name / key
                tc = run_train_config(cfg, pretrain_backbone=str(start) if start else None)
                trained = train(tc, RunSpec(variant=variant, seed=seed), shards, run, provenance=prov)
                total_steps = trained["total_steps"]
                begin = f"start_s{seed}"
                if begin not in scores:  # every run of a seed starts from the same backbone, which it exported
                    done = [v for k, v in scores.items() if k.startswith("start_s")]
                    shared = start is not None and done  # the pretrained start is every seed's
                    scores[begin] = (
                        done[0]
                        if shared
                        else score_model(run / "initial_backbone.safetensors", cfg, voc, same=same, videos=videos)
                    )
                    log(f"{begin} {_short(scores[begin])}")
                scores[key] = score_model(run / "backbone.safetensors", cfg, voc, same=same, videos=videos)
                log(f"{key} {_short(scores[key])}")
    out: dict[str, Any] = {"scores": scores, "pretrain": pre}
    if labelled:
        path = work / "labelled" / f"steps_{total_steps}" / "backbone.safetensors"
        if not path.exists():
            log(f"training the labelled reference: {total_steps} steps with labels on every face ...")
            run_pretrain(dataclasses.replace(cfg.pretrain, steps=total_steps), voc, path, model=cfg.train.model,
                         input_size=cfg.train.input_size, faces=cfg.synthetic.faces, provenance=prov, split="train",
                         init=start)  # fmt: skip
        out["labelled"] = json.loads((path.parent / "pretrain.json").read_text())
        scores["labelled"] = score_model(path, cfg, voc, same=same, videos=videos)
        log(f"labelled {_short(scores['labelled'])}")
    return out


def _short(score: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.1f}" for k, v in score.items())


def summarize(scores: dict[str, dict[str, float]], trackers: Sequence[str], variants: Sequence[str],
              seeds: Sequence[int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Per tracker and variant (and the labelled reference, tracker ``labels``, when scored), the change against the
    start (mean and per seed) on every metric of :data:`METRICS` scored, and per tracker the verdict: the tracked
    run beats its start and every control by >= 3 points on every cross-view protocol scored (:data:`CROSS_METRICS`)
    in every seed, and loses <= 1 point on every standard one (:data:`STANDARD_METRICS`)."""
    rows = []
    runs = [(t, v, [f"{t}/{v}_s{s}" for s in seeds]) for t in trackers for v in variants]
    if "labelled" in scores:  # one reference from the shared start, against every seed's (equal) start
        runs.append(("labels", "labelled", ["labelled"] * len(seeds)))
    for tracker, variant, keys in runs:
        row: dict[str, Any] = {"tracker": tracker, "variant": variant}
        for metric in METRICS:
            if metric not in scores[f"start_s{seeds[0]}"]:
                continue
            deltas = [scores[k][metric] - scores[f"start_s{s}"][metric] for k, s in zip(keys, seeds, strict=True)]
            row[f"d_{metric}"] = round(statistics.mean(deltas), 2)
            row[f"d_{metric}_seeds"] = [round(d, 2) for d in deltas]
        rows.append(row)
    verdict = {}
    for tracker in trackers:
        mine = {r["variant"]: r for r in rows if r["tracker"] == tracker}
        if "mosic" not in mine:
            continue
        m = mine["mosic"]
        cross = [k for k in CROSS_METRICS if f"d_{k}_seeds" in m]
        standard = [k for k in STANDARD_METRICS if f"d_{k}_seeds" in m]
        margins = {k: {v: [round(a - b, 2) for a, b in zip(m[f"d_{k}_seeds"], r[f"d_{k}_seeds"], strict=True)]
                       for v, r in mine.items() if v != "mosic"} for k in cross}  # fmt: skip
        verdict[tracker] = {
            "cross_vs_start": m["d_cross_seeds"],
            "cross_margin_vs_controls": margins["cross"],
            "same_vs_start": m["d_same_seeds"],
            "margins_vs_controls": margins,
            "target_met": all(d >= 3 for k in cross for d in m[f"d_{k}_seeds"])
            and all(x >= 3 for k in cross for d in margins[k].values() for x in d)
            and all(d >= -1 for k in standard for d in m[f"d_{k}_seeds"]),
        }
    return rows, verdict
