"""The training update on every device there is: finite bf16 steps on CUDA, a non-finite step that changes nothing
(decided on the device), the loop on CUDA resuming exactly, the loader into CUDA memory, features + k-NN on CUDA.

Tests marked ``gpu`` skip themselves without CUDA (tests/conftest.py); ``benchmarks/gpu.sh`` runs them on a GPU.
"""

import dataclasses

import pytest
import torch
from train_helpers import PROV, RUN, losses, tiny_cfg

from mosic.store import TrackStore
from mosic.train import loop
from mosic.train.data import ClipBatch, make_loader
from mosic.train.step import STATS, mosic_step, step_seed, teacher_frame_indices, train_step

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def random_batch(cfg, device: str, seed: int = 0, frames: int = 4) -> ClipBatch:
    g = torch.Generator().manual_seed(seed)
    b, s, n = cfg.batch_size, cfg.input_size, cfg.num_points
    video = torch.randn(b, frames, 3, s, s, generator=g)
    visibility = torch.rand(b, frames, n, generator=g) < 0.9
    visibility[:, 0] = True
    batch = ClipBatch(video=video, student=video[:, 0].clone(), student_all=None,
                      tracks=torch.rand(b, frames, n, 2, generator=g) * (s - 1), visibility=visibility,
                      clip_ids=torch.arange(b))  # fmt: skip
    return batch.to(device)


def state(*modules) -> list[torch.Tensor]:
    return [t.detach().clone() for m in modules for t in m.state_dict().values()]


def optimizer_state(optimizer) -> list[torch.Tensor]:
    return [v.detach().clone() for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]


@pytest.mark.parametrize("device", DEVICES)
def test_train_step_updates_and_a_non_finite_step_changes_nothing(device):
    cfg = tiny_cfg(mask_ratio=0.25, teacher_frames=3)
    preset = loop.PRESETS[cfg.preset]
    net, teacher = loop.build_models(cfg, RUN, preset, torch.device(device))
    optimizer = loop.build_optimizer(net, cfg)
    before = state(net, teacher)
    for step in range(3):
        seed = step_seed(0, step)
        batch = random_batch(cfg, device, step).select_frames(teacher_frame_indices(4, cfg.teacher_frames, seed))
        assert batch.video.shape[1] == 3
        stats = train_step(net, teacher, optimizer, batch, cfg, preset, seed)
        assert stats.device.type == device and stats.shape == (len(STATS),)
        values = dict(zip(STATS, stats.tolist(), strict=True))
        assert values["finite"] == 1.0 and values["loss"] > 0 and values["grad_norm"] > 0
        assert 0.0 <= values["cluster_entropy"] <= 1.0 and 0.8 < values["visible_fraction"] <= 1.0
    after = state(net, teacher)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))

    # A batch whose pixels are NaN: the step reports it and leaves weights, teacher and optimizer as they were
    # (but for the prototypes' re-normalisation every step starts with, done here first).
    with torch.no_grad():
        net.prototypes.normalize_()
        teacher.prototypes.normalize_()
    after = state(net, teacher)
    bad = random_batch(cfg, device, 9, frames=3)
    bad = ClipBatch(video=bad.video * float("nan"), student=bad.student * float("nan"), student_all=None,
                    tracks=bad.tracks, visibility=bad.visibility, clip_ids=bad.clip_ids)  # fmt: skip
    moments = optimizer_state(optimizer)
    stats = train_step(net, teacher, optimizer, bad, cfg, preset, step_seed(0, 3))
    assert stats[-1].item() == 0.0
    for a, b in zip(after, state(net, teacher), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)  # normalising a unit vector again: last-bit changes
    assert sum(not torch.equal(a, b) for a, b in zip(after, state(net, teacher), strict=True)) <= 2
    assert all(torch.equal(a, b) for a, b in zip(moments, optimizer_state(optimizer), strict=True))


