"""Projection head, prototypes and the EMA teacher."""

import pytest
import torch
from torch import nn

from mosic.model.ema import ema_update_, make_teacher
from mosic.model.head import ProjectionHead, Prototypes


def test_projection_head_is_the_original_mlp():
    head = ProjectionHead(384, 1024, 512, 256)
    layers = list(head.mlp)
    assert [type(m) for m in layers] == [nn.Linear, nn.GELU] * 3 + [nn.Linear]
    widths = [(m.in_features, m.out_features) for m in layers[::2]]
    assert widths == [(384, 1024), (1024, 1024), (1024, 512), (512, 256)]
    assert sum(p.numel() for p in head.parameters()) == 2_099_968  # spec §3.3
    out = head(torch.randn(2, 3, 5, 384))
    assert out.shape == (2, 3, 5, 256)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, 3, 5))


def test_prototypes_init_normalize_and_scores():
    torch.manual_seed(0)
    protos = Prototypes(100, 16)
    assert protos.weight.shape == (100, 16) and isinstance(protos.weight, nn.Parameter)
    torch.testing.assert_close(protos.weight.norm(dim=-1), torch.ones(100))
    assert protos.weight.std() > 0.1  # random directions, not a degenerate init
    weight = protos.weight
    with torch.no_grad():
        weight.mul_(torch.rand(100, 1) * 3 + 0.1)  # what an optimizer step does to the norms
    protos.normalize_()
    assert protos.weight is weight and protos.weight.requires_grad  # in place, still a trainable parameter
    torch.testing.assert_close(protos.weight.norm(dim=-1), torch.ones(100))
    z = nn.functional.normalize(torch.randn(4, 7, 16), dim=-1)
    scores = protos(z)
    assert scores.shape == (4, 7, 100)
    torch.testing.assert_close(scores, torch.einsum("bnd,kd->bnk", z, protos.weight))
    assert scores.abs().max() <= 1 + 1e-5  # cosine similarities
    scores.sum().backward()
    assert protos.weight.grad is not None


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.norm = nn.BatchNorm1d(3)  # carries floating and integer buffers
        self.protos = Prototypes(5, 3)


def student_and_teacher() -> tuple[Tiny, nn.Module]:
    torch.manual_seed(0)
    student = Tiny()
    teacher = make_teacher(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))  # the student has moved on
        student.norm.running_mean.add_(1.0)
        student.norm.num_batches_tracked.add_(3)
    return student, teacher


def test_make_teacher_is_a_frozen_independent_copy():
    torch.manual_seed(0)
    student = Tiny()
    teacher = make_teacher(student)
    assert not teacher.training and student.training
    assert all(not p.requires_grad for p in teacher.parameters())
    assert all(p.requires_grad for p in student.parameters())
    for (name, t), s in zip(teacher.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(t, s) and t.data_ptr() != s.data_ptr(), name


def test_ema_momentum_zero_copies_and_one_keeps():
    student, teacher = student_and_teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema_update_(teacher, student, 1.0)
    for name, p in teacher.named_parameters():
        assert torch.equal(p, before[name])
    ema_update_(teacher, student, 0.0)
    for (name, t), s in zip(teacher.state_dict().items(), student.state_dict().values(), strict=True):
        assert torch.equal(t, s), name


def test_ema_formula_and_buffers():
    student, teacher = student_and_teacher()
    before = {k: v.clone() for k, v in teacher.named_parameters()}
    ema_update_(teacher, student, 0.99)
    for name, p in teacher.named_parameters():
        expected = 0.99 * before[name] + 0.01 * dict(student.named_parameters())[name]
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-7)
        assert not p.requires_grad
    assert torch.equal(teacher.norm.running_mean, student.norm.running_mean)
    assert teacher.norm.num_batches_tracked.item() == 3


def test_ema_leaves_frozen_parameters_alone():
    student, teacher = student_and_teacher()
    student.a.requires_grad_(False)  # frozen in the student: the teacher keeps its own value bit for bit
    frozen = teacher.a.weight.clone()
    for _ in range(3):
        ema_update_(teacher, student, 0.9)
    assert torch.equal(teacher.a.weight, frozen)
    assert not torch.equal(teacher.protos.weight, student.protos.weight)


def test_ema_rejects_mismatches():
    student, teacher = student_and_teacher()
    with pytest.raises(ValueError, match="momentum"):
        ema_update_(teacher, student, 1.5)
    with pytest.raises(ValueError, match="parameters differ"):
        ema_update_(nn.Linear(4, 3), student, 0.9)
