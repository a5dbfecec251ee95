"""The network MoSiC trains: backbone → features at track points → projection head → prototype scores.

The student and the EMA teacher are two instances of :class:`MoSiCNet` (the teacher a frozen copy updated by
:func:`mosic.model.ema.ema_update_`). Only the student is wrapped in DDP.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from mosic.model.backbone import build_backbone, grid_size, patch_tokens
from mosic.model.export import load_backbone_weights
from mosic.model.gather import gather_tracks
from mosic.model.head import ProjectionHead, Prototypes

__all__ = ["MoSiCNet"]


class MoSiCNet(nn.Module):
    """Backbone, projection head and prototypes.

    Args:
        model: timm model name.
        init: starting backbone weights: ``random`` (timm's initialisation), ``timm`` (timm's pretrained weights)
            or the path of a ``.safetensors`` backbone (:func:`mosic.model.export.load_backbone_weights`).
        input_size: square input size in pixels.
        head_hidden, head_bottleneck, proj_dim: projection head widths (D → hidden → hidden → bottleneck → proj).
        num_prototypes: K.
        gather: ``nearest`` (patch the point falls in) or ``bilinear``.
        order: ``xy`` (correct) or ``transposed`` (the original code's indexing bug, for the faithful preset).
    """

    def __init__(
        self,
        *,
        model: str,
        init: str,
        input_size: int,
        head_hidden: int,
        head_bottleneck: int,
        proj_dim: int,
        num_prototypes: int,
        gather: Literal["nearest", "bilinear"] = "nearest",
        order: Literal["xy", "transposed"] = "xy",
    ) -> None:
        super().__init__()
        if init not in ("random", "timm") and not str(init).endswith(".safetensors"):
            raise ValueError(f"init must be 'random', 'timm' or a .safetensors path, got {init!r}")
        self.backbone = build_backbone(model, pretrained=init == "timm", input_size=input_size)
        if init not in ("random", "timm"):
            load_backbone_weights(self.backbone, init, model_name=model)
        self.head = ProjectionHead(self.backbone.num_features, head_hidden, head_bottleneck, proj_dim)
        self.prototypes = Prototypes(num_prototypes, proj_dim)
        self.input_size, self.gather, self.order = input_size, gather, order
        self.grid = grid_size(self.backbone)

    def forward(self, images: Tensor, points: Tensor, keep: Tensor | None = None) -> Tensor:
        """Prototype scores of the features at `points`.

        Args:
            images: float [M, 3, S_in, S_in] normalised frames.
            points: float [M, N, 2] (x, y) input pixels, pixel centres at integer coordinates.
            keep: long [M, L'] indices of the patches the backbone sees (student masking); None = all.

        Returns:
            float [M, N, K] cosine similarities between projected features and prototypes.
        """
        tokens = patch_tokens(self.backbone, images, keep=keep)  # [M, S, S, D]
        feats = gather_tracks(tokens, points, input_size=self.input_size, mode=self.gather, order=self.order)
        return self.prototypes(self.head(feats))  # [M, N, K]
