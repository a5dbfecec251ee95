"""Reading patch features at point-track positions, straight from the patch grid.

Conventions (``DESIGN.md``): tracks are ``(x, y)`` in pixels of the square model input (side ``input_size``),
pixel centres at integer coordinates, origin top-left; features are laid out ``[row = y, col = x]``. With
patch size ``ps = input_size / S``, pixel ``u`` lies in patch ``⌊u / ps⌋``, whose centre is at pixel
``(k + 0.5)·ps − 0.5``.

The original code (``reference/mosic_spec.md`` §2.4) upsampled every frame's ``[S, S, D]`` token map to
``input_size²`` with ``F.interpolate`` and indexed it at the rounded, clamped track position — for ViT-S at
8 clips × 12 frames that is a 7.4 GB tensor per copy. Neither mode here builds it:

- ``nearest``: PyTorch's nearest upsampling reads source index ``⌊u·S / input_size⌋`` for output pixel ``u``,
  which is the patch containing ``u``. So ``tokens[b, ⌊ŷ·S/in⌋, ⌊x̂·S/in⌋]`` with ``x̂, ŷ`` the track rounded
  (half to even, ``torch.round``) and clamped to ``[0, in − 1]`` is bit-identical to upsample-then-index,
  gradients included (checked against the float32 formula PyTorch uses for every patch size 1–32 and grid
  1–64, and in ``tests/model/test_gather.py`` against ``F.interpolate`` itself).
- ``bilinear``: ``F.interpolate(bilinear, align_corners=False)`` reads source coordinate ``(u + 0.5)·S/in − 0.5``
  clamped at the borders, which is ``F.grid_sample(align_corners=False, padding_mode="border")`` at the
  normalised coordinate ``(u + 0.5) / in · 2 − 1``. At integer pixels this equals the original; unlike the
  original, sub-pixel track positions are not rounded (the point of bilinear sampling).

``order="transposed"`` reproduces the original's bug: x is used as the row and y as the column.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gather_tracks", "track_patch_index"]


def _check(tokens: Tensor, tracks: Tensor, input_size: int) -> tuple[int, int]:
    if tokens.ndim not in (4, 5) or tokens.shape[-3] != tokens.shape[-2]:
        raise ValueError(f"tokens must be [B, S, S, D] or [B, T, S, S, D], got {tuple(tokens.shape)}")
    if tracks.shape[-1] != 2 or tracks.shape[:-2] != tokens.shape[:-3]:
        raise ValueError(
            f"tracks {tuple(tracks.shape)} do not match tokens {tuple(tokens.shape)}: expected "
            f"{(*tokens.shape[:-3], 'N', 2)}"
        )
    s = tokens.shape[-2]
    if input_size % s:
        raise ValueError(f"input_size {input_size} is not a multiple of the token grid side {s}")
    return s, tokens.shape[-1]


def track_patch_index(
    tracks: Tensor, *, grid: int, input_size: int, order: Literal["xy", "transposed"] = "xy"
) -> tuple[Tensor, Tensor]:
    """Row and column of the patch each (rounded, clamped) track point falls in — the nearest-mode index.

    Args:
        tracks: float [..., 2] (x, y) input pixels.
        grid: S, the patch grid side.
        input_size: side of the square input in pixels (a multiple of S).
        order: ``xy`` (row from y, column from x) or ``transposed`` (the original's bug: row from x).

    Returns:
        long [...] rows and long [...] columns in [0, S).
    """
    xy = tracks.round().clamp(0, input_size - 1).long() * grid // input_size  # [..., 2] patch (col, row)
    if order == "xy":
        return xy[..., 1], xy[..., 0]
    if order == "transposed":
        return xy[..., 0], xy[..., 1]
    raise ValueError(f"order must be 'xy' or 'transposed', got {order!r}")


def gather_tracks(
    tokens: Tensor,
    tracks: Tensor,
    *,
    input_size: int,
    mode: Literal["nearest", "bilinear"] = "nearest",
    order: Literal["xy", "transposed"] = "xy",
) -> Tensor:
    """Patch features at the track positions (see the module docstring for the maths).

    Args:
        tokens: float [B, S, S, D] (or [B, T, S, S, D]) patch tokens laid out [row = y, col = x].
        tracks: float [B, N, 2] (or [B, T, N, 2]) (x, y) positions in input pixels, pixel centres at integer
            coordinates; points outside the frame read the nearest border patch.
        input_size: side of the square model input in pixels (a multiple of S).
        mode: ``nearest`` (the patch the rounded point falls in; the original's published setting) or
            ``bilinear`` (interpolated between patch centres).
        order: ``xy`` (correct) or ``transposed`` (the original code's x-as-row indexing).

    Returns:
        float [B, N, D] (or [B, T, N, D]) features, differentiable with respect to ``tokens``.
    """
    s, d = _check(tokens, tracks, input_size)
    lead = tokens.shape[:-3]
    grid = tokens.reshape(-1, s, s, d)  # [M, S, S, D]
    pts = tracks.reshape(grid.shape[0], -1, 2)  # [M, N, 2]
    if mode == "nearest":
        row, col = track_patch_index(pts, grid=s, input_size=input_size, order=order)  # [M, N]
        frame = torch.arange(grid.shape[0], device=grid.device)[:, None]  # [M, 1]
        out = grid[frame, row, col]  # [M, N, D]; backward: index_put_ with accumulate
    elif mode == "bilinear":
        if order not in ("xy", "transposed"):
            raise ValueError(f"order must be 'xy' or 'transposed', got {order!r}")
        pts = pts.clamp(0, input_size - 1)
        if order == "transposed":
            pts = pts.flip(-1)
        norm = (pts.to(grid.dtype) + 0.5) * (2.0 / input_size) - 1.0  # [M, N, 2] grid_sample (x, y) in [-1, 1]
        out = F.grid_sample(
            grid.permute(0, 3, 1, 2), norm[:, None], mode="bilinear", padding_mode="border", align_corners=False
        )  # [M, D, 1, N]
        out = out[:, :, 0].transpose(1, 2)  # [M, N, D]
    else:
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    return out.reshape(*lead, pts.shape[1], d)
