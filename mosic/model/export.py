"""Export a trained backbone as plain timm weights: a safetensors file plus a JSON sidecar; nothing mosic-specific.

The file holds the backbone's ``state_dict`` keyed exactly as timm keys it, without a classifier head
(``num_classes=0``), so it loads with ``strict=True`` into a fresh ``timm.create_model(model_name,
img_size=img_size, num_classes=0)``. Before writing, :func:`export_backbone` builds that fresh model on the meta
device (no memory, no weights) and checks every key and shape, so a file that would not load is never written.
The sidecar ``<file>.json`` records the model name, the input size, how to load it and the provenance.

Loading an export needs only timm and safetensors (run next to the files)::

```python
import timm, json, safetensors.torch
meta = json.load(open("backbone.safetensors.json"))
model = timm.create_model(meta["model_name"], pretrained=False, num_classes=0, img_size=meta["img_size"])
model.load_state_dict(safetensors.torch.load_file("backbone.safetensors"), strict=True)
```

Then ``model.eval()``; ``model.forward_features(x)`` gives the tokens (prefix tokens first), ``model(x)`` the
pooled feature.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import safetensors.torch
import timm
import torch
from torch import Tensor, nn

from mosic.fsutil import atomic_file, write_text_atomic

__all__ = ["export_backbone", "load_backbone_weights", "load_exported", "unshared_state", "ExportError"]

logger = logging.getLogger(__name__)

FORMAT = "mosic-backbone"
FORMAT_VERSION = 1
HOW_TO_LOAD = (
    "model = timm.create_model(meta['model_name'], pretrained=False, num_classes=0, img_size=meta['img_size']); "
    "model.load_state_dict(safetensors.torch.load_file('<this file without .json>'), strict=True)"
)


class ExportError(ValueError):
    """The backbone's weights do not match the timm model they are exported as."""


def unshared_state(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """CPU tensors safetensors accepts: contiguous, each owning its whole storage (tied weights are cloned)."""
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, t in tensors.items():
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()  # a fresh storage per tensor
        storage = t.untyped_storage()
        whole = t.storage_offset() == 0 and t.numel() * t.element_size() == storage.nbytes()
        if storage.data_ptr() in seen or not whole or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        if t.untyped_storage().data_ptr():  # empty tensors have no storage to share
            seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _unwrap(module: nn.Module) -> nn.Module:
    """The plain model inside DDP / torch.compile wrappers, whose keys are timm's."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel | nn.DataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def _reference(model_name: str, input_size: int) -> nn.Module:
    """A fresh timm model, as the loader will build it, on the meta device (no allocation, no init cost)."""
    try:
        with torch.device("meta"):
            return timm.create_model(model_name, pretrained=False, num_classes=0, img_size=input_size)
    except (RuntimeError, NotImplementedError, ValueError):  # an init that needs real data: build on CPU instead
        return timm.create_model(model_name, pretrained=False, num_classes=0, img_size=input_size)


def _timm_state(backbone: nn.Module, model_name: str, input_size: int) -> dict[str, Tensor]:
    """The backbone's state_dict restricted to the keys of ``timm.create_model(model_name, num_classes=0)``.

    A classifier head (the backbone was built with ``num_classes > 0``) is dropped; anything else that does not
    match, key or shape, raises.
    """
    state = {k: v.detach() for k, v in backbone.state_dict().items()}
    ref = _reference(model_name, input_size).state_dict()
    head_keys: set[str] = set()
    if hasattr(backbone, "get_classifier"):
        head = backbone.get_classifier()
        for prefix, module in backbone.named_modules():
            if module is head and not isinstance(head, nn.Identity):
                head_keys = {k for k in state if k.startswith(prefix + ".")}
    dropped = sorted(k for k in head_keys if k not in ref)
    if dropped:
        logger.info("export drops the classifier head %s (the export is num_classes=0)", dropped)
        state = {k: v for k, v in state.items() if k not in dropped}
    missing, unexpected = sorted(set(ref) - set(state)), sorted(set(state) - set(ref))
    wrong_shape = sorted(k for k in set(ref) & set(state) if tuple(ref[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong_shape:
        raise ExportError(
            f"the backbone does not load into timm.create_model({model_name!r}, img_size={input_size}, "
            f"num_classes=0): missing keys {missing[:20]} ({len(missing)}), unexpected keys {unexpected[:20]} "
            f"({len(unexpected)}), wrong shapes (key, backbone, timm) "
            f"{[(k, tuple(state[k].shape), tuple(ref[k].shape)) for k in wrong_shape[:20]]} ({len(wrong_shape)})"
        )
    return state


def export_backbone(backbone: nn.Module, path: Path, *, model_name: str, input_size: int, meta: dict) -> Path:
    """Write `backbone`'s weights to `path` (safetensors, timm keys, no head) and a ``<path>.json`` sidecar.

    Both files are written under temporary names and renamed, the sidecar last.

    Args:
        backbone: a timm model (or a DDP / compiled wrapper of one) built from `model_name`.
        path: output file, e.g. ``run/backbone.safetensors``.
        model_name: the timm model name (a ``.tag`` suffix is fine).
        input_size: the image side the backbone was trained at (sets the position embedding size).
        meta: JSON-serialisable provenance (config, versions, git sha, training step).

    Returns:
        `path`.

    Raises:
        ExportError: when the weights do not load into ``timm.create_model(model_name, img_size=input_size,
            num_classes=0)`` with ``strict=True``; the message names the keys.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = unshared_state(_timm_state(_unwrap(backbone), model_name, input_size))
    num_features = getattr(_unwrap(backbone), "num_features", None)
    sidecar: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "img_size": int(input_size),
        "num_classes": 0,
        "num_features": num_features,
        "timm_version": timm.__version__,
        "torch_version": torch.__version__,
        "file": path.name,
        "sha256": None,
        "how_to_load": HOW_TO_LOAD,
        "meta": meta,
    }
    json.dumps(sidecar)  # fail on a non-JSON meta before writing anything

    side = _sidecar(path)
    side.unlink(missing_ok=True)
    with atomic_file(path) as tmp:
        metadata = {"format": "pt", "model_name": model_name, "img_size": str(input_size)}
        safetensors.torch.save_file(state, str(tmp), metadata=metadata)
        sidecar["sha256"] = hashlib.sha256(tmp.read_bytes()).hexdigest()
    write_text_atomic(side, json.dumps(sidecar, indent=1))
    logger.info("exported %s backbone (%d tensors, img_size %d) to %s", model_name, len(state), input_size, path)
    return path


