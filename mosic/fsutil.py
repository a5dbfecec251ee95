"""Filesystem helpers that never leave a half-written artefact under its final name."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_directory", "atomic_file", "write_text_atomic"]


@contextlib.contextmanager
def atomic_file(final: str | Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write; rename it to `final` only if the block succeeds.

    The temporary file, ``.<name>.tmp-<pid>`` next to `final` (same filesystem, so the rename is atomic), is
    removed whatever happens; a reader of `final` sees the old file or the complete new one, never a part.

    Args:
        final: the file to (re)place.
        fsync: flush the temporary file to disk before the rename (checkpoints: the rename must not outlive
            the data after a power cut).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = False) -> None:
    """Write `text` (UTF-8) to `path` through :func:`atomic_file`."""
    with atomic_file(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory to fill; rename it to `final` only if the block succeeds.

    The temporary directory sits next to `final` (same filesystem, so the rename is atomic) and is
    removed on failure. An existing `final` is replaced only after the new one is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
