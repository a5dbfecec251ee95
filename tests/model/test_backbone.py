"""Backbone: building, block freezing (by index and the original's by-name selection), patch tokens, masking."""

import logging

import pytest
import timm
import torch

from mosic.model.backbone import (
    build_backbone,
    grid_size,
    keep_mask,
    patch_size,
    patch_tokens,
    random_keep,
    set_trainable_blocks,
)


@pytest.fixture(scope="module")
def vit():
    """timm test_vit (patch 16, width 64, 6 blocks, CLS only) at 64 px: a 4 x 4 grid."""
    torch.manual_seed(0)
    return build_backbone("test_vit", pretrained=False, input_size=64).eval()


@pytest.fixture(scope="module")
def reg4():
    """DINOv2-S with 4 registers (5 prefix tokens, LayerScale), random weights, 56 px: a 4 x 4 grid.

    LayerScale starts at 1e-5, which makes random blocks near-identities; set to 1 so the blocks mix tokens.
    """
    torch.manual_seed(0)
    model = build_backbone("vit_small_patch14_reg4_dinov2", pretrained=False, input_size=56).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".gamma"):
                p.fill_(1.0)
    return model


def deep_vit(depth: int):
    return timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, depth=depth, embed_dim=32, num_heads=2, img_size=32, num_classes=0
    )


def trained_blocks(model) -> list[int]:
    return sorted({int(n.split(".")[1]) for n, p in model.named_parameters() if p.requires_grad and "blocks." in n})


def test_build_backbone_sizes(vit, reg4):
    assert (patch_size(vit), grid_size(vit), vit.num_prefix_tokens, vit.num_features) == (16, 4, 1, 64)
    assert (patch_size(reg4), grid_size(reg4), reg4.num_prefix_tokens) == (14, 4, 5)
    assert not any(isinstance(m, torch.nn.Linear) and m.out_features == 1000 for m in vit.modules())  # no head


def test_build_backbone_rejects_unknown_name_and_bad_size():
    with pytest.raises(ValueError, match="unknown timm model 'test_vt'.*test_vit"):
        build_backbone("test_vt", pretrained=False, input_size=64)
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        build_backbone("vit_small_patch14_dinov2.lvd142m", pretrained=False, input_size=64)


def test_patch_tokens_layout_matches_timm(vit, reg4):
    """Our [B, S, S, D] grid is forward_features minus prefix tokens, laid out as timm's own NCHW maps."""
    for model, size in ((vit, 64), (reg4, 56)):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            tokens = patch_tokens(model, x)
            flat = model.forward_features(x)[:, model.num_prefix_tokens :]
            maps = model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[-1]  # [B, D, S, S]
        assert tokens.shape == (2, 4, 4, model.num_features)
        assert torch.equal(tokens.flatten(1, 2), flat)
        assert torch.equal(tokens, maps.permute(0, 2, 3, 1))  # [row = y, col = x]


@pytest.mark.parametrize("name", ["vit", "reg4"])
def test_keep_all_equals_forward_features_exactly(name, request):
    model = request.getfixturevalue(name)
    size = 64 if name == "vit" else 56
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        plain = patch_tokens(model, x)
        kept = patch_tokens(model, x, keep=torch.arange(16).expand(3, -1))
        shared = patch_tokens(model, x, keep=torch.arange(16))  # one row shared by the batch
    assert torch.equal(plain, kept) and torch.equal(plain, shared)


