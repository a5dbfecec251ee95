"""Logging for pipeline jobs: one log file per job holding log records, warnings and progress bars.

Snakemake gives every job a `log:` file. :func:`job_logging` points the root logger there and redirects
stderr to it as well, so tqdm progress bars and library warnings land in the same file a user tails.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def job_logging(log_path: str | Path | None, level: int = logging.INFO) -> Iterator[None]:
    """Send logging and stderr to `log_path` for the duration of the block (stderr only when None).

    Exceptions raised inside the block are logged with their traceback before they propagate, so the
    reason a job failed is in its log file.
    """
    root = logging.getLogger()
    old_level, old_handlers, old_stderr = root.level, list(root.handlers), sys.stderr
    stream = open(log_path, "a", buffering=1) if log_path else None  # noqa: SIM115 - closed in finally
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    root.handlers = [handler]
    root.setLevel(level)
    if stream is not None:
        sys.stderr = stream
    try:
        yield
    except BaseException:
        logging.getLogger("mosic").exception("job failed")
        raise
    finally:
        sys.stderr = old_stderr
        root.handlers, root.level = old_handlers, old_level
        if stream is not None:
            stream.close()
