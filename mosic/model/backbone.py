"""The timm ViT backbone: building it, choosing which blocks train, and reading its patch tokens.

Conventions (``DESIGN.md``): images are ``[B, 3, H, W]`` normalised floats; patch tokens come back as a grid
``[B, S, S, D]`` laid out ``[row = y, col = x]`` (timm's tokens are row-major), S = input_size / patch size,
D the model width. Prefix tokens (CLS and registers, ``model.num_prefix_tokens``) are dropped.

Student masking (``reference/mosic_spec.md`` §3.7) is done here without patching timm: the kept patch tokens
are gathered right after the positional embedding (prefix tokens kept), only they go through the blocks and
the final norm, and the output is scattered back into a zero grid, so masked patches read as all-zero features.
The original code swapped timm's ``patch_drop`` for a fixed-mask module to the same effect.
"""

from __future__ import annotations

import difflib
import logging
from typing import Literal

import timm
import torch
from timm.models import checkpoint_seq
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

__all__ = [
    "build_backbone",
    "patch_size",
    "grid_size",
    "set_trainable_blocks",
    "patch_tokens",
    "random_keep",
    "keep_mask",
]

logger = logging.getLogger(__name__)

# The original code trains the parameters whose names contain "blocks.11" or "blocks.10" whatever the depth:
# block numbers of a 12-block ViT (spec §3.3).
_ORIGINAL_DEPTH = 12


def _square(value: int | tuple[int, ...], what: str, model: nn.Module) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise ValueError(f"{type(model).__name__} has a non-square {what} {tuple(value)}; mosic needs square grids")
    return int(value[0])


def patch_size(model: nn.Module) -> int:
    """Side of a (square) patch in pixels, from ``model.patch_embed.patch_size``."""
    embed = getattr(model, "patch_embed", None)
    if embed is None or not hasattr(embed, "patch_size"):
        raise TypeError(f"{type(model).__name__} has no patch_embed.patch_size: not a timm ViT")
    return _square(embed.patch_size, "patch size", model)


def grid_size(model: nn.Module) -> int:
    """S, the side of the patch grid at the model's input size (input_size / patch size)."""
    embed = getattr(model, "patch_embed", None)
    if embed is None or not hasattr(embed, "grid_size"):
        raise TypeError(f"{type(model).__name__} has no patch_embed.grid_size: not a timm ViT")
    return _square(embed.grid_size, "patch grid", model)


def build_backbone(name: str, *, pretrained: bool, input_size: int) -> nn.Module:
    """A timm ViT without classifier head at a square input size.

    Calls ``timm.create_model(name, pretrained=pretrained, img_size=input_size, num_classes=0)``, so pretrained
    weights come through timm's usual hub path (and its cache); timm resamples the positional embedding when
    ``input_size`` differs from the size the weights were trained at.

    Args:
        name: timm model name, optionally with a pretrained tag (``vit_small_patch14_dinov2.lvd142m``).
        pretrained: load the pretrained weights (needs network access or a filled hub cache).
        input_size: square input side in pixels; a multiple of the model's patch size.

    Returns:
        The model (train mode, every parameter trainable; see :func:`set_trainable_blocks`).

    Raises:
        ValueError: the name is not a timm model, or ``input_size`` is not a multiple of the patch size.
    """
    if not timm.is_model(name):
        arch = name.split(".", 1)[0]
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
        raise ValueError(f"unknown timm model {name!r}{hint}")
    # Check the patch size on a weightless copy first, so a bad size fails before any weight download.
    try:
        with torch.device("meta"):
            probe = timm.create_model(name, pretrained=False, img_size=input_size, num_classes=0)
        _check_input_size(probe, name, input_size)
    except (RuntimeError, NotImplementedError):  # some model's init does not run on the meta device
        probe = None
    model = timm.create_model(name, pretrained=pretrained, img_size=input_size, num_classes=0)
    if probe is None:
        _check_input_size(model, name, input_size)
    return model


