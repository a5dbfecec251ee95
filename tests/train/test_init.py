"""Where training starts (train.init: random / timm / pretrain / a .safetensors path) and the transposed control."""

import dataclasses
import json

import pytest
import safetensors.torch
import timm
import torch
from train_helpers import REPO, RUN, tiny_cfg

from mosic.config import (
    ConfigError,
    PretrainConfig,
    RunSpec,
    SyntheticConfig,
    parse_config,
    run_record,
    run_train_config,
)
from mosic.data.synthetic import generate_synthetic
from mosic.model.export import ExportError, export_backbone, load_backbone_weights, load_exported
from mosic.train import loop
from mosic.train.pretrain import patch_labels, run_pretrain


def test_patch_labels_take_each_patch_centre_and_mark_ignored():
    mask = torch.zeros(1, 8, 8, dtype=torch.uint8)
    mask[0, :4, 4:] = 3  # top-right quadrant
    mask[0, 6, 2] = 255  # the centre pixel of patch (row 3, col 1) at grid 4 (patch 2 px: centre (5, 3)) stays 0
    mask[0, 5, 3] = 255
    labels = patch_labels(mask, 4, 255)
    assert labels[0, 0].tolist() == [0, 0, 3, 3] and labels[0, 1].tolist() == [0, 0, 3, 3]
    assert labels[0, 2, 1] == -100 and labels[0, 3].tolist() == [0, 0, 0, 0]


@pytest.fixture(scope="module")
def faces_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces")
    syn = SyntheticConfig(seed=3, num_videos=2, num_frames=8, height=48, width=48, num_classes=5, min_objects=2,
                          max_objects=3, max_speed=4.0, camera_speed=0.5, scale_change=1.2, appearance_drift=0.0,
                          noise=1.0, track_grid=4, write_mp4=False, images_train=24, images_val=8, faces=2,
                          turn_frames=4, turn_travel=8.0, texture_seed=0)  # fmt: skip
    generate_synthetic(syn, out)
    return out


def test_pretrain_learns_the_labelled_face_and_exports_a_start(tmp_path, faces_data):
    cfg = PretrainConfig(face=0, steps=40, batch_size=8, lr=0.003, seed=0)
    out = tmp_path / "pretrain" / "backbone.safetensors"
    record = run_pretrain(cfg, faces_data / "voc", out, model="test_vit", input_size=48, faces=2,
                          provenance={"git_sha": "test"})  # fmt: skip
    assert record["images"] == 24 and set(record["val_patch_accuracy"]) == {"face0", "face1"}
    assert record["final_loss"] < 1.0  # it learnt the labels (ln 6 = 1.8 at chance)
    assert record["val_patch_accuracy"]["face0"]["all"] > 0.5
    model = load_exported(out)  # loads strictly into plain timm
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert side["meta"]["pretrain"]["face"] == 0 and side["meta"]["git_sha"] == "test"
    assert json.loads((out.parent / "pretrain.json").read_text())["val_patch_accuracy"] == record["val_patch_accuracy"]

    # The start of every run: the student's backbone holds exactly these weights.
    net = loop.build_net(tiny_cfg(input_size=48, init=str(out)), RUN, loop.PRESETS["default"])
    for k, v in model.state_dict().items():
        assert torch.equal(net.backbone.state_dict()[k], v), k


def test_labelled_reference_continues_from_the_start_on_every_face(tmp_path, faces_data):
    """run_pretrain(split="train", init=start): the motion study's labelled reference. It starts from the given
    backbone (one step at a negligible rate leaves it where it was; a fresh initialisation would be far away) and its
    labels cover the other face too."""
    voc = faces_data / "voc"
    start = tmp_path / "start" / "backbone.safetensors"
    cfg = PretrainConfig(face=0, steps=40, batch_size=8, lr=0.003, seed=0)
    begun = run_pretrain(cfg, voc, start, model="test_vit", input_size=48, faces=2, provenance={})
    assert begun["split"] == "train_face0" and begun["init"] is None

    still = tmp_path / "still" / "backbone.safetensors"
    record = run_pretrain(dataclasses.replace(cfg, steps=1, lr=1e-9), voc, still, model="test_vit", input_size=48,
                          faces=2, provenance={}, split="train", init=start)  # fmt: skip
    assert record["split"] == "train" and record["init"] == str(start) and record["images"] == 24
    a, b = load_exported(start).state_dict(), load_exported(still).state_dict()
    for k, v in a.items():
        assert torch.allclose(b[k], v, atol=1e-6), k

    # its labelled images show both faces (objects.json records the face of every object of split train)
    records = json.loads((voc / "objects.json").read_text())["images"]
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert {o["face"] for i in ids for o in records[i]["objects"]} == {0, 1}
    with pytest.raises(ExportError, match="no such backbone file"):
        run_pretrain(cfg, voc, tmp_path / "x.safetensors", model="test_vit", input_size=48, faces=2, provenance={},
                     init=tmp_path / "missing.safetensors")  # fmt: skip


