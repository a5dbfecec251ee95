"""Running the workflow from tests: the tiny test configuration and a snakemake subprocess helper."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "tests" / "workflow" / "config.yaml"


def run_snakemake(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile", timeout: int = 900):
    """Run snakemake on the workflow with `workdir` as working directory; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