def load_exported(path: Path, *, pretrained: bool = False) -> nn.Module:
    """Build the timm model named in ``<path>.json`` and load the exported weights into it strictly.

    Args:
        path: a ``.safetensors`` file written by :func:`export_backbone`.
        pretrained: passed to ``timm.create_model``; the exported weights replace every tensor anyway, so True
            only downloads weights that are then overwritten.

    Returns:
        The model (``num_classes=0``) in eval mode, on CPU.
    """
    path = Path(path)
    meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    model = timm.create_model(meta["model_name"], pretrained=pretrained, num_classes=0, img_size=meta["img_size"])
    model.load_state_dict(safetensors.torch.load_file(str(path)), strict=True)
    return model.eval()


def load_backbone_weights(backbone: nn.Module, path: str | Path, *, model_name: str) -> None:
    """Load a ``.safetensors`` backbone into `backbone` (a timm ViT built from `model_name`), strictly.

    The file is a backbone exported by :func:`export_backbone` (its sidecar names the model, which must be the same
    architecture) or a plain timm state dict. A position embedding of another input size is resampled (timm's
    ``resample_abs_pos_embed``, as timm does for pretrained weights); any other difference is an error that names
    the file and the keys.

    Raises:
        ExportError: missing file, another architecture, or keys / shapes that do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such backbone file (train.init)")
    side = _sidecar(path)
    if side.exists():
        exported = json.loads(side.read_text(encoding="utf-8")).get("model_name", "")
        if exported.split(".")[0] != model_name.split(".")[0]:
            raise ExportError(f"{path} holds a {exported!r} backbone; train.model is {model_name!r}")
    state = safetensors.torch.load_file(str(path))
    own = backbone.state_dict()
    pos = state.get("pos_embed")
    if pos is not None and "pos_embed" in own and pos.shape != own["pos_embed"].shape:
        from timm.layers import resample_abs_pos_embed

        prefix = 0 if getattr(backbone, "no_embed_class", False) else getattr(backbone, "num_prefix_tokens", 1)
        grid = backbone.patch_embed.grid_size
        state["pos_embed"] = resample_abs_pos_embed(pos, new_size=list(grid), num_prefix_tokens=prefix)
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ExportError(
            f"{path} does not fit {model_name!r}: missing {missing[:5]}, unexpected {unexpected[:5]}, other shapes "
            f"{wrong[:5]}"
        )
    backbone.load_state_dict(state, strict=True)
    logger.info("backbone weights from %s", path)
