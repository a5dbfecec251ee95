"""The index rule on the bad-input corpus: bad videos are recorded as skipped and never stop the job."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def run_index_rule(workdir: Path, dataset: dict) -> subprocess.CompletedProcess:
    """Run the workflow up to the index only (the target is the index's output)."""
    cfg = workdir / "cfg.yaml"
    # Real data: the demo's image-pretrained start (train.init: pretrain) needs the synthetic set.
    cfg.write_text(
        yaml.safe_dump({"dataset": dataset, "clips": {"num_frames": 4, "step": 1}, "train": {"init": "random"}})
    )
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    target = f"results/{dataset['name']}/index.parquet"
    return subprocess.run(
        [*cmd, target, "--cores", "2", "--configfile", str(cfg)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["videos", "frames"])
def test_index_rule_skips_bad_videos_with_reasons(tmp_path, corpus, layout):
    kind = "videos" if layout == "videos" else "ytvos"
    res = run_index_rule(
        tmp_path, {"name": "bad", "kind": kind, "root": str(corpus[layout]), "split": "", "on_error": "skip"}
    )
    assert res.returncode == 0, res.stderr[-3000:]
    index = pd.read_parquet(tmp_path / "results" / "bad" / "index.parquet").set_index("video_id")
    expected = corpus[f"expected_{layout}"]
    assert set(index.index) == set(expected)
    for vid, outcome in expected.items():
        row = index.loc[vid]
        if outcome == "ok":
            assert row["status"] == "ok", (vid, row["reason"])
        elif outcome in ("mixed frame sizes", "truncated:"):  # read correctly, with a note
            assert row["status"] == "ok" and outcome in row["reason"], (vid, row["reason"])
        else:
            assert row["status"] == "skipped" and outcome in row["reason"], (vid, row["reason"])
    log = (tmp_path / "results" / "logs" / "index.log").read_text()
    assert "skipped" in log
    clips = pd.read_parquet(tmp_path / "results" / "bad" / "clips.parquet")
    assert set(clips["video_id"]) == set(index.index[index["status"] == "ok"])


@pytest.mark.slow
def test_index_rule_fail_mode_names_the_file(tmp_path, corpus):
    res = run_index_rule(
        tmp_path, {"name": "bad", "kind": "videos", "root": str(corpus["videos"]), "split": "", "on_error": "fail"}
    )
    assert res.returncode != 0
    log = (tmp_path / "results" / "logs" / "index.log").read_text()
    assert "VideoReadError" in log and ".mp4" in log
    assert not (tmp_path / "results" / "bad" / "index.parquet").exists()