def _check_input_size(model: nn.Module, name: str, input_size: int) -> None:
    p = patch_size(model)
    if input_size % p:
        raise ValueError(
            f"input_size {input_size} is not a multiple of the patch size {p} of {name!r}; "
            f"use e.g. {max(p, input_size // p * p)} or {(input_size // p + 1) * p}"
        )


def set_trainable_blocks(model: nn.Module, n: int, *, select: Literal["index", "name"] = "index") -> list[str]:
    """Freeze the backbone except its last ``n`` transformer blocks (and, by index, the final norm).

    ``select="index"`` (default preset) trains ``model.blocks[-n:]`` and ``model.norm``: the last n blocks of
    any depth, and the norm the patch tokens pass through last.

    ``select="name"`` (faithful preset) reproduces the original code (spec §3.3): it trains every parameter
    whose *name contains* one of ``"blocks.11"``, ``"blocks.10"``, … — the numbers of the last n blocks *of a
    12-block ViT*, whatever the model's depth — and leaves the final norm frozen. On 12-block models
    (ViT-S/B) this is the last n blocks. Elsewhere it is not:

    - 24-block ViT-L, n = 2: blocks 10 and 11, the *middle* of the network; blocks 12–23 stay frozen (the
      gradient still flows back through them);
    - substring matching: ``"blocks.1"`` also matches ``blocks.10`` … ``blocks.19`` (and ``"blocks.2"``
      matches ``blocks.20`` …), so on a 24-block model n = 11 trains blocks 1–23;
    - a 6-block model (timm ``test_vit``) with 0 < n < 7 trains no backbone parameter at all.

    A warning is logged whenever the name selection differs from the index selection.

    Args:
        model: a timm ViT with ``blocks`` (and ``norm``).
        n: number of blocks to train; 0 = every parameter of the model trains.
        select: ``"index"`` (correct) or ``"name"`` (the original's substring selection).

    Returns:
        Names of the parameters left trainable (``requires_grad=True``), in ``named_parameters`` order.

    Raises:
        ValueError: n is negative or larger than the depth (index) or than 12 (name), or ``select`` is unknown.
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise TypeError(f"{type(model).__name__} has no .blocks: not a timm ViT")
    depth = len(blocks)
    if select not in ("index", "name"):
        raise ValueError(f"select must be 'index' or 'name', got {select!r}")
    if n == 0:
        model.requires_grad_(True)
        return [name for name, _ in model.named_parameters()]
    if n < 0:
        raise ValueError(f"trainable_blocks must be >= 0 (0 = all), got {n}")

    model.requires_grad_(False)
    if select == "index":
        if n > depth:
            raise ValueError(f"trainable_blocks = {n} but the model has {depth} blocks (0 = all)")
        for module in [*blocks[depth - n :], getattr(model, "norm", nn.Identity())]:
            module.requires_grad_(True)
    else:
        if n > _ORIGINAL_DEPTH:
            raise ValueError(f"name selection covers at most the {_ORIGINAL_DEPTH} blocks of a 12-block ViT, got {n}")
        patterns = [f"blocks.{i}" for i in range(_ORIGINAL_DEPTH - 1, _ORIGINAL_DEPTH - 1 - n, -1)]
        for name, p in model.named_parameters():
            if any(pat in name for pat in patterns):
                p.requires_grad_(True)
        by_name = sorted({int(name.split(".")[1]) for name, p in model.named_parameters() if p.requires_grad})
        by_index = list(range(depth - n, depth))
        if by_name != by_index:
            logger.warning(
                "name-based block selection (original code, patterns %s) trains blocks %s of this %d-block model; "
                "the last %d blocks by index would be %s (and the final norm)",
                patterns, by_name, depth, n, by_index,
            )  # fmt: skip
    return [name for name, p in model.named_parameters() if p.requires_grad]


def random_keep(batch: int, num_patches: int, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Random sets of kept patches for student masking, one per batch row (spec §3.7).

    As the original: draw a random permutation of the L patches (argsort of Gaussian noise), drop its first
    ⌊L·ratio⌋ entries and keep the rest, here sorted (sorting changes nothing for the model: every kept token
    carries its own positional embedding, and the output is scattered back to its place).

    Args:
        batch: rows B (e.g. clips; repeat a row over the frames of a clip to share its mask).
        num_patches: L = S², patches per image.
        ratio: fraction of patches dropped, in [0, 1).
        generator: random stream on the CPU (the result is a CPU tensor); None = torch's global one.

    Returns:
        long [B, L − ⌊L·ratio⌋] kept patch indices (row-major: index = row · S + col), ascending per row.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    drop = int(num_patches * ratio)
    if drop >= num_patches:
        raise ValueError(f"mask ratio {ratio} drops all {num_patches} patches")
    order = torch.randn(batch, num_patches, generator=generator).argsort(dim=1)
    return order[:, drop:].sort(dim=1).values


def keep_mask(keep: Tensor, num_patches: int) -> Tensor:
    """Which patches a student saw: bool [B, L], True at the indices in ``keep`` (long [B, L'])."""
    mask = torch.zeros(keep.shape[0], num_patches, dtype=torch.bool, device=keep.device)
    return mask.scatter_(1, keep, True)


def patch_tokens(model: nn.Module, images: Tensor, *, keep: Tensor | None = None) -> Tensor:
    """Last-layer, normalised patch tokens of a timm ViT as a grid.

    Without ``keep`` this is ``model.forward_features(images)`` with the prefix tokens removed. With ``keep``
    (student masking) only the kept patches enter the transformer: patch embedding, positional embedding
    (prefix tokens prepended), gather of the kept patch tokens, ``norm_pre``, the blocks and the final
    ``norm``; the outputs are scattered back into a zero grid. ``keep`` covering every patch gives exactly
    ``forward_features``. timm's ``patch_drop`` is not applied on this path (the fixed mask replaces it).

    Args:
        model: a timm ViT (``VisionTransformer`` for masking; any model with ``forward_features`` returning
            ``[B, prefix + S², D]`` and ``num_prefix_tokens`` otherwise).
        images: float [B, 3, H, W] normalised images, H and W multiples of the patch size.
        keep: long [B, L'] (or [L'], shared by every row) kept patch indices, row-major (index = row · S + col),
            unique per row; None = no masking.

    Returns:
        float [B, H / p, W / p, D] patch tokens laid out [row = y, col = x]; zeros at masked patches.
    """
    b, _, h, w = images.shape
    p = patch_size(model)
    rows, cols = h // p, w // p
    prefix = getattr(model, "num_prefix_tokens", 0)
    if keep is None:
        x = model.forward_features(images)
        if x.ndim != 3 or x.shape[1] != prefix + rows * cols:
            raise ValueError(
                f"forward_features gave {tuple(x.shape)}; expected [B, {prefix} + {rows * cols}, D] tokens "
                "(is patch dropout on?)"
            )
        return x[:, prefix:].reshape(b, rows, cols, x.shape[-1])

    if not isinstance(model, VisionTransformer):
        raise NotImplementedError(f"student masking supports timm VisionTransformer, not {type(model).__name__}")
    if keep.ndim == 1:
        keep = keep.expand(b, -1)
    if keep.shape[0] != b:
        raise ValueError(f"keep has {keep.shape[0]} rows for {b} images")
    x = model._pos_embed(model.patch_embed(images))  # [B, prefix + L, D]
    d = x.shape[-1]
    index = keep.to(x.device)[..., None].expand(-1, -1, d)  # [B, L', D]
    x = torch.cat([x[:, :prefix], x[:, prefix:].gather(1, index)], dim=1)  # [B, prefix + L', D]
    x = model.norm_pre(x)
    if model.grad_checkpointing and not torch.jit.is_scripting():
        x = checkpoint_seq(model.blocks, x)
    else:
        x = model.blocks(x)
    x = model.norm(x)
    out = x.new_zeros(b, rows * cols, d).scatter(1, index, x[:, prefix:])
    return out.view(b, rows, cols, d)
