"""What a benchmark ran on: CPU, memory, platform, and the versions of the libraries it measured.

Imported by the scripts in this folder (run as ``python benchmarks/<name>.py``, so this folder is on sys.path).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# The mosic of this checkout, installed or not (the scripts import this module before they set their path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mosic  # noqa: E402
from mosic.provenance import git_sha  # noqa: E402


def machine_info(**versions: object) -> dict[str, object]:
    """CPU count and model, memory, platform, Python and mosic versions, the checkout's git commit (``-dirty`` with
    uncommitted changes), plus the given library versions."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mosic": mosic.__version__,
        "git_sha": git_sha(),
        **versions,
    }
