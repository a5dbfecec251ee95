"""Shared test settings: no network, quiet wandb, one thread per library, paths to the repo and real videos."""

import os

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402
from snakemake_runner import TINY_CONFIG, run_snakemake  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    """A working directory where the whole pipeline ran once on the tiny config (tests/workflow/config.yaml).

    Shared by the workflow and report tests, which only read it or rerun it back to a complete state.
    """
    workdir = tmp_path_factory.mktemp("tiny_pipeline")
    res = run_snakemake(workdir, "--cores", "2", "--configfile", str(TINY_CONFIG))
    assert res.returncode == 0, res.stderr[-3000:]
    return workdir


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (where the Snakefile is)."""
    return REPO


@pytest.fixture
def default_config_dict() -> dict:
    """The shipped config.yaml as a plain dict (a fresh copy per test)."""
    return yaml.safe_load((REPO / "config.yaml").read_text())


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def real_videos() -> Path:
    """The folder of real test clips (``../shared/data/videos``, README table there, or ``$MOSIC_TEST_VIDEOS``);
    skips the test when it is absent."""
    folder = Path(os.environ.get("MOSIC_TEST_VIDEOS", REPO / "../shared/data/videos")).resolve()
    if not (folder / "apple.mp4").is_file():
        pytest.skip(f"real test videos not found at {folder} (set MOSIC_TEST_VIDEOS)")
    return folder
