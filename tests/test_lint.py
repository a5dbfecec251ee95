"""Lint gates, run as tests so the README's one test command covers them: ruff, snakefmt, snakemake --lint."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")])
def test_ruff(args):
    ruff = shutil.which("ruff") or pytest.fail("ruff is not installed (pip install -e '.[test]')")
    res = run(ruff, *args)
    assert res.returncode == 0, res.stdout + res.stderr


def test_snakefmt():
    snakefmt = shutil.which("snakefmt") or pytest.fail("snakefmt is not installed (pip install -e '.[test]')")
    res = run(snakefmt, "--check", ".")
    assert res.returncode == 0, res.stdout + res.stderr


def test_snakemake_lint():
    res = run(sys.executable, "-m", "snakemake", "--lint", "--cores", "1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations" in res.stdout + res.stderr
