"""Provenance records attached to every artefact: the config that made it, the package version, the git sha.

The workflow reruns the jobs whose scripts import an edited package module (rules/common.smk `code_inputs`, as
Snakemake alone does not, snakemake issue #2192); these records are how a user tells later, away from the
workflow, whether a cache, checkpoint or result is stale. Standard library only.
"""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

import mosic
from mosic.config import config_hash, to_dict

_REPO = Path(__file__).resolve().parent.parent


@functools.cache
def git_sha() -> str:
    """The git commit of the mosic checkout, with ``-dirty`` when it has uncommitted changes; ``unknown`` otherwise."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def provenance(config: Any, **extra: Any) -> dict[str, Any]:
    """A JSON-serialisable record of what produced an artefact.

    Args:
        config: the config section (a dataclass) that made the artefact.
        **extra: further fields to record (e.g. ``stage="index"``).
    """
    return {
        "mosic_version": mosic.__version__,
        "git_sha": git_sha(),
        "config": to_dict(config),
        "config_hash": config_hash(config),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        **extra,
    }
