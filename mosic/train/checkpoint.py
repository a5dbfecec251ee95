"""Training checkpoints: every tensor in one safetensors file, everything else in a JSON sidecar; no pickle anywhere.

One checkpoint is a pair of files in the checkpoint directory::

    step_00000120.safetensors   the tensors, keyed:
                                  <module>.<state_dict key>      one prefix per entry of ``modules``
                                  optim.state.<param index>.<name>  optimizer state (AdamW: exp_avg, exp_avg_sq, step)
                                  optim.param_groups.<g>.<key>   tensor-valued hyper-parameters (rare)
                                  extra.<name>                   ``extra_tensors``
                                  rng.torch, rng.cuda.<device>   torch generator states (uint8, as torch returns them)
                                  rng.numpy.key                  numpy's MT19937 key: 624 little-endian uint32
                                  rng.numpy.state, rng.python    UTF-8 JSON as uint8: the rest of numpy's legacy state
                                                                 tuple, and python ``random.getstate()``
                                  rng.rank<r>.<name>             the same states of rank r >= 1 of a multi-process
                                                                 run (rank 0's use the plain keys above)
    step_00000120.json          the sidecar: step, epoch, meta (provenance: config, versions, git sha), the optimizer's
                                class, param_groups and non-tensor state as JSON (tensors referenced by key), module
                                names, the tensor key list and the sha256 of the .safetensors file.

Writing is atomic: each file is written under a temporary name and renamed with ``os.replace``, the sidecar last, so
a checkpoint whose sidecar is missing (a crash mid-save) or whose sha256 does not match (a truncated copy) is
incomplete, and :func:`latest_checkpoint` skips it with a warning. Restoring the optimizer state and all four random
generators makes a resumed run on CPU bit-identical to an uninterrupted one. A multi-process run saves every rank's
generators (gathered by the caller through :func:`rng_state`) and each rank restores its own.

Shared (tied) tensors: safetensors refuses to save two keys that share storage. Every tensor whose storage was
already seen, that is a view into a larger storage, or that is not contiguous is saved as a contiguous clone, so a
tied weight is stored once per key; ``load_state_dict`` copies the same values into both keys, which keeps the tie.

Nothing here unpickles: tensors go through safetensors and everything else through JSON, so loading a checkpoint
from an untrusted source cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import Tensor, nn

from mosic import distributed
from mosic.fsutil import atomic_file, write_text_atomic
from mosic.model.export import unshared_state

__all__ = [
    "save_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "resume_or_start",
    "rng_state",
    "CheckpointError",
]

logger = logging.getLogger(__name__)

FORMAT = "mosic-checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"step_(\d+)\.safetensors")
_TMP = re.compile(r"\.step_(\d+)\.(safetensors|json)\.tmp-\d+")
_RESERVED = ("optim", "extra", "rng")


class CheckpointError(RuntimeError):
    """A checkpoint is incomplete, corrupt, or does not match the modules or optimizer it is loaded into."""


# --- small helpers --------------------------------------------------------------------------------------------


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    # Makes the renames durable; not every platform can open a directory, hence the suppress.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _bytes_tensor(data: bytes) -> Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _tensor_bytes(t: Tensor) -> bytes:
    return t.cpu().contiguous().numpy().tobytes()


def _encode(value: Any, key: str, tensors: dict[str, Tensor]) -> Any:
    """JSON for `value`; tensors go to `tensors[key]` and are referenced as ``{"__tensor__": key}``."""
    if isinstance(value, Tensor):
        tensors[key] = value
        return {"__tensor__": key}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v, f"{key}.{k}", tensors) for k, v in value.items()}
    raise TypeError(f"{key}: a {type(value).__name__} cannot be stored in a checkpoint (tensors and JSON values only)")


def _decode(value: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        if set(value) == {"__tuple__"}:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        return {k: _decode(v, tensors) for k, v in value.items()}
    return value


# --- RNG states -----------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Tensor]:
    """This process's global torch, CUDA, numpy and python random states, as uint8 tensors keyed ``rng.<name>``."""
    out = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            out[f"rng.cuda.{i}"] = state
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # noqa: NPY002 - the global stream is what we save
    out["rng.numpy.key"] = _bytes_tensor(np.asarray(key, dtype="<u4").tobytes())
    numpy_rest = {"bit_generator": name, "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(cached_gaussian)}
    out["rng.numpy.state"] = _bytes_tensor(json.dumps(numpy_rest).encode())
    version, internal, gauss_next = random.getstate()
    out["rng.python"] = _bytes_tensor(json.dumps([version, list(internal), gauss_next]).encode())
    return out


def _rank_key(key: str, rank: int) -> str:
    """``rng.<name>`` of rank 0 stays as it is; rank r >= 1 stores it as ``rng.rank<r>.<name>``."""
    return key if rank == 0 else f"rng.rank{rank}.{key.removeprefix('rng.')}"


def _restore_rng(tensors: dict[str, Tensor]) -> None:
    """Restore the generators from ``rng.<name>`` keys (one rank's, without the rank part)."""
    torch.set_rng_state(tensors["rng.torch"].cpu())
    cuda = sorted((int(k.rsplit(".", 1)[1]), t) for k, t in tensors.items() if k.startswith("rng.cuda."))
    if cuda:
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available != len(cuda):
            logger.warning(
                "checkpoint holds CUDA RNG states for %d device(s), this process sees %d: restoring the first %d",
                len(cuda),
                available,
                min(available, len(cuda)),
            )
        for i, state in cuda[:available]:
            torch.cuda.set_rng_state(state.cpu(), device=i)
    rest = json.loads(_tensor_bytes(tensors["rng.numpy.state"]))
    key = np.frombuffer(_tensor_bytes(tensors["rng.numpy.key"]), dtype="<u4").astype(np.uint32)
    state = (rest["bit_generator"], key, rest["pos"], rest["has_gauss"], rest["gauss"])
    np.random.set_state(state)  # noqa: NPY002 - the global stream is what we restore
    version, internal, gauss_next = json.loads(_tensor_bytes(tensors["rng.python"]))
    random.setstate((version, tuple(internal), gauss_next))


# --- public API -----------------------------------------------------------------------------------------------


def save_checkpoint(
    directory: Path,
    *,
    step: int,
    epoch: int,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    extra_tensors: dict[str, Tensor] | None = None,
    meta: dict,
    keep: int = 3,
    rng_states: list[dict[str, Tensor]] | None = None,
) -> Path:
    """Write ``step_<step:08d>.safetensors`` and its ``.json`` sidecar atomically; keep the newest `keep` checkpoints.

    Also records the global torch, CUDA (every device), numpy and python random states, so that
    :func:`load_checkpoint` resumes bit for bit.

    Args:
        directory: checkpoint directory (created if missing).
        step: optimizer steps done; names the file.
        epoch: the epoch the step belongs to.
        modules: name → module (e.g. ``{"student": net, "teacher": teacher}``); names may not contain dots nor be
            one of ``optim``, ``extra``, ``rng``.
        optimizer: its state (per parameter index) and param_groups hyper-parameters are saved.
        extra_tensors: further tensors to store, returned by :func:`load_checkpoint` under ``"extra_tensors"``.
        meta: JSON-serialisable provenance (config, versions, git sha; see :func:`mosic.provenance.provenance`).
        keep: how many complete checkpoints to keep; older ones (and leftovers of interrupted saves) are deleted.
        rng_states: the :func:`rng_state` of every rank, in rank order (a multi-process run gathers them on the
            saving rank); None = this process's own states only.

    Returns:
        The path of the ``.safetensors`` file.

    Raises:
        ValueError: on a bad module name or ``keep < 1``.
        TypeError: when `meta` or the optimizer state holds something that is neither a tensor nor JSON.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    tensors: dict[str, Tensor] = {}
    for name, module in modules.items():
        if not name or "." in name or name in _RESERVED:
            raise ValueError(f"module name {name!r} is not allowed (no dots, not one of {_RESERVED})")
        for key, value in module.state_dict().items():
            if not isinstance(value, Tensor):
                raise TypeError(f"{name}.{key} is a {type(value).__name__}; checkpoints store tensors only")
            tensors[f"{name}.{key}"] = value
    state = optimizer.state_dict()
    optim = {
        "class": type(optimizer).__name__,
        "state": {str(i): _encode(s, f"optim.state.{i}", tensors) for i, s in state["state"].items()},
        "param_groups": [_encode(g, f"optim.param_groups.{i}", tensors) for i, g in enumerate(state["param_groups"])],
    }
    for name, value in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = value
    for r, states in enumerate(rng_states if rng_states is not None else [rng_state()]):
        tensors.update({_rank_key(k, r): v for k, v in states.items()})
    tensors = unshared_state(tensors)

    final = directory / f"step_{step:08d}.safetensors"
    record: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "epoch": int(epoch),
        "file": final.name,
        "sha256": None,
        "modules": list(modules),
        "rng_ranks": len(rng_states) if rng_states is not None else 1,
        "optimizer": optim,
        "tensors": sorted(tensors),
        "meta": meta,
    }
    json.dumps(record)  # fail on a non-JSON meta before anything is written

    sidecar = _sidecar(final)
    sidecar.unlink(missing_ok=True)  # re-saving a step: the old pair becomes incomplete before its file is replaced
    with atomic_file(final, fsync=True) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt", "step": str(step)})
        record["sha256"] = _sha256(tmp)
    write_text_atomic(sidecar, json.dumps(record, indent=1), fsync=True)  # last: it marks the checkpoint complete
    _fsync_dir(directory)
    logger.info("saved checkpoint %s (%d tensors)", final, len(tensors))
    _prune(directory, keep=keep, current=step)
    return final


def _prune(directory: Path, *, keep: int, current: int) -> None:
    """Delete all but the newest `keep` complete checkpoints, and incomplete leftovers older than `current`."""
    complete, incomplete = [], []
    for p in directory.glob("step_*.safetensors"):
        if m := _NAME.fullmatch(p.name):
            (complete if _sidecar(p).exists() else incomplete).append((int(m.group(1)), p))
    complete.sort(reverse=True)
    doomed = [p for s, p in complete[keep:] if s != current] + [p for s, p in incomplete if s < current]
    for p in doomed:
        _sidecar(p).unlink(missing_ok=True)  # sidecar first: a half-deleted checkpoint reads as incomplete
        p.unlink(missing_ok=True)
        logger.debug("deleted checkpoint %s", p)
    for p in directory.glob("step_*.json"):  # sidecars whose tensors are gone
        if (m := re.fullmatch(r"step_(\d+)\.json", p.name)) and int(m.group(1)) < current:
            if not p.with_suffix(".safetensors").exists():
                p.unlink(missing_ok=True)
    for p in directory.glob(".step_*.tmp-*"):  # temporaries of interrupted saves
        if (m := _TMP.fullmatch(p.name)) and int(m.group(1)) <= current:
            p.unlink(missing_ok=True)


def _read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar of `path` after checking it is complete and the sha256 matches; CheckpointError if not."""
    sidecar = _sidecar(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if not sidecar.exists():
        raise CheckpointError(f"{path}: no sidecar {sidecar.name}; the save was interrupted")
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{sidecar}: unreadable sidecar ({err})") from err
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{sidecar}: not a {FORMAT} sidecar")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{sidecar}: format version {record.get('format_version')}, expected {FORMAT_VERSION}")
    digest = _sha256(path)
    if digest != record.get("sha256"):
        raise CheckpointError(f"{path}: sha256 {digest} does not match the sidecar's {record.get('sha256')}")
    return record


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint in `directory`, or None.

    Complete means the sidecar is present and readable and the file's sha256 matches it. A newer incomplete or
    corrupt checkpoint is skipped with a warning (the previous one is used).

    Args:
        directory: checkpoint directory; a missing directory has no checkpoints.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None
    candidates = sorted(
        ((int(m.group(1)), p) for p in directory.glob("step_*.safetensors") if (m := _NAME.fullmatch(p.name))),
        reverse=True,
    )
    for _, path in candidates:
        try:
            _read_sidecar(path)
        except CheckpointError as err:
            logger.warning("skipping checkpoint: %s", err)
            continue
        return path
    return None


def _strict_check(path: Path, name: str, module: nn.Module, state: dict[str, Tensor]) -> None:
    expected, found = set(module.state_dict()), set(state)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{path.name}: module {name!r} ({type(module).__name__}) does not match the checkpoint: "
            f"missing keys {missing[:20]}{' …' if len(missing) > 20 else ''} ({len(missing)}), "
            f"unexpected keys {unexpected[:20]}{' …' if len(unexpected) > 20 else ''} ({len(unexpected)})"
        )


