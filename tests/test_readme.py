"""The README's quick start is exactly two command lines, and CI runs the second one word for word."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_quick_start_is_install_and_demo_then_install_and_tests():
    lines = quick_start()
    assert len(lines) == 2
    assert lines[0].startswith("pip install") and lines[0].endswith("snakemake --cores all")
    assert lines[1].startswith("pip install") and lines[1].endswith("pytest")
    assert "torch==2.14.1" in lines[0] and "torch==2.14.1" in lines[1]


def test_ci_extracts_the_quick_start_test_line():
    script = (REPO / ".ci" / "run").read_text()
    awk = script.split("test_cmd=$(", 1)[1].split(")\n", 1)[0]
    out = subprocess.run(["bash", "-c", awk], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    assert out == quick_start()[1]
