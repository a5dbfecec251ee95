"""Opt-in learned tracker: an adapter around the official CoTracker3 offline model (``cotracker`` package).

CoTracker (Karaev et al., "CoTracker3: Simpler and Better Point Tracking by Pseudo-Labelling Real Videos",
2024; https://github.com/facebookresearch/co-tracker) is not on PyPI and its code and weights are
CC-BY-NC-4.0, so it is never a dependency of mosic. Users who want it install it themselves::

    pip install "git+https://github.com/facebookresearch/co-tracker@82e02e8029753ad4ef13cf06be7f4fc5facdda4d"

and either pass a checkpoint file (``scaled_offline.pth`` from https://huggingface.co/facebook/cotracker3)
or let ``torch.hub`` fetch code and weights (needs GitHub and Hugging Face access at run time).

What the adapter does, and why (facts from ``shared/reference/cotracker.md``, checked against upstream
commit 82e02e8):

- **Several clips per forward pass** (``batch_size``, :meth:`CoTracker3Tracker.track_batch`), although
  upstream's offline model crashes for batch B > 1 (issue #163; see *Batching* below for why and how).
- **Explicit queries** ``(t=0, x, y)`` on the caller's grid rather than ``grid_size``, whose points are laid
  out on the 384x512 model canvas and land off the project's grid.
- **It calls the model itself** instead of ``CoTrackerPredictor.__call__``, because the predictor returns
  only booleans (``sigmoid(vis) > 0.9``) and drops the confidence head. The adapter repeats the
  predictor's pre- and post-processing exactly: bilinear resize (``align_corners=True``) of the 0..255
  float video to the model resolution, query scaling by ``(w-1)/(W-1)``, the hidden 6x6 support grid of
  queries, 6 refinement iterations, and the inverse scaling. With the default settings its tracks and
  visibility equal the predictor's (tested when ``cotracker`` is installed).
- **Visibility** = ``score > visibility_threshold`` and the point inside ``[0, W-1] x [0, H-1]``, where
  score = ``sigmoid(vis)`` (``visibility_score="vis"``, threshold 0.9: the offline predictor's rule, the
  default) or ``sigmoid(vis) * sigmoid(conf)`` (``"vis_conf"``, threshold 0.6: the rule of upstream's online
  predictor and of its TAP-Vid evaluation). The score is returned as ``TrackResult.confidence``, so a
  cache can be re-thresholded later. At the query frame the position is the query and the score is 1
  (the model is told the point is there; upstream forces visibility there too).
- Importing upstream's model modules calls ``torch.manual_seed(0)`` and building the model draws random
  initial weights; both would silently change the caller's random stream, so the global torch RNG state
  is saved and restored around import and construction.
- Checkpoints are read with ``torch.load(..., weights_only=True)`` (never unpickle arbitrary objects);
  ``torch.hub`` loads through ``load_state_dict_from_url``, which uses ``weights_only=True`` by default in
  torch >= 2.6.

Batching. ``CoTrackerThreeOffline.forward`` is written for any batch size B except in one place: it starts the
refinement from ``coords = queried_coords.reshape(B, 1, N, 2).expand(B, T, N, 2)`` (stride 0 along T), and its
first iteration calls ``coords.view(B * T, N, 2)``, a view that can merge B with a stride-0 T only when B == 1
(``RuntimeError: view size is not compatible with input tensor's size and stride``). From the second iteration
on ``coords`` is a fresh tensor, and everything else (the CNN on ``B * T`` frames, ``get_track_feat``,
``get_correlation_feat``, the correlation MLP, the update transformer) handles B > 1: with only that tensor made
contiguous, a B = 3 forward gives the B = 1 tracks exactly (checked on a scratch copy of upstream, not shipped).
Upstream is not ours to edit, and that tensor is made inside ``forward`` from nothing we pass in, so the adapter
folds the batch in with ``torch.vmap`` instead: ``forward`` runs once and sees B = 1 (vmap hides the clip
dimension), while vmap's batching rules run each operation once for the whole stack of clips (convolutions,
matrix products, attention's included, and ``grid_sample`` fold the clip dimension into their own batch
dimension; no operation of the model falls back to a per-clip loop: the tests turn vmap's fallback warning into
an error). So it is one batched forward pass, with about as many kernel launches as one clip, not CUDA streams
over separate forwards. Every clip goes through the same operations as alone, so its tracks equal its batch-1
tracks up to float rounding (batched kernels may sum in another order: a few 1e-6 px on CPU, random weights); a
batch of one calls the model directly, as before. Clips of a batch must share T, H and W (the model has one time
axis and one canvas): :meth:`CoTracker3Tracker.track_batch` groups clips by shape and runs each group in chunks
of ``batch_size``. Padding shorter clips instead would change their tracks, since every frame attends to every
other frame.

Cost: about 17 s per 12-frame clip on 2 CPU cores (the model always works at 384x512), so this tracker
belongs on a GPU; ``needs_gpu`` says so. On an H200, one clip at a time (12 x 224², 1,024 points, fp32) took
144 ms: 6.9 clips/s. ``benchmarks/cotracker_batch.py --device cuda`` measures clips/s at batch 1 against larger
batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from mosic.geometry import inside_pixel_centres
from mosic.tracking.base import TrackResult, check_clip

logger = logging.getLogger(__name__)

__all__ = ["CoTracker3Tracker", "INSTALL_HINT", "UPSTREAM_COMMIT", "load_checkpoint"]

# The upstream commit the adapter's copy of the predictor's pre/post-processing was checked against.
UPSTREAM_COMMIT = "82e02e8029753ad4ef13cf06be7f4fc5facdda4d"
INSTALL_HINT = (
    "the 'cotracker3' tracker needs the official CoTracker package, which is not on PyPI. Install it from its "
    f'git repository: pip install "git+https://github.com/facebookresearch/co-tracker@{UPSTREAM_COMMIT}" '
    "(code and weights are CC-BY-NC-4.0), then pass checkpoint=<path to scaled_offline.pth from "
    "https://huggingface.co/facebook/cotracker3>, or use the default tracker 'lk'."
)
# Upstream's model works at stride 4: its input height and width must be multiples of 4.
_STRIDE = 4


@contextlib.contextmanager
def _preserved_torch_rng() -> Iterator[None]:
    """Restore torch's global RNG state (CPU and every CUDA device) after the block."""
    # Getting the CUDA states initialises CUDA; acceptable, since this tracker exists to run there.
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        yield


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state dict in a CoTracker3 checkpoint file, read with ``torch.load(weights_only=True)``.

    Needs no ``cotracker`` package. A ``{"model": state_dict}`` wrapper is unwrapped.

    Raises:
        FileNotFoundError: when `path` is not a file.
        pickle.UnpicklingError: when the file's pickle names anything but tensors and plain containers (it
            could run code when unpickled; it is refused before anything in it runs). The message names
            the file.
        ValueError: when the file is not a torch checkpoint or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CoTracker checkpoint {path} does not exist or is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f"refused to load CoTracker checkpoint {path}: it is not a plain state dict of tensors (its pickle "
            "names other Python objects, which could run arbitrary code when loaded, so mosic reads checkpoints "
            "with torch.load(weights_only=True) only and never retries without it). Use scaled_offline.pth from "
            "https://huggingface.co/facebook/cotracker3, or re-save a trusted model with "
            "torch.save(model.state_dict(), path)"
        ) from err
    except Exception as err:  # noqa: BLE001 - torch raises KeyError, RuntimeError, EOFError... for a non-checkpoint
        detail = f"{type(err).__name__}: {err}"
        raise ValueError(f"cannot read CoTracker checkpoint {path} as a torch file ({detail})") from err
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"CoTracker checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return state