def test_teacher_frame_indices():
    """Frame 0 plus teacher_frames - 1 sorted others, from the seed alone; every frame when 0 or >= T."""
    for t, k in ((12, 4), (4, 2), (4, 3), (12, 1), (12, 11)):
        for seed in (0, 1, step_seed(0, 5)):
            frames = teacher_frame_indices(t, k, seed)
            assert frames.dtype == torch.long and frames.device.type == "cpu" and len(frames) == k
            assert frames[0] == 0 and bool((frames[1:] > frames[:-1]).all()) and int(frames[-1]) < t
            assert torch.equal(frames, teacher_frame_indices(t, k, seed))
    assert len({tuple(teacher_frame_indices(12, 4, seed).tolist()) for seed in range(20)}) > 5
    for k in (0, 12, 13):
        assert torch.equal(teacher_frame_indices(12, k, 3), torch.arange(12))


@pytest.mark.parametrize(
    "overrides",
    [
        {"teacher_frames": 2},
        {"teacher_frames": 3, "symmetric": True},
        {"teacher_frames": 2, "symmetric": True, "photometric_aug": False},
        {"teacher_frames": 0, "symmetric": True},
    ],
)
def test_step_on_views_of_its_frames_equals_the_step_on_all_views_cut_to_them(shards, overrides):
    """The loop's path (the loader's items hold only the step's frames, views of those) updates the weights, the
    teacher and AdamW's moments bit for bit as items of every frame with views of the step's frames, and as views
    of every frame then the same frames selected (what the step did before), step by step."""
    cfg = tiny_cfg(**{"photometric_aug": True, "mask_ratio": 0.25, **overrides})
    preset = loop.PRESETS[cfg.preset]
    store = TrackStore(shards)
    cut = loop.build_dataset(store, cfg, RUN, preset)  # what the loop builds
    whole = loop.build_dataset(store, dataclasses.replace(cfg, teacher_frames=0), RUN, preset)  # every frame
    runs = {}
    for path in ("all frames, then selected", "views of the selected frames", "items of the selected frames"):
        dataset = cut if path.startswith("items") else whole
        loader, sampler = make_loader(dataset, batch_size_per_rank=4, workers=0, seed=0, rank=0, world_size=1)
        sampler.set_epoch(0)
        net, teacher = loop.build_models(cfg, RUN, preset, torch.device("cpu"))
        optimizer = loop.build_optimizer(net, cfg)
        stats = []
        for step, raw in enumerate(loader):
            seed = step_seed(RUN.seed, step)
            frames = teacher_frame_indices(dataset.num_frames, cfg.teacher_frames, seed)
            assert torch.equal(raw.frame_indices, frames if dataset is cut else torch.arange(dataset.num_frames))
            if path == "all frames, then selected":
                views = dataset.transform(raw).select_frames(frames)
            else:
                views = dataset.transform(raw, frames)
            assert views.video.shape[1] == (cfg.teacher_frames or dataset.num_frames)
            stats.append(train_step(net, teacher, optimizer, views, cfg, preset, seed))
        runs[path] = (state(net, teacher), optimizer_state(optimizer), torch.stack(stats))
    (a_state, a_moments, a_stats), *others = runs.values()
    assert len(a_stats) == 3 and bool((a_stats[:, -1] == 1).all())
    for b_state, b_moments, b_stats in others:
        assert all(torch.equal(a, b) for a, b in zip(a_state, b_state, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(a_moments, b_moments, strict=True))
        assert torch.equal(a_stats, b_stats)


def test_step_refuses_views_of_more_frames_than_the_teacher_encodes():
    cfg = tiny_cfg(teacher_frames=3)
    preset = loop.PRESETS[cfg.preset]
    net, teacher = loop.build_models(cfg, RUN, preset, torch.device("cpu"))
    with pytest.raises(ValueError, match="the batch has 4 frames but the teacher encodes 3"):
        mosic_step(net, teacher, random_batch(cfg, "cpu", 0, frames=4), cfg, preset, step_seed(0, 0))


@pytest.mark.gpu
def test_training_loop_on_cuda_logs_every_step_and_resumes(tmp_path, shards):
    """On CUDA the loop reads statistics back in groups: one row per step all the same, and an exact-enough resume."""
    cfg = tiny_cfg(photometric_aug=True, mask_ratio=0.25, teacher_frames=2)
    result = loop.train(cfg, RUN, shards, tmp_path / "full", provenance=PROV)
    full = losses(tmp_path / "full")
    assert len(full) == result["steps"] and all(v == v for v in full)
    loop.train(cfg, RUN, shards, tmp_path / "split", provenance=PROV, max_steps=3)
    (tmp_path / "split" / "metrics.csv").unlink()
    loop.train(cfg, RUN, shards, tmp_path / "split", provenance=PROV)
    resumed = losses(tmp_path / "split")
    # bf16 kernels may order sums differently between runs: equal up to rounding, not bit for bit.
    torch.testing.assert_close(torch.tensor(resumed), torch.tensor(full), rtol=2e-2, atol=1e-3)


@pytest.mark.gpu
def test_loader_into_cuda_memory_and_views_there_match_the_cpu(shards):
    from mosic.store import TrackStore

    cfg = tiny_cfg(photometric_aug=True, symmetric=True)
    preset = loop.PRESETS[cfg.preset]
    dataset = loop.build_dataset(TrackStore(shards), cfg, RUN, preset)
    loader, sampler = make_loader(dataset, batch_size_per_rank=4, workers=2, seed=0, rank=0, world_size=1)
    sampler.set_epoch(0)
    level = 1.0 / (255.0 * min(preset.std))  # one 8-bit level after normalisation
    for raw in loader:
        assert raw.frames.is_pinned()
        on_gpu = dataset.transform(raw.to("cuda", non_blocking=True))
        on_cpu = dataset.transform(raw)
        torch.cuda.synchronize()
        assert on_gpu.video.is_cuda and on_gpu.student_all.is_cuda and on_gpu.clip_ids.device.type == "cpu"
        assert torch.equal(on_gpu.tracks.cpu(), on_cpu.tracks) and torch.equal(
            on_gpu.visibility.cpu(), on_cpu.visibility
        )
        # CUDA has no uint8 antialiased resize: it resizes in float32 and rounds, the CPU in fixed point, so a
        # pixel may land one level away; the photometric ops (factors up to 1.4, hue) can enlarge that a little.
        torch.testing.assert_close(on_gpu.video.cpu(), on_cpu.video, atol=1.01 * level, rtol=0)
        diff = (on_gpu.student_all.cpu() - on_cpu.student_all).abs()
        assert diff.max() <= 12 * level and diff.mean() <= 0.5 * level
        # Views of the step's frames only on CUDA (bit for bit is checked on the CPU; CUDA kernels may pick
        # another algorithm for fewer frames, so here up to the CPU-GPU tolerances).
        frames = teacher_frame_indices(dataset.num_frames, 2, 0)
        cut, whole = dataset.transform(raw.to("cuda"), frames), on_gpu.select_frames(frames)
        assert torch.equal(cut.tracks, whole.tracks) and torch.equal(cut.visibility, whole.visibility)
        torch.testing.assert_close(cut.video, whole.video, atol=1.01 * level, rtol=0)
        assert (cut.student_all - whole.student_all).abs().max() <= 12 * level


@pytest.mark.gpu
def test_features_and_knn_on_cuda_match_the_cpu():
    import timm

    from mosic.evaluate.features import FeatureExtractor
    from mosic.evaluate.hummingbird import knn_topk

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=0, img_size=32)
    images = torch.randint(0, 256, (6, 40, 48, 3), dtype=torch.uint8).numpy()
    cpu = FeatureExtractor(model, input_size=32, device="cpu")(images)
    gpu = FeatureExtractor(model, input_size=32, device="cuda")(images)
    assert gpu.shape == cpu.shape and gpu.device.type == "cpu"
    torch.testing.assert_close(gpu, cpu, rtol=0.05, atol=0.05)  # bf16 autocast on CUDA
    keys = torch.nn.functional.normalize(torch.randn(5000, 64), dim=-1)
    queries = torch.randn(300, 64)
    v_cpu, i_cpu = knn_topk(queries, keys, k=10)
    v_gpu, i_gpu = knn_topk(queries.cuda(), keys.cuda(), k=10, memory_chunk=1024)
    torch.testing.assert_close(v_gpu.cpu(), v_cpu, rtol=1e-4, atol=1e-4)
    assert (i_gpu.cpu() == i_cpu).float().mean() > 0.99
