"""Checkpoints: bit-identical resume (optimizer and all RNGs), atomicity, keep, strict loading, no pickle."""

# ruff: noqa: NPY002 - these tests draw from numpy's global stream on purpose: checkpoints must restore it

import copy
import json
import logging
import pickle
import random
import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

from mosic.train import checkpoint as ckpt_mod
from mosic.train.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint

META = {"mosic_version": "0.1.0", "git_sha": "test", "config": {"lr": 1e-3}, "config_hash": "abc"}


class TinyNet(nn.Module):
    """timm test_vit (with drop path and dropout, so training draws from the torch RNG) + a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = timm.create_model(
            "test_vit", pretrained=False, num_classes=0, img_size=32, drop_path_rate=0.1, proj_drop_rate=0.1
        )
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.backbone.num_features, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build(seed: int) -> tuple[TinyNet, TinyNet, torch.optim.AdamW]:
    torch.manual_seed(seed)
    net = TinyNet()
    teacher = copy.deepcopy(net).requires_grad_(False)
    groups = [
        {"params": list(net.backbone.parameters()), "part": "backbone", "base_lr": 1e-3},
        {"params": list(net.head.parameters()), "part": "head", "base_lr": 1e-2, "weight_decay": 0.0},
    ]
    return net, teacher, torch.optim.AdamW(groups, betas=(0.9, 0.99))


SCHEDULE = np.linspace(1.0, 0.1, 10)


def train_step(step: int, net: TinyNet, teacher: TinyNet, optimizer: torch.optim.Optimizer) -> float:
    """One step whose inputs come from the global torch, numpy and python RNGs, with dropout in the model."""
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * SCHEDULE[step]
    x = torch.randn(2, 3, 32, 32) * np.random.uniform(0.5, 1.5)
    if random.random() < 0.5:
        x = x.flip(-1)
    target = torch.randint(0, 4, (2,))
    net.train()
    with torch.no_grad():
        t_out = teacher(x)
    out = net(x)
    loss = nn.functional.cross_entropy(out, target) + (out - t_out).pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    with torch.no_grad():
        for pt, ps in zip(teacher.parameters(), net.parameters(), strict=True):
            pt.mul_(0.9).add_(ps, alpha=0.1)
    return loss.item()


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_resume_is_bit_identical(tmp_path):
    seed_all(0)
    net, teacher, opt = build(0)
    for step in range(3):
        train_step(step, net, teacher, opt)
    saved = save_checkpoint(
        tmp_path, step=3, epoch=0, modules={"student": net, "teacher": teacher}, optimizer=opt, meta=META
    )
    uninterrupted = [train_step(step, net, teacher, opt) for step in range(3, 6)]

    # a different process state: other weights, other RNG positions, a fresh optimizer
    seed_all(123)
    torch.rand(7), np.random.rand(3), random.random()
    net2, teacher2, opt2 = build(1)
    assert latest_checkpoint(tmp_path) == saved
    record = load_checkpoint(saved, modules={"student": net2, "teacher": teacher2}, optimizer=opt2)
    assert record["step"] == 3
    resumed = [train_step(step, net2, teacher2, opt2) for step in range(int(record["step"]), 6)]

    assert resumed == uninterrupted
    for a, b in zip(list(net.state_dict().values()) + list(teacher.state_dict().values()),
                    list(net2.state_dict().values()) + list(teacher2.state_dict().values()), strict=True):  # fmt: skip
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1["state"][i][name], s2["state"][i][name])


def test_sidecar_contents_and_optimizer_restore(tmp_path):
    seed_all(0)
    net, teacher, opt = build(0)
    train_step(0, net, teacher, opt)
    extra = {"center": torch.arange(5.0), "queue.0": torch.ones(2, 2, dtype=torch.bfloat16)}
    path = save_checkpoint(tmp_path, step=1, epoch=0, modules={"student": net}, optimizer=opt, extra_tensors=extra,
                           meta=META)  # fmt: skip
    assert path.name == "step_00000001.safetensors"
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["step"] == 1 and side["epoch"] == 0 and side["meta"] == META and side["modules"] == ["student"]
    assert len(side["sha256"]) == 64
    groups = side["optimizer"]["param_groups"]
    assert groups[1]["weight_decay"] == 0.0 and groups[0]["part"] == "backbone" and groups[1]["base_lr"] == 1e-2
    expected = {"optim.state.0.exp_avg", "optim.state.0.exp_avg_sq", "optim.state.0.step", "rng.torch",
                "rng.numpy.key", "rng.numpy.state", "rng.python", "extra.center", "student.head.1.weight"}  # fmt: skip
    assert expected <= set(side["tensors"])

    net2, _, opt2 = build(1)
    record = load_checkpoint(path, modules={"student": net2}, optimizer=opt2, restore_rng=False)
    assert record["extra_tensors"].keys() == extra.keys()
    for k, v in extra.items():
        assert torch.equal(record["extra_tensors"][k], v) and record["extra_tensors"][k].dtype == v.dtype
    g = opt2.param_groups[0]
    assert g["betas"] == (0.9, 0.99) and isinstance(g["betas"], tuple) and g["part"] == "backbone"
    assert g["lr"] == opt.param_groups[0]["lr"]


def test_rng_states_restored(tmp_path):
    seed_all(5)
    net = nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters())
    random.gauss(0, 1)  # python keeps a cached gaussian: part of the state
    np.random.standard_normal()  # numpy too
    path = save_checkpoint(tmp_path, step=0, epoch=0, modules={"m": net}, optimizer=opt, meta={})

    def draw():
        return torch.rand(3).tolist(), np.random.standard_normal(3).tolist(), random.gauss(0, 1), random.random()

    expected = draw()
    draw()
    load_checkpoint(path, modules={"m": net}, optimizer=opt, restore_rng=False)
    assert draw() != expected
    load_checkpoint(path, modules={"m": net}, optimizer=opt)
    assert draw() == expected


def test_each_rank_restores_its_own_rng_states(tmp_path, caplog):
    """A multi-process run saves every rank's generators; each rank gets its own back, a new rank keeps its own."""
    net = nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters())
    states = []
    for seed in (11, 12):
        seed_all(seed)
        states.append(ckpt_mod.rng_state())
    path = save_checkpoint(tmp_path, step=0, epoch=0, modules={"m": net}, optimizer=opt, meta={}, rng_states=states)
    assert json.loads(path.with_suffix(".json").read_text())["rng_ranks"] == 2

    def draw():
        return torch.rand(2).tolist(), np.random.standard_normal(2).tolist(), random.random()

    expected = []
    for seed in (11, 12):
        seed_all(seed)
        expected.append(draw())
    for rank in (1, 0):
        seed_all(99)
        load_checkpoint(path, modules={"m": net}, rank=rank)
        assert draw() == expected[rank]
    seed_all(99)
    own = draw()
    seed_all(99)
    with caplog.at_level(logging.WARNING):
        load_checkpoint(path, modules={"m": net}, rank=2)
    assert draw() == own and "no random states for rank 2" in caplog.text