def load_checkpoint(
    path: Path,
    *,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
    rank: int = 0,
    map_location: str | torch.device = "cpu",
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into `modules` (strictly) and `optimizer`.

    Args:
        path: the ``.safetensors`` file (its ``.json`` sidecar must sit next to it).
        modules: name → module to load; each name must be in the checkpoint, and each module's keys must match
            exactly. Modules saved but not asked for are left alone.
        optimizer: restored (state per parameter index and param_groups hyper-parameters) when given; it must be
            the same class, built over the same parameters in the same groups, as the one saved.
        restore_rng: also restore the global torch, CUDA, numpy and python random states.
        rank: whose random states to restore (a multi-process run saves every rank's). A rank the checkpoint has
            no states for (the run now has more processes) keeps its own, with a warning.
        map_location: device the tensors are read onto before being copied into the modules.

    Returns:
        The sidecar dict (``step``, ``epoch``, ``meta``, ...) plus ``"extra_tensors"``: name → tensor.

    Raises:
        CheckpointError: incomplete or corrupt checkpoint, a missing module, keys that do not match (the message
            names the missing and unexpected keys), or an optimizer of another class.
    """
    path = Path(path)
    record = _read_sidecar(path)
    tensors = safetensors.torch.load_file(str(path), device=str(torch.device(map_location)))

    for name, module in modules.items():
        if name not in record["modules"]:
            raise CheckpointError(f"{path.name} has no module {name!r}; it holds {record['modules']}")
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        _strict_check(path, name, module, state)
        module.load_state_dict(state, strict=True)

    if optimizer is not None:
        optim = record["optimizer"]
        if optim["class"] != type(optimizer).__name__:
            raise CheckpointError(f"{path.name} holds {optim['class']} state, not {type(optimizer).__name__}")
        optimizer.load_state_dict(
            {
                "state": {int(i): _decode(s, tensors) for i, s in optim["state"].items()},
                "param_groups": [_decode(g, tensors) for g in optim["param_groups"]],
            }
        )

    if restore_rng:
        prefix = "rng." if rank == 0 else f"rng.rank{rank}."
        mine = {
            f"rng.{k.removeprefix(prefix)}": v
            for k, v in tensors.items()
            if k.startswith(prefix) and (rank > 0 or not k.startswith("rng.rank"))
        }
        if "rng.torch" in mine:
            _restore_rng(mine)
        else:
            logger.warning("%s holds no random states for rank %d; this rank keeps its own", path.name, rank)
    logger.info("loaded checkpoint %s (step %d)", path, record["step"])
    extra = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    return {**record, "extra_tensors": extra}


def resume_or_start(
    directory: Path,
    *,
    fingerprint: str,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
) -> dict | None:
    """Load the newest checkpoint of this run, or say that the run starts afresh (None); every rank calls it.

    A run resumes only its own checkpoints: those whose ``meta.run_fingerprint`` is `fingerprint` (the training
    config and the cache's checksums). Checkpoints of another run (the job reruns because its config or cache
    changed) move to ``checkpoints.old`` beside `directory`, replacing an older such folder, and the run starts
    afresh. Each rank restores its own random states (:func:`load_checkpoint` with its rank).

    Returns:
        What :func:`load_checkpoint` returns, or None.
    """
    directory = Path(directory)
    latest = latest_checkpoint(directory)
    if latest is not None:
        previous = json.loads(_sidecar(latest).read_text())["meta"].get("run_fingerprint")
        if previous != fingerprint:
            logger.warning("checkpoints in %s belong to another config or cache; starting afresh", directory)
            distributed.barrier()  # every rank has read the directory before it moves
            if distributed.is_main_process():
                old = directory.parent / "checkpoints.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
                directory.mkdir()
            distributed.barrier()
            return None
    if latest is None:
        return None
    record = load_checkpoint(latest, modules=modules, optimizer=optimizer, rank=distributed.rank())
    logger.info("resumed from %s at step %d", latest, record["step"])
    return record
