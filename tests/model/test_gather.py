"""Gathering features along tracks: bit-identical to the original upsample-then-index, and it follows motion."""

import pytest
import torch
import torch.nn.functional as F

from mosic.model.gather import gather_tracks, track_patch_index


def original_gather(tokens, tracks, input_size, *, mode="nearest", order="xy"):
    """The original code's path (spec §2.4): upsample every map to input_size², then index at the rounded,
    clamped track position — [y, x] (correct) or [x, y] (the original's transposition).

    tokens [M, S, S, D], tracks [M, N, 2] (x, y) → [M, N, D].
    """
    maps = F.interpolate(tokens.permute(0, 3, 1, 2), size=(input_size, input_size), mode=mode)  # [M, D, in, in]
    maps = maps.permute(0, 2, 3, 1)  # [M, in, in, D]
    xy = tracks.clamp(0, input_size - 1).round().long()
    m = torch.arange(tokens.shape[0])[:, None]
    if order == "xy":
        return maps[m, xy[..., 1], xy[..., 0]]
    return maps[m, xy[..., 0], xy[..., 1]]


def random_tracks(m: int, n: int, input_size: int, generator: torch.Generator) -> torch.Tensor:
    """[M, N, 2]: uniform points, some outside the frame, some at exact .5 (rounding ties) and integers."""
    pts = torch.rand(m, n, 2, generator=generator) * (input_size + 40) - 20
    pts[:, : n // 4] = pts[:, : n // 4].floor() + 0.5
    pts[:, n // 4 : n // 2] = pts[:, n // 4 : n // 2].round()
    return pts


@pytest.mark.parametrize("order", ["xy", "transposed"])
@pytest.mark.parametrize(("s", "input_size"), [(8, 128), (16, 128), (8, 224), (16, 224)])
def test_nearest_is_bit_identical_to_upsample_then_index(s, input_size, order):
    g = torch.Generator().manual_seed(s * input_size)
    m, n, d = 3, 200, 5
    tokens = torch.randn(m, s, s, d, generator=g, requires_grad=True)
    tracks = random_tracks(m, n, input_size, g)
    ours = gather_tracks(tokens, tracks, input_size=input_size, order=order)
    ref = original_gather(tokens, tracks, input_size, order=order)
    assert ours.shape == (m, n, d) and torch.equal(ours, ref)

    # Gradients: integer-valued upstream gradients make every sum exact whatever the summation order, so the
    # same contributions must reach the same tokens bit for bit.
    up = torch.randint(-8, 9, (m, n, d), generator=g).float()
    (g_ours,) = torch.autograd.grad(ours, tokens, up)
    (g_ref,) = torch.autograd.grad(ref, tokens, up)
    assert torch.equal(g_ours, g_ref) and g_ours.abs().sum() > 0
    up = torch.randn(m, n, d, generator=g)
    (g_ours,) = torch.autograd.grad(gather_tracks(tokens, tracks, input_size=input_size, order=order), tokens, up)
    (g_ref,) = torch.autograd.grad(original_gather(tokens, tracks, input_size, order=order), tokens, up)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-6, atol=1e-6)


def test_nearest_index_is_the_patch_containing_the_pixel():
    u = torch.arange(224.0)
    pts = torch.stack([u, u.flip(0)], dim=-1)  # (x, y)
    row, col = track_patch_index(pts, grid=16, input_size=224)
    assert torch.equal(col, torch.arange(224) // 14) and torch.equal(row, torch.arange(223, -1, -1) // 14)
    row_t, col_t = track_patch_index(pts, grid=16, input_size=224, order="transposed")
    assert torch.equal(row_t, col) and torch.equal(col_t, row)


def test_frames_dimension():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 3, 8, 8, 4, generator=g)  # [B, T, S, S, D]
    tracks = random_tracks(6, 10, 128, g).view(2, 3, 10, 2)  # [B, T, N, 2]
    for mode in ("nearest", "bilinear"):
        out = gather_tracks(tokens, tracks, input_size=128, mode=mode)
        assert out.shape == (2, 3, 10, 4)
        flat = gather_tracks(tokens.flatten(0, 1), tracks.flatten(0, 1), input_size=128, mode=mode)
        assert torch.equal(out.flatten(0, 1), flat)


@pytest.mark.parametrize("order", ["xy", "transposed"])
@pytest.mark.parametrize(("s", "input_size"), [(8, 128), (16, 224)])
def test_bilinear_equals_upsample_then_index_at_integer_pixels(s, input_size, order):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(2, s, s, 6, generator=g, requires_grad=True)
    tracks = random_tracks(2, 300, input_size, g).round()  # integer pixels, some outside the frame
    ours = gather_tracks(tokens, tracks, input_size=input_size, mode="bilinear", order=order)
    ref = original_gather(tokens, tracks, input_size, mode="bilinear", order=order)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    up = torch.randn(ours.shape, generator=g)
    (g_ours,) = torch.autograd.grad(ours, tokens, up)
    (g_ref,) = torch.autograd.grad(ref, tokens, up)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-5)