def small(tmp_path: Path, steps, keep: int = 10) -> list[Path]:
    net = nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters())
    return [save_checkpoint(tmp_path, step=s, epoch=0, modules={"m": net}, optimizer=opt, meta={}, keep=keep)
            for s in steps]  # fmt: skip


def test_latest_skips_incomplete_and_corrupt(tmp_path, caplog):
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    p1, p2, p3, p4 = small(tmp_path, [1, 2, 3, 4])
    (tmp_path / ".step_00000005.safetensors.tmp-999").write_bytes(b"partial")  # a save in progress / crashed
    assert latest_checkpoint(tmp_path) == p4

    p4.with_suffix(".json").unlink()  # crash between the tensors and the sidecar
    with caplog.at_level(logging.WARNING, logger="mosic.train.checkpoint"):
        assert latest_checkpoint(tmp_path) == p3
    assert "step_00000004" in caplog.text and "sidecar" in caplog.text

    data = p3.read_bytes()
    p3.write_bytes(data[: len(data) // 2])  # truncated copy
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mosic.train.checkpoint"):
        assert latest_checkpoint(tmp_path) == p2
    assert "sha256" in caplog.text

    p2.with_suffix(".json").write_text("{not json")  # corrupt sidecar
    assert latest_checkpoint(tmp_path) == p1

    net = nn.Linear(3, 2)
    for bad in (p2, p3, p4):
        with pytest.raises(CheckpointError):
            load_checkpoint(bad, modules={"m": net})


def test_keep_deletes_older(tmp_path):
    (tmp_path / "step_00000000.safetensors").write_bytes(b"orphan of a crashed save")
    paths = small(tmp_path, range(1, 6), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_00000004.json",
        "step_00000004.safetensors",
        "step_00000005.json",
        "step_00000005.safetensors",
    ]
    assert latest_checkpoint(tmp_path) == paths[-1]
    with pytest.raises(ValueError, match="keep"):
        small(tmp_path, [6], keep=0)


def test_resave_same_step_overwrites(tmp_path):
    net = nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters())
    save_checkpoint(tmp_path, step=7, epoch=0, modules={"m": net}, optimizer=opt, meta={"n": 1})
    with torch.no_grad():
        net.weight.add_(1)
    p = save_checkpoint(tmp_path, step=7, epoch=1, modules={"m": net}, optimizer=opt, meta={"n": 2})
    fresh = nn.Linear(3, 2)
    assert load_checkpoint(p, modules={"m": fresh})["meta"] == {"n": 2}
    assert torch.equal(fresh.weight, net.weight)


def test_strict_loading_names_keys(tmp_path):
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    opt = torch.optim.AdamW(net.parameters())
    path = save_checkpoint(tmp_path, step=1, epoch=0, modules={"student": net}, optimizer=opt, meta={})
    with pytest.raises(CheckpointError, match=r"unexpected keys \['1.bias', '1.weight'\]"):
        load_checkpoint(path, modules={"student": nn.Sequential(nn.Linear(2, 3))})
    with pytest.raises(CheckpointError, match=r"missing keys \['2.bias', '2.weight'\]"):
        load_checkpoint(path, modules={"student": nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1), nn.Linear(1, 1))})
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_checkpoint(path, modules={"student": nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))})
    with pytest.raises(CheckpointError, match="no module 'teacher'"):
        load_checkpoint(path, modules={"teacher": net})
    with pytest.raises(CheckpointError, match="AdamW"):
        load_checkpoint(path, modules={"student": net}, optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="module name"):
        save_checkpoint(tmp_path, step=2, epoch=0, modules={"rng": net}, optimizer=opt, meta={})


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.out = nn.Linear(4, 5, bias=False)
        self.out.weight = self.embed.weight  # tied: safetensors would refuse the shared storage as is


def test_tied_weights(tmp_path):
    torch.manual_seed(0)
    net = Tied()
    opt = torch.optim.AdamW(net.parameters())
    path = save_checkpoint(tmp_path, step=1, epoch=0, modules={"m": net}, optimizer=opt, meta={})
    torch.manual_seed(1)
    fresh = Tied()
    load_checkpoint(path, modules={"m": fresh}, optimizer=torch.optim.AdamW(fresh.parameters()))
    assert torch.equal(fresh.embed.weight, net.embed.weight)
    assert fresh.out.weight is fresh.embed.weight


def test_no_pickle(tmp_path, monkeypatch):
    source = Path(ckpt_mod.__file__).read_text()
    assert not re.search(r"torch\.(save|load)\b|\bpickle\.|import pickle|weights_only=False", source)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    for obj, name in [(torch, "save"), (torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "dump"),
                      (pickle, "dumps"), (pickle, "Unpickler"), (pickle, "Pickler")]:  # fmt: skip
        monkeypatch.setattr(obj, name, refuse)
    paths = small(tmp_path, [1, 2])
    assert latest_checkpoint(tmp_path) == paths[-1]
    load_checkpoint(paths[-1], modules={"m": nn.Linear(3, 2)})