def test_init_path_resamples_the_position_embedding_and_rejects_other_models(tmp_path):
    torch.manual_seed(0)
    small = timm.create_model("test_vit", pretrained=False, num_classes=0, img_size=32)
    path = export_backbone(small, tmp_path / "b.safetensors", model_name="test_vit", input_size=32, meta={})
    net = loop.build_net(tiny_cfg(input_size=64, init=str(path)), RUN, loop.PRESETS["default"])
    assert net.backbone.pos_embed.shape[1] == small.pos_embed.shape[1] * 4 - 3 * small.num_prefix_tokens
    assert torch.equal(net.backbone.blocks[0].attn.qkv.weight, small.blocks[0].attn.qkv.weight)

    other = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, depth=1)
    safetensors.torch.save_file(other.state_dict(), str(tmp_path / "plain.safetensors"))
    with pytest.raises(ExportError, match="plain.safetensors does not fit 'test_vit'"):
        load_backbone_weights(timm.create_model("test_vit", num_classes=0, img_size=32),
                              tmp_path / "plain.safetensors", model_name="test_vit")  # fmt: skip
    with pytest.raises(ExportError, match="no such backbone file"):
        loop.build_net(tiny_cfg(init=str(tmp_path / "missing.safetensors")), RUN, loop.PRESETS["default"])


def raw_config(**train):
    import yaml

    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["train"].update(train)
    return data


def test_init_is_checked_at_parse_time_and_the_old_key_says_what_replaced_it():
    assert parse_config(raw_config()).train.init == "pretrain"
    with pytest.raises(ConfigError, match="'train.init' is 'imagenet'"):
        parse_config(raw_config(init="imagenet"))
    data = raw_config()
    data["train"].pop("init")
    data["train"]["pretrained"] = True
    with pytest.raises(ConfigError, match="'train.pretrained' was replaced by 'train.init': use init: timm"):
        parse_config(data)
    data = raw_config()
    data["dataset"] = {**data["dataset"], "kind": "ytvos", "root": "/data/ytvos"}
    with pytest.raises(ConfigError, match="'train.init' is 'pretrain' with dataset.kind 'ytvos'"):
        parse_config(data)


def test_the_pretrain_start_is_every_run_s_init_and_transposed_is_only_the_gather():
    cfg = parse_config(raw_config())
    train = run_train_config(cfg, pretrain_backbone="/p/backbone.safetensors")  # every run's train section
    runs = {v: RunSpec(variant=v, seed=1) for v in ("mosic", "static", "shuffled", "transposed")}
    records = {v: run_record(train, run) for v, run in runs.items()}
    assert {r["init"] for r in records.values()} == {"/p/backbone.safetensors"}
    assert runs["transposed"].transposed_gather and runs["transposed"].track_source == "cached"
    assert not any(r.transposed_gather for v, r in runs.items() if v != "transposed")
    # transposed differs from the tracked run in that one field only
    assert {k for k, v in records["transposed"].items() if records["mosic"][k] != v} == {"transposed_gather"}
    preset = loop.PRESETS["default"]
    assert loop.build_net(tiny_cfg(), RunSpec(variant="transposed", seed=0), preset).order == "transposed"
    assert loop.build_net(tiny_cfg(), RUN, preset).order == "xy"


def test_transposed_control_trains_on_the_transposed_gather(tmp_path, shards):
    """The control's features at (x, y) come from patch (row x, col y): different targets, so different losses."""
    base = loop.train(tiny_cfg(epochs=1), RUN, shards, tmp_path / "xy", provenance={}, max_steps=2)
    control = loop.train(tiny_cfg(epochs=1), RunSpec(variant="transposed", seed=0), shards, tmp_path / "t",
                         provenance={}, max_steps=2)  # fmt: skip
    assert base["steps"] == control["steps"] == 2
    from train_helpers import losses

    assert losses(tmp_path / "xy") != losses(tmp_path / "t")