def support_grid(size: int, height: int, width: int) -> torch.Tensor:
    """Upstream's hidden support grid (``get_points_on_a_grid(size, (h, w))``), in model pixels.

    ``size x size`` points, row-major, spanning ``[m, w - m] x [m, h - m]`` with margin ``m = w / 64``.

    Returns:
        float32 [size * size, 2] ``(x, y)``.
    """
    if size == 1:
        return torch.tensor([[width / 2, height / 2]], dtype=torch.float32)
    margin = width / 64
    ys = torch.linspace(margin, height - margin, size)
    xs = torch.linspace(margin, width - margin, size)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(-1, 2)


class CoTracker3Tracker:
    """CoTracker3 offline behind the :class:`mosic.tracking.base.Tracker` protocol (see the module docstring).

    Args:
        checkpoint: path to an offline CoTracker3 state dict (``scaled_offline.pth``; a ``{"model": ...}``
            wrapper is accepted). None fetches code and weights with
            ``torch.hub.load(hub_repo, "cotracker3_offline")``.
        visibility_threshold: a point is visible where its score is above this.
        visibility_score: ``"vis"`` (score = visibility probability; pair with 0.9, upstream's offline
            predictor) or ``"vis_conf"`` (visibility x confidence probability; pair with 0.6, upstream's
            TAP-Vid evaluation).
        iters: refinement iterations (upstream's predictor uses 6).
        support_points: side of the hidden support grid added to the queries (upstream: 6; 0 = none).
        model_resolution: ``(h, w)`` the clip is resized to for the model, multiples of 4; None keeps the
            trained resolution (384, 512). Other values run, faster, but are outside the training
            distribution (useful for tiny tests).
        hub_repo: torch.hub repository (``owner/name[:ref]``) used when ``checkpoint`` is None.
        device: torch device; None picks CUDA when available, else CPU (slow: about 17 s per clip).
        autocast: run the model under bfloat16 autocast on CUDA (faster; outputs differ slightly).
        batch_size: the most clips of one shape tracked in one forward pass (:meth:`track_batch`; see the
            module docstring). GPU memory grows linearly with it. Not part of ``settings``: like the device,
            it changes the tracks only by float rounding.

    Raises:
        ImportError: when ``checkpoint`` is given and the ``cotracker`` package is not installed (the message
            says how to install it).
        pickle.UnpicklingError, ValueError, FileNotFoundError: when ``checkpoint`` cannot be read safely
            (:func:`load_checkpoint`; checked before the package is imported).
    """

    name = "cotracker3"
    needs_gpu = True

    def __init__(
        self,
        *,
        checkpoint: str | Path | None = None,
        visibility_threshold: float = 0.9,
        visibility_score: Literal["vis", "vis_conf"] = "vis",
        iters: int = 6,
        support_points: int = 6,
        model_resolution: tuple[int, int] | list[int] | None = None,
        hub_repo: str = "facebookresearch/co-tracker",
        device: str | torch.device | None = None,
        autocast: bool = False,
        batch_size: int = 1,
    ) -> None:
        if visibility_score not in ("vis", "vis_conf"):
            raise ValueError(f"visibility_score must be 'vis' or 'vis_conf', got {visibility_score!r}")
        if not 0.0 <= visibility_threshold < 1.0:
            raise ValueError(f"visibility_threshold must be in [0, 1), got {visibility_threshold}")
        if iters < 1 or support_points < 0:
            raise ValueError(f"need iters >= 1 and support_points >= 0, got {iters}, {support_points}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if model_resolution is not None:
            h, w = (int(v) for v in model_resolution)
            if h % _STRIDE or w % _STRIDE or h < _STRIDE or w < _STRIDE:
                raise ValueError(f"model_resolution must be positive multiples of {_STRIDE}, got {model_resolution}")
        self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type != "cuda":
            logger.warning("cotracker3 runs on %s: expect ~17 s per 12-frame clip on 2 CPU cores", self.device)

        predictor, source = self._build(checkpoint, hub_repo)
        self._model = predictor.model.to(self.device).eval()
        if model_resolution is not None:
            # The model reads model_resolution to normalise relative motion; keep it equal to the input size.
            self._model.model_resolution = (h, w)
        else:
            h, w = (int(v) for v in predictor.interp_shape)
        self.model_resolution = (h, w)
        self.autocast = bool(autocast)
        self.batch_size = batch_size
        self.settings: dict[str, Any] = {
            "model": "cotracker3_offline",
            "source": source,
            "visibility_threshold": float(visibility_threshold),
            "visibility_score": visibility_score,
            "iters": int(iters),
            "support_points": int(support_points),
            "model_resolution": [h, w],
            "autocast": self.autocast,
            "upstream_commit_checked": UPSTREAM_COMMIT,
        }

    @staticmethod
    def _build(checkpoint: str | Path | None, hub_repo: str) -> tuple[Any, dict[str, Any]]:
        """The upstream predictor (for its model and resolution) and a record of where the weights came from."""
        if checkpoint is None:
            logger.info("loading cotracker3_offline from torch.hub (%s)", hub_repo)
            try:
                with _preserved_torch_rng():
                    # hub's loader reads weights with weights_only=True (torch >= 2.6).
                    predictor = torch.hub.load(hub_repo, "cotracker3_offline")
            except Exception as err:  # network, GitHub rate limits, hub cache: all end here
                raise RuntimeError(
                    f"torch.hub could not load {hub_repo}:cotracker3_offline ({err}); it needs GitHub and Hugging "
                    "Face at run time. Without network, install the package and pass checkpoint=<path>: "
                    f"{INSTALL_HINT}"
                ) from err
            return predictor, {"kind": "torch.hub", "repo": hub_repo, "entry_point": "cotracker3_offline"}

        path = Path(checkpoint)
        state = load_checkpoint(path)  # first: a refused file fails before anything else happens
        with _preserved_torch_rng():
            try:
                from cotracker.predictor import CoTrackerPredictor
            except ImportError as err:
                raise ImportError(f"{INSTALL_HINT} (import failed: {err})") from err
            # Random init here; the weights were read above by us, never by upstream's unrestricted loader.
            predictor = CoTrackerPredictor(checkpoint=None, offline=True, v2=False, window_len=60)
        try:
            predictor.model.load_state_dict(state)
        except RuntimeError as err:
            raise RuntimeError(
                f"{path} is not an offline CoTracker3 state dict (an online checkpoint has time_emb of length 16, "
                f"the offline model needs 60): {err}"
            ) from err
        logger.info("loaded cotracker3_offline weights from %s", path)
        return predictor, {"kind": "checkpoint", "path": str(path), "sha256": _sha256(path)}

    def __repr__(self) -> str:
        return (
            f"CoTracker3Tracker(settings={self.settings!r}, device={str(self.device)!r}, batch_size={self.batch_size})"
        )

    def track(self, clip: np.ndarray, queries: np.ndarray) -> TrackResult:
        """Track ``queries`` through ``clip`` with one forward pass of the model (batch of one).

        Args:
            clip: uint8 [T, H, W, 3] RGB frames, H, W >= 2.
            queries: float32 [N, 2] ``(x, y)`` pixel positions on frame 0.

        Returns:
            tracks float32 [T, N, 2] (the model's positions, also where not visible), visibility bool [T, N]
            and the score it thresholds as confidence float32 [T, N].
        """
        clip, queries = check_clip(clip, queries)
        (result,) = self._track_same_shape([clip], queries)
        return result

    def track_batch(self, clips: Sequence[np.ndarray], queries: np.ndarray) -> list[TrackResult]:
        """Track the same ``queries`` through several clips, ``batch_size`` clips per forward pass.

        Clips are grouped by shape (T, H, W), in order of first appearance, and each group runs in chunks of at
        most ``batch_size`` clips (see the module docstring on batching). Each result equals :meth:`track` of
        its clip up to float rounding (exactly for a chunk of one).

        Args:
            clips: uint8 [T_b, H_b, W_b, 3] RGB frames each, H_b, W_b >= 2.
            queries: float32 [N, 2] ``(x, y)`` pixel positions on frame 0 of every clip.

        Returns:
            One :class:`TrackResult` per clip, in the order of ``clips``, as :meth:`track` returns it.
        """
        checked = []
        for clip in clips:
            clip, queries = check_clip(clip, queries)
            checked.append(clip)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, clip in enumerate(checked):
            groups.setdefault(clip.shape, []).append(i)
        results: list[TrackResult | None] = [None] * len(checked)
        for members in groups.values():
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                for i, result in zip(chunk, self._track_same_shape([checked[i] for i in chunk], queries), strict=True):
                    results[i] = result
        return results  # type: ignore[return-value]  # every slot was filled above

    def _track_same_shape(self, clips: list[np.ndarray], queries: np.ndarray) -> list[TrackResult]:
        """One forward pass over B clips of one shape (uint8 [T, H, W, 3] each, checked) and float32 [N, 2] queries."""
        B = len(clips)
        T, H, W = clips[0].shape[:3]
        N = queries.shape[0]
        if H < 2 or W < 2:
            raise ValueError(f"frames must be at least 2x2 pixels, got {H}x{W}")
        h, w = self.model_resolution
        # (x, y) scales between input and model pixels (pixel centres at integers in both: corners align).
        to_model = torch.tensor([(w - 1) / (W - 1), (h - 1) / (H - 1)], dtype=torch.float32)
        from_model = torch.tensor([(W - 1) / (w - 1), (H - 1) / (h - 1)], dtype=torch.float32)

        with torch.inference_mode():
            # [B, T, 3, h, w] RGB floats 0..255, the layout and range upstream expects; uint8 crosses to the device.
            video = torch.from_numpy(np.stack(clips)).to(self.device).flatten(0, 1).permute(0, 3, 1, 2).float()
            video = F.interpolate(video, size=(h, w), mode="bilinear", align_corners=True).unflatten(0, (B, T))
            points = torch.from_numpy(queries) * to_model  # [N, 2] model pixels
            if self.settings["support_points"]:
                points = torch.cat([points, support_grid(self.settings["support_points"], h, w)])
            query_t = torch.zeros(points.shape[0], 1)  # every query on frame 0
            model_queries = torch.cat([query_t, points], dim=1).to(self.device)  # [N', 3] (t, x, y)
            model_queries = model_queries.expand(B, *model_queries.shape)  # [B, N', 3]
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self._use_autocast()):
                coords, vis, conf = self._forward(video, model_queries)
            coords = coords[:, :, :N].float().cpu() * from_model  # [B, T, N, 2] input pixels
            vis = vis[:, :, :N].float().cpu()  # [B, T, N] probabilities
            conf = conf[:, :, :N].float().cpu()

        all_tracks = coords.numpy().astype(np.float32)
        all_scores = (vis * conf if self.settings["visibility_score"] == "vis_conf" else vis).numpy().astype(np.float32)
        results = []
        for tracks, score in zip(all_tracks, all_scores, strict=True):
            tracks[0] = queries
            score[0] = 1.0
            visibility = (score > self.settings["visibility_threshold"]) & inside_pixel_centres(tracks, H, W)
            results.append(TrackResult(tracks=tracks, visibility=visibility, confidence=score))
        return results

    def _forward(self, video: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model on B clips: video float [B, T, 3, h, w] 0..255, queries [B, N', 3] ``(t, x, y)`` model pixels.

        Returns:
            coords [B, T, N', 2] model pixels, visibility and confidence probabilities [B, T, N'].
        """
        iters = self.settings["iters"]
        if video.shape[0] == 1:
            coords, vis, conf, _ = self._model(video=video, queries=queries, iters=iters)
            return coords, vis, conf

        def one_clip(clip: torch.Tensor, clip_queries: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # B = 1 as upstream's forward needs; vmap runs each operation once for every clip (module docstring).
            coords, vis, conf, _ = self._model(video=clip[None], queries=clip_queries[None], iters=iters)
            return coords[0], vis[0], conf[0]

        coords, vis, conf = torch.vmap(one_clip)(video, queries)
        return coords, vis, conf

    def _use_autocast(self) -> bool:
        return self.autocast and self.device.type == "cuda"