def test_bilinear_interpolates_between_patch_centres():
    tokens = torch.arange(16.0).view(1, 4, 4, 1)  # value = 4 * row + col; patch size 8 at 32 px
    pts = torch.tensor([[[3.5, 3.5], [7.5, 3.5], [11.5, 19.5], [100.0, -5.0]]])  # centres at 8k + 3.5
    out = gather_tracks(tokens, pts, input_size=32, mode="bilinear")[0, :, 0]
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 9.0, 3.0]))


def test_bad_inputs():
    tokens = torch.zeros(2, 4, 4, 3)
    with pytest.raises(ValueError, match="do not match"):
        gather_tracks(tokens, torch.zeros(3, 5, 2), input_size=64)
    with pytest.raises(ValueError, match="multiple"):
        gather_tracks(tokens, torch.zeros(2, 5, 2), input_size=66)
    with pytest.raises(ValueError, match="mode"):
        gather_tracks(tokens, torch.zeros(2, 5, 2), input_size=64, mode="bicubic")
    with pytest.raises(ValueError, match="order"):
        gather_tracks(tokens, torch.zeros(2, 5, 2), input_size=64, order="yx")


# --- the moving square (spec §2.4 recommendation) ------------------------------------------------------------

SIZE, PATCH, T, SPEED, SQUARE = 128, 16, 8, 8, 32
SQUARE_Y0 = 96  # rows 96-127: patch rows 6 and 7


def moving_square_clip() -> tuple[torch.Tensor, torch.Tensor]:
    """A textured red square (32 px) sliding right by 8 px a frame over a textured blue-green background.

    Returns:
        frames float [T, 3, SIZE, SIZE] in [0, 1] and the square centre's true track float [T, 1, 2] (x, y).
    """
    g = torch.Generator().manual_seed(0)
    background = torch.tensor([0.1, 0.6, 0.7])[:, None, None] + 0.1 * torch.rand(3, SIZE, SIZE, generator=g)
    texture = torch.tensor([0.9, 0.15, 0.1])[:, None, None] + 0.1 * torch.rand(3, SQUARE, SQUARE, generator=g)
    frames, track = [], []
    for t in range(T):
        x0 = SPEED * t
        frame = background.clone()
        frame[:, SQUARE_Y0 : SQUARE_Y0 + SQUARE, x0 : x0 + SQUARE] = texture  # the texture moves with the square
        frames.append(frame)
        track.append([x0 + (SQUARE - 1) / 2, SQUARE_Y0 + (SQUARE - 1) / 2])  # pixel centres at integers
    return torch.stack(frames), torch.tensor(track)[:, None, :]


def identity_backbone(frames: torch.Tensor) -> torch.Tensor:
    """Known features: the mean colour of each patch, [T, S, S, 3] laid out [row = y, col = x]."""
    return F.avg_pool2d(frames, PATCH).permute(0, 2, 3, 1)


def on_square(features: torch.Tensor) -> torch.Tensor:
    """bool [...]: the colour is nearer the square's than the background's."""
    square, background = torch.tensor([0.95, 0.2, 0.15]), torch.tensor([0.15, 0.65, 0.75])
    return (features - square).norm(dim=-1) < (features - background).norm(dim=-1)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_moving_square_features_follow_the_track(mode):
    frames, track = moving_square_clip()
    tokens = identity_backbone(frames)[None]  # [1, T, S, S, 3]
    feats = gather_tracks(tokens, track[None], input_size=SIZE, mode=mode)[0, :, 0]  # [T, 3]
    assert on_square(feats).all()  # the same physical point, in every frame
    transposed = gather_tracks(tokens, track[None], input_size=SIZE, mode=mode, order="transposed")[0, :, 0]
    assert not on_square(transposed).any()  # the original's indexing reads (row = x, col = y): background
    static = gather_tracks(tokens, track[None, :1].expand(1, T, 1, 2), input_size=SIZE, mode=mode)[0, :, 0]
    assert not on_square(static).all()  # a point that does not move loses the square
