"""Cross-view protocols (hummingbird_xview, clustering_xview) on a tiny synthetic image set with two faces per class.

Stand-in features read the ground truth: each image is replaced by a rendering of its labels (a grey level per
code), and the extractor one-hot encodes the majority code of each patch. Coding the class alone gives features
that know a class whatever face it shows; coding (class, face) gives features of appearance only, which is what
a backbone that never saw an object turn may learn. The protocols must tell the two apart; the standard
same-face Hummingbird cannot.
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from snakemake_runner import TINY_CONFIG, run_snakemake

import mosic.evaluate.hummingbird as hummingbird_module
from mosic.config import (
    ClusteringConfig,
    ConfigError,
    CrossViewConfig,
    EvaluateJob,
    EvaluateShared,
    HummingbirdConfig,
    ImageDatasetConfig,
    SyntheticConfig,
    VideoDatasetConfig,
    evaluate_job,
    evaluate_job_from_dict,
    parse_config,
    protocols_on,
)
from mosic.data.synthetic import generate_synthetic
from mosic.evaluate.clustering import cluster_xview
from mosic.evaluate.datasets import image_dataset, synthetic_faces
from mosic.evaluate.hummingbird import hummingbird, hummingbird_xview
from mosic.evaluate.run import aggregate, run_protocol

TWO_FACES = SyntheticConfig(
    seed=3,
    num_videos=1,
    num_frames=4,
    height=64,
    width=64,
    num_classes=6,
    faces=2,
    turn_frames=2,
    turn_travel=0.0,
    texture_seed=0,
    min_objects=2,
    max_objects=4,
    max_speed=3.0,
    camera_speed=1.0,
    scale_change=2.0,
    appearance_drift=0.5,
    noise=2.0,
    track_grid=4,
    write_mp4=False,
    images_train=8,
    images_val=10,
)
STEP = 18  # grey level per label code: 13 codes (background, 6 classes x 2 faces) fit in 0-216
HB = HummingbirdConfig(
    enabled=True, input_size=64, memory_size=2048, augment_passes=1, train_fraction=1.0, k=5, temperature=0.02
)
# Restarts: the background holds ~65 % of the patches, so most random K-means inits miss a small class;
# with 50 restarts one finds every class (the best objective wins).
CLUSTER = ClusteringConfig(enabled=True, ks=[0, 20], pca_dim=13, iters=20, restarts=50, seeds=1, mask_size=64)


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_faces")
    generate_synthetic(TWO_FACES, root)
    return root / "voc"


class LabelView:
    """A split of the synthetic set whose image paints each pixel's code: its class, or its class and face (every
    object of a ``*_face<f>`` split shows face f). The ignore band is painted as background."""

    def __init__(self, ds, face: int, *, with_face: bool) -> None:
        self.ds, self.face, self.with_face = ds, face, with_face
        self.name, self.num_classes, self.ignore_index, self.class_names = (
            ds.name, ds.num_classes, ds.ignore_index, ds.class_names
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.ds)

    def mask(self, i: int) -> np.ndarray:
        return self.ds.mask(i)

    def image(self, i: int) -> np.ndarray:
        m = self.ds.mask(i).astype(np.int64)
        m[m == self.ignore_index] = 0
        code = np.where(m > 0, m + self.face * (self.num_classes - 1), 0) if self.with_face else m
        return np.repeat((code * STEP)[..., None], 3, axis=-1).astype(np.uint8)


class OneHotExtractor:
    """A FeatureExtractor stand-in: per 4-px patch, the one-hot of the majority code, plus a little noise (exact
    duplicates tie in the k-NN search and stall K-means)."""

    input_size, grid, batch_size = 64, 16, 8

    def __init__(self, codes: int) -> None:
        self.dim = codes
        self.rng = np.random.default_rng(0)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images))[..., 0].float()
        code = (x / STEP).round().long().clamp(0, self.dim - 1)
        b, p = len(x), x.shape[1] // self.grid
        share = F.one_hot(code, self.dim).float().view(b, self.grid, p, self.grid, p, -1).mean((2, 4))
        onehot = F.one_hot(share.argmax(-1), self.dim).float()
        return onehot + 0.05 * torch.as_tensor(self.rng.standard_normal(onehot.shape), dtype=torch.float32)


def label_views(voc, split: str, *, with_face: bool) -> list[LabelView]:
    return [LabelView(image_dataset("synthetic", voc, f"{split}_face{f}"), f, with_face=with_face) for f in (0, 1)]


@pytest.fixture
def no_jitter(monkeypatch):
    """Memory crops without colour jitter, so that the painted codes survive (crops and resizing still apply)."""
    monkeypatch.setattr(hummingbird_module, "JITTER_P", 0.0)


@pytest.mark.usefixtures("no_jitter")
def test_hummingbird_xview_needs_features_that_link_the_faces(voc):
    scores = {}
    for with_face in (False, True):
        extractor = OneHotExtractor(13 if with_face else 7)
        train, val = label_views(voc, "train", with_face=with_face), label_views(voc, "val", with_face=with_face)
        same_face = hummingbird(train[0], val[0], extractor, HB, seed=0)["miou"]
        cross = hummingbird_xview(train, val, extractor, HB, seed=0)
        scores[with_face] = same_face, cross
        assert set(cross["directions"]) == {"face0_to_face1", "face1_to_face0"} and cross["faces"] == 2
        assert cross["miou"] == pytest.approx(np.mean([cross["miou_face0_to_face1"], cross["miou_face1_to_face0"]]))
    # Class features: the faces do not matter (4-px patches on 64-px images bound both near 0.87).
    same_face, cross = scores[False]
    assert same_face > 0.8 and cross["miou"] > same_face - 0.03
    # Appearance features: as good within a face, lost across faces (only the background transfers).
    same_face, cross = scores[True]
    assert same_face > 0.8 and cross["miou_face0_to_face1"] < 0.3 and cross["miou_face1_to_face0"] < 0.3


def test_clustering_xview_needs_clusters_that_span_the_faces(voc):
    classes = cluster_xview(label_views(voc, "val", with_face=False), OneHotExtractor(7), CLUSTER)
    faces = cluster_xview(label_views(voc, "val", with_face=True), OneHotExtractor(13), CLUSTER)
    for out in (classes, faces):
        assert list(out["k"]) == [7] and out["k"][7]["matching"] == "hungarian"  # K = G only, whatever ks says
        assert out["images"] == 2 * TWO_FACES.images_val and out["sets"] == "synthetic/val_face0+val_face1"
    assert classes["miou"] > 0.8
    assert faces["miou"] < classes["miou"] - 0.25


SHARED = EvaluateShared(
    input_size=64,
    batch_size=8,
    device="cpu",
    parity=False,
    seed=0,
    image_dataset=ImageDatasetConfig(kind="synthetic", root="", train_split="train", val_split="val"),
    video_dataset=VideoDatasetConfig(kind="synthetic", root="", split=""),
)


def xview_job(protocol: str, reused: HummingbirdConfig | ClusteringConfig, enabled=True) -> EvaluateJob:
    """A cross-view evaluation job on the tiny set, with the settings of the protocol it extends."""
    return EvaluateJob(protocol=protocol, shared=SHARED, section=CrossViewConfig(enabled=enabled), reused=reused)


def test_run_protocol_and_aggregate_put_the_cross_view_rows_in_the_table(voc, tmp_path):
    jobs = {
        "hummingbird_xview": xview_job("hummingbird_xview", dataclasses.replace(HB, memory_size=400), "auto"),
        "clustering_xview": xview_job("clustering_xview", dataclasses.replace(CLUSTER, pca_dim=8, restarts=1), "auto"),
    }
    paths = []
    for protocol in ("hummingbird_xview", "clustering_xview"):
        for model in ("start_s0", "mosic_s0"):
            out = tmp_path / model / protocol / "synthetic.json"
            run_protocol(jobs[protocol], model="test_vit", model_name=model, image_root=str(voc), video_root="",
                         out_path=out, provenance={})  # fmt: skip
            paths.append(out)
    result = json.loads(paths[0].read_text())
    assert result["dataset"] == "synthetic/val_face0+val_face1" and result["settings"]["k"] == HB.k
    assert json.loads(paths[2].read_text())["settings"]["ks"] == [0]
    aggregate(paths, tmp_path / "eval")
    table = pd.read_csv(tmp_path / "eval" / "table.csv")
    rows = set(zip(table["protocol"], table["metric"], strict=True))
    assert rows == {
        ("hummingbird_xview", "miou"),
        ("hummingbird_xview", "miou_face0_to_face1"),
        ("hummingbird_xview", "miou_face1_to_face0"),
        ("clustering_xview", "miou_k7"),
    }
    assert (table.loc[table["variant"] == "start", "delta"] == 0).all() and table["delta"].notna().all()
    assert set(pd.read_csv(tmp_path / "eval" / "summary.csv")["protocol"]) == {"hummingbird_xview", "clustering_xview"}
    assert (tmp_path / "eval" / "deltas.png").stat().st_size > 1000


def test_run_protocol_refuses_a_set_without_faces(tmp_path):
    generate_synthetic(dataclasses.replace(TWO_FACES, faces=1, images_train=1, images_val=1), tmp_path)
    assert synthetic_faces(tmp_path) == 1
    job = xview_job("clustering_xview", CLUSTER)
    with pytest.raises(ValueError, match="clustering_xview needs the synthetic image set with faces > 1"):
        run_protocol(job, model="test_vit", model_name="start", image_root=str(tmp_path), video_root="",
                     out_path=tmp_path / "out.json", provenance={})  # fmt: skip


# --- configuration and scheduling ----------------------------------------------------------------------------


def test_auto_runs_where_the_image_set_has_faces(default_config_dict):
    assert {"hummingbird_xview", "clustering_xview"} <= set(protocols_on(parse_config(default_config_dict)))
    default_config_dict["synthetic"]["faces"] = 1
    assert not {"hummingbird_xview", "clustering_xview"} & set(protocols_on(parse_config(default_config_dict)))
    default_config_dict["synthetic"]["faces"] = 2
    default_config_dict["evaluate"]["image_dataset"].update(kind="voc", root="VOC")
    on = protocols_on(parse_config(default_config_dict))
    assert on == ["linear", "clustering", "hummingbird", "videoseg"]


@pytest.mark.parametrize("protocol", ["hummingbird_xview", "clustering_xview"])
def test_explicit_true_without_faces_fails_naming_the_key(default_config_dict, protocol):
    default_config_dict["synthetic"]["faces"] = 1
    default_config_dict["evaluate"][protocol]["enabled"] = True
    with pytest.raises(ConfigError, match=rf"'evaluate\.{protocol}\.enabled' is true .* synthetic\.faces 1"):
        parse_config(default_config_dict)
    default_config_dict["evaluate"][protocol]["enabled"] = False
    assert protocol not in protocols_on(parse_config(default_config_dict))


def test_cross_view_job_gets_the_settings_it_reuses(default_config_dict):
    cfg = parse_config(default_config_dict)
    params = evaluate_job(cfg.evaluate, "hummingbird_xview").as_dict()
    job = evaluate_job_from_dict("hummingbird_xview", params)
    assert job.settings == job.reused == cfg.evaluate.hummingbird and job.section.enabled == "auto"
    assert not {"clustering", "clustering_xview"} & set(params)
    # The standard Hummingbird job does not see the cross-view section: enabling it never reruns that job.
    assert "hummingbird_xview" not in evaluate_job(cfg.evaluate, "hummingbird").as_dict()
    with pytest.raises(ConfigError, match="hummingbird_xview evaluation job takes the evaluate.hummingbird section"):
        EvaluateJob(protocol="hummingbird_xview", shared=job.shared, section=job.section)


def dry_run_protocols(tmp_path, override: dict | None = None):
    """The protocols of the evaluate jobs a dry run of the tiny workflow config schedules (and its result)."""
    args = ["-n", "--cores", "1", "--configfile", str(TINY_CONFIG)]
    if override:
        (tmp_path / "override.yaml").write_text(yaml.safe_dump(override))
        args += ["--configfile", str(tmp_path / "override.yaml")]
    res = run_snakemake(tmp_path, *args)
    return set(re.findall(r"protocol=(\w+)", res.stdout + res.stderr)), res


def test_workflow_schedules_cross_view_jobs_only_with_faces(tmp_path):
    protocols, res = dry_run_protocols(tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert {"hummingbird_xview", "clustering_xview", "hummingbird", "clustering"} <= protocols
    protocols, res = dry_run_protocols(tmp_path, {"synthetic": {"faces": 1}})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "hummingbird" in protocols and not {"hummingbird_xview", "clustering_xview"} & protocols
    explicit = {"synthetic": {"faces": 1}, "evaluate": {"clustering_xview": {"enabled": True}}}
    _, res = dry_run_protocols(tmp_path, explicit)
    assert res.returncode != 0 and "'evaluate.clustering_xview.enabled' is true" in res.stdout + res.stderr