def test_masked_tokens_equal_attention_masked_forward(reg4):
    """Kept patches see only prefix + kept tokens: same as timm's forward with an attention mask; others are 0."""
    b, s, prefix = 2, 4, reg4.num_prefix_tokens
    keep = random_keep(b, s * s, 0.5, torch.Generator().manual_seed(1))  # [B, 8]
    x = torch.randn(b, 3, 56, 56)
    seen = keep_mask(keep, s * s)  # [B, L]
    keys = torch.cat([torch.ones(b, prefix, dtype=torch.bool), seen], dim=1)  # [B, prefix + L]
    attn_mask = keys[:, None, None, :].expand(-1, 1, prefix + s * s, -1)
    with torch.no_grad():
        masked = patch_tokens(reg4, x, keep=keep).flatten(1, 2)  # [B, L, D]
        ref = reg4.forward_features(x, attn_mask=attn_mask)[:, prefix:]
    assert (masked[~seen] == 0).all()
    torch.testing.assert_close(masked[seen], ref[seen], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(masked[seen], patch_tokens(reg4, x).flatten(1, 2)[seen], atol=1e-3)  # masking matters


def test_masked_forward_backpropagates(vit):
    set_trainable_blocks(vit, 2)
    keep = random_keep(2, 16, 0.25, torch.Generator().manual_seed(0))
    patch_tokens(vit, torch.randn(2, 3, 64, 64), keep=keep).square().sum().backward()
    grads = {n: p.grad for n, p in vit.named_parameters() if p.requires_grad}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    vit.zero_grad(set_to_none=True)
    set_trainable_blocks(vit, 0)


def test_random_keep():
    g = torch.Generator().manual_seed(3)
    keep = random_keep(5, 256, 0.3, g)
    assert keep.shape == (5, 256 - int(256 * 0.3)) and keep.dtype == torch.long
    assert (keep.diff(dim=1) > 0).all() and keep.min() >= 0 and keep.max() < 256  # sorted, unique
    assert not torch.equal(keep[0], keep[1])
    assert torch.equal(keep, random_keep(5, 256, 0.3, torch.Generator().manual_seed(3)))
    assert torch.equal(random_keep(2, 16, 0.0), torch.arange(16).expand(2, -1))
    assert keep_mask(keep, 256).sum(1).tolist() == [keep.shape[1]] * 5
    with pytest.raises(ValueError, match="mask ratio"):
        random_keep(1, 16, 1.0)


def test_trainable_blocks_by_index(vit):
    names = set_trainable_blocks(vit, 2)
    assert names == [n for n, p in vit.named_parameters() if p.requires_grad]
    assert trained_blocks(vit) == [4, 5] and {"norm.weight", "norm.bias"} <= set(names)
    assert not any(n.startswith(("patch_embed", "cls_token", "pos_embed", "blocks.3.")) for n in names)
    assert set_trainable_blocks(vit, 0) == [n for n, _ in vit.named_parameters()]
    with pytest.raises(ValueError, match="6 blocks"):
        set_trainable_blocks(vit, 7)


def test_name_selection_on_12_blocks_is_last_blocks_without_norm():
    model = deep_vit(12)
    by_name = set(set_trainable_blocks(model, 2, select="name"))
    assert trained_blocks(model) == [10, 11] and "norm.weight" not in by_name  # the original keeps norm frozen
    by_index = set(set_trainable_blocks(model, 2, select="index"))
    assert by_index - by_name == {"norm.weight", "norm.bias"}
    set_trainable_blocks(model, 11, select="name")  # "blocks.1" also matches 10 and 11: no harm at depth 12
    assert trained_blocks(model) == list(range(1, 12))


def test_name_selection_on_24_blocks_reproduces_the_original_pitfalls(caplog):
    model = deep_vit(24)
    with caplog.at_level(logging.WARNING, logger="mosic.model.backbone"):
        set_trainable_blocks(model, 2, select="name")
    assert trained_blocks(model) == [10, 11]  # ViT-L: the middle blocks, as in the original
    assert "trains blocks [10, 11] of this 24-block model" in caplog.text
    set_trainable_blocks(model, 2, select="index")
    assert trained_blocks(model) == [22, 23]
    # n = 11 asks for blocks.1 … blocks.11; substring matching turns "blocks.1" into 1, 10-19 and "blocks.2"
    # into 2, 20-23: everything but block 0 trains.
    set_trainable_blocks(model, 11, select="name")
    assert trained_blocks(model) == list(range(1, 24))
    set_trainable_blocks(model, 11, select="index")
    assert trained_blocks(model) == list(range(13, 24))
