"""The Snakemake workflow: dry runs, config errors at parse time, and a tiny real run of the data stage."""

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake_runner import REPO, TINY_CONFIG, run_snakemake

TINY = TINY_CONFIG
snakemake = run_snakemake


def test_dry_run_default_config(tmp_path):
    res = snakemake(tmp_path, "-n", "--cores", "1")
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    for rule in ("synthetic_data", "index", "track_shard", "tracking_metrics", "train", "evaluate", "eval_table"):
        assert rule in out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"clips": {"stepp": 3}}, "unknown config key 'clips.stepp'"),
        ({"clips": {"step": "six"}}, "config key 'clips.step' must be an integer"),
        ({"clips": {"step": 0}}, "config key 'clips.step' is 0; accepted values: an integer >= 1"),
        ({"dataset": {"kind": "kinetics"}}, "accepted values: 'synthetic', 'ytvos', 'videos', 'davis'"),
        ({"clips": {"num_frames": 1}}, "config key 'clips.num_frames' is 1; accepted values: an integer >= 2"),
        ({"train": {"input_size": 130}}, "config key 'train.input_size' is 130; accepted values: a multiple of"),
    ],
)
def test_bad_config_fails_dry_run_naming_the_key(tmp_path, override, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(override))
    res = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(cfg))
    assert res.returncode != 0
    assert message in res.stderr + res.stdout


def test_missing_key_fails_dry_run(tmp_path):
    """A config.yaml without a key fails at parse time (overrides can only add keys, so edit a copy)."""
    wf = tmp_path / "wf"
    wf.mkdir()
    for item in ("Snakefile", "rules", "scripts", "mosic", "envs"):
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, wf / item)
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    del cfg["clips"]["seed"]
    (wf / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n", "--cores", "1", snakefile=wf / "Snakefile")
    assert res.returncode != 0
    assert "missing config key 'clips.seed'" in res.stderr + res.stdout


@pytest.mark.slow
@pytest.mark.distributed
def test_tiny_pipeline_outputs(tiny_pipeline):
    tmp_path = tiny_pipeline
    ds = tmp_path / "results" / "synthetic"
    assert sorted(p.name for p in (ds / "data" / "ytvos" / "JPEGImages").iterdir()) == [
        "synth_00000",
        "synth_00001",
        "synth_00002",
    ]
    assert (ds / "data" / "voc" / "ImageSets" / "Segmentation" / "train.txt").exists()
    index = pd.read_parquet(ds / "index.parquet")
    assert list(index["status"]) == ["ok"] * 3
    assert set(index["num_frames"]) == {16} and set(index["height"]) == {64}
    clips = pd.read_parquet(ds / "clips.parquet")
    assert len(clips) == 6 and all(len(f) == 4 for f in clips["frames"])
    assert set(clips["shard"]) <= {0, 1}

    from mosic.data.index import read_provenance

    prov = read_provenance(ds / "index.parquet")
    assert prov["config"]["clips"]["num_frames"] == 4 and prov["mosic_version"] and prov["git_sha"]
    log = (tmp_path / "results" / "logs" / "index.log").read_text()
    assert "indexed 3 videos" in log

    from mosic.store import ShardReader, verify_shard

    shards = sorted((ds / "tracks").glob("shard_*.zarr"))
    assert [p.name for p in shards] == ["shard_00000.zarr", "shard_00001.zarr"]
    assert all(verify_shard(p) == [] for p in shards)
    assert sum(len(ShardReader(p)) for p in shards) == 6
    metrics = json.loads((ds / "tracking_metrics.json").read_text())
    assert metrics["clips"] == 6 and 0 < metrics["cached"]["average_jaccard"] <= 1
    assert metrics["provenance"]["config"]["track"]["grid"] == 8
    assert "wrote" in (tmp_path / "results" / "logs" / "track_shard" / "00000.log").read_text()

    run = ds / "train" / "mosic_s0"
    with open(run / "metrics.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + 2  # header + 2 steps (6 clips, 2 ranks x 2 clips, 2 epochs)
    assert json.loads((run / "final.json").read_text())["steps"] == 2
    train_log = (tmp_path / "results" / "logs" / "train" / "mosic_s0.log").read_text()
    assert "over 2 process(es)" in train_log
    from mosic.model.export import load_exported

    assert load_exported(run / "backbone.safetensors").num_features == 64
    control = json.loads((ds / "train" / "static_s0" / "backbone.safetensors.json").read_text())["meta"]
    assert control["config"]["track_source"] == "static" and control["config"]["seed"] == 0

    table = pd.read_csv(tmp_path / "results" / "eval" / "table.csv")
    assert set(table["model"]) == {"start_s0", "mosic_s0", "static_s0", "labelled_s0"}
    # The tiny config keeps the demo's 2 faces, so the cross-view protocols run too (evaluate.*_xview: auto).
    protocols = {"linear", "clustering", "hummingbird", "videoseg", "hummingbird_xview", "clustering_xview"}
    assert set(table["protocol"]) == protocols
    assert table[table["model"] == "start_s0"]["delta"].abs().max() == 0
    summary = pd.read_csv(tmp_path / "results" / "eval" / "summary.csv")
    assert set(summary["variant"]) == {"start", "mosic", "static", "labelled"} and set(summary["seeds"]) == {1}
    # the labelled reference: the start trained 2 more steps with labels on every face, against start_s0
    labelled = json.loads((ds / "labelled" / "pretrain.json").read_text())
    assert labelled["split"] == "train" and labelled["steps"] == 2 and labelled["init"].endswith("backbone.safetensors")
    assert labelled["provenance"]["stage"] == "labelled"
    assert table[table["model"] == "labelled_s0"]["delta"].notna().all()
    assert (tmp_path / "results" / "eval" / "deltas.png").stat().st_size > 1000
    assert (tmp_path / "results" / "eval" / "examples.png").stat().st_size > 1000  # image | GT | predictions
    result = json.loads((tmp_path / "results" / "eval" / "mosic_s0" / "linear" / "synthetic.json").read_text())
    assert result["provenance"]["git_sha"] and 0 <= result["metrics"]["miou"] <= 1


@pytest.mark.slow
@pytest.mark.distributed
def test_tiny_pipeline_reruns_only_stale_jobs(tiny_pipeline):
    tmp_path = tiny_pipeline
    ds = tmp_path / "results" / "synthetic"
    shards = sorted((ds / "tracks").glob("shard_*.zarr"))
    from mosic.store import verify_shard

    # Nothing to do on a second run.
    res = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(TINY))
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr

    def dry_run_with(section: str, key: str, value) -> str:
        """Jobs a dry run lists with one tiny-config key changed (`rule <name>:` lines name them)."""
        tiny = yaml.safe_load(TINY.read_text())
        block = tiny.setdefault(section, {})
        if isinstance(value, dict):
            block.setdefault(key, {}).update(value)  # one nested key, the others as in the tiny config
        else:
            block[key] = value
        over = tmp_path / "over.yaml"
        over.write_text(yaml.safe_dump(tiny))
        res = snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(over))
        assert res.returncode == 0, res.stderr[-3000:]
        return res.stdout + res.stderr

    # An evaluation setting reruns only that protocol's evaluations and the tables.
    out = dry_run_with("evaluate", "hummingbird", {"k": 3})
    assert "rule evaluate:" in out and "rule eval_table:" in out and "rule evaluation_tables:" in out
    assert "protocol=hummingbird" in out and "protocol=linear" not in out and "protocol=videoseg" not in out
    assert "rule train:" not in out and "rule training_curves:" not in out and "rule track_shard:" not in out

    # A training setting reruns training onwards, not tracking.
    out = dry_run_with("train", "lr_head", 0.002)
    assert "rule train:" in out and "rule evaluate:" in out and "rule eval_table:" in out
    assert "rule training_curves:" in out and "rule clip_animations:" in out
    assert "rule track_shard:" not in out and "checkpoint index:" not in out

    # Another seed trains only the new runs; the existing ones are kept.
    out = dry_run_with("runs", "seeds", [0, 1])
    assert "variant=mosic, seed=1" in out.replace("seed=1, variant=mosic", "variant=mosic, seed=1")
    assert "seed=0" not in out and "rule track_shard:" not in out

    # A clip setting reruns the index, not the data generation.
    out = dry_run_with("clips", "step", 3)
    assert "checkpoint index:" in out and "rule synthetic_data:" not in out

    # A tracker setting reruns tracking onwards, not the index.
    out = dry_run_with("track", "lk", {"fb_threshold": 2.0})
    assert "rule track_shard:" in out and "rule tracking_metrics:" in out and "checkpoint index:" not in out

    # Deleting one shard recreates only that shard (and the metrics that read it).
    shutil.rmtree(shards[1])
    res = snakemake(tmp_path, "--cores", "2", "--configfile", str(TINY))
    assert res.returncode == 0, res.stderr[-3000:]
    assert verify_shard(shards[1]) == []
    out = res.stdout + res.stderr
    assert "wildcards: shard=00001" in out and "shard=00000" not in out and "checkpoint index" not in out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "stale", "kept"),
    [
        ("mosic/data/augment.py", {"train", "evaluate"}, {"index", "track_shard"}),
        ("mosic/store/reader.py", {"train", "tracking_metrics"}, {"index", "synthetic_data"}),
        ("mosic/model/export.py", {"train", "evaluate"}, {"track_shard", "tracking_metrics"}),
        ("mosic/data/frames.py", {"index", "track_shard"}, {"synthetic_data", "train"}),  # the frame decoder
        ("mosic/evaluate/hummingbird.py", {"evaluate"}, {"train", "track_shard"}),  # evaluation only
        # The generator's modules; the lk tracker (tiny config) does not import it, the ground_truth one does.
        ("mosic/data/synthetic/render.py", {"synthetic_data", "tracking_metrics"}, {"track_shard", "index"}),
    ],
)
def test_code_edit_reruns_the_rules_that_import_it(tiny_pipeline, module, stale, kept):
    """Editing a package module makes stale the jobs of the rules whose scripts import it (rules/common.smk
    code_inputs), and no job of a rule that does not; Snakemake itself does not see package edits (#2192)."""
    # An edit is simulated by a newer mtime, so the shared checkout's sources are never rewritten; Snakemake
    # would see through that by the checksums it records of small inputs, so they are turned off here.
    args = ("--cores", "2", "--configfile", str(TINY), "--max-checksum-file-size", "0")
    summary = snakemake(tiny_pipeline, "--detailed-summary", *args)
    rows = [line.split("\t") for line in summary.stdout.splitlines()[1:]]  # output_file, date, rule, ..., plan
    assert rows and all(row[-1] == "no update" for row in rows), "stale before the edit (checkout edited meanwhile?)"
    path = REPO / module
    before = path.stat()
    jobs = {}
    try:
        os.utime(path)  # newer than every output
        for rule in stale | kept:
            # Only this rule's jobs: a job downstream of another stale job would give only that as its reason.
            targets = [row[0] for row in rows if row[2] == rule]
            res = snakemake(tiny_pipeline, *targets, "--allowed-rules", rule, "-n", *args)
            assert res.returncode == 0, res.stderr[-3000:]
            jobs[rule] = re.findall(
                r"^(?:rule|checkpoint) \w+:\n(?:    .*\n)*?    reason: (.*)$", res.stdout + res.stderr, flags=re.M
            )
    finally:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    for rule in stale:
        assert jobs[rule] and all(str(path) in reason for reason in jobs[rule]), f"{rule}: {jobs[rule]}"
    for rule in kept:
        assert not jobs[rule], f"{rule}: {jobs[rule]}"


def _declared_gpus(tmp_path, override: dict) -> dict[str, set[int]]:
    """The `gpu` resource of each job of a dry run with --resources gpu=8, by rule (absent = none declared)."""
    cfg = tmp_path / "gpu.yaml"
    cfg.write_text(yaml.safe_dump(override))
    res = snakemake(tmp_path, "-n", "--cores", "8", "--resources", "gpu=8", "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = re.split(r"\n(?=rule |localrule |checkpoint )", res.stdout + res.stderr)
    gpus = {}
    for job in jobs:
        name = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", job)
        found = re.search(r"resources: .*?\bgpu=(\d+)", job)
        if name and found:
            gpus.setdefault(name.group(1), set()).add(int(found.group(1)))
    return gpus


def test_gpu_rules_declare_their_gpus(tmp_path):
    """With --resources gpu=8, tracking shards ask one GPU each (CoTracker3), training train.gpus, evaluation one."""
    gpus = _declared_gpus(tmp_path, {"track": {"tracker": "cotracker3"}, "train": {"gpus": 4}})
    assert gpus["track_shard"] == {1} and gpus["train"] == {4} and gpus["evaluate"] == {1}
    assert gpus.get("index", {0}) == {0} and gpus.get("synthetic_data", {0}) == {0}


@pytest.mark.parametrize(
    ("device", "train_gpus", "expected"),
    [("auto", 4, {1}), ("auto", 0, {0}), ("cpu", 4, {0}), ("cuda", 0, {1})],
)
def test_evaluation_gpu_follows_evaluate_device(tmp_path, device, train_gpus, expected):
    """Evaluation reserves a GPU when it computes on one (evaluate.device), not because training uses GPUs."""
    gpus = _declared_gpus(tmp_path, {"evaluate": {"device": device}, "train": {"gpus": train_gpus}})
    assert gpus.get("evaluate", {0}) == expected
    assert gpus.get("train", {0}) == {train_gpus}


@pytest.mark.slow
def test_failed_index_rerun_leaves_no_index(tmp_path):
    """README, "Bad input": a rerun with on_error: fail that meets a bad video leaves no index behind."""
    from PIL import Image

    rng = np.random.default_rng(0)
    frames = tmp_path / "corpus" / "JPEGImages"
    for video in ("good_a", "good_b"):
        (frames / video).mkdir(parents=True)
        for t in range(6):
            Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(frames / video / f"{t:05d}.jpg")

    def index_with(on_error: str):
        dataset = {"name": "x", "kind": "ytvos", "root": str(frames.parent), "split": "", "on_error": on_error}
        cfg = tmp_path / f"{on_error}.yaml"
        # Real data: the demo's image-pretrained start (train.init: pretrain) needs the synthetic set.
        cfg.write_text(yaml.safe_dump({"dataset": dataset, "clips": {"num_frames": 4, "step": 1},
                                       "train": {"init": "random"}}))  # fmt: skip
        return snakemake(tmp_path, "results/x/index.parquet", "--cores", "1", "--configfile", str(cfg))

    outputs = [tmp_path / "results" / "x" / name for name in ("index.parquet", "clips.parquet")]
    res = index_with("skip")
    assert res.returncode == 0, res.stderr[-3000:]
    assert all(p.exists() for p in outputs)
    (frames / "bad_c").mkdir()
    for t in range(6):
        (frames / "bad_c" / f"{t:05d}.jpg").write_bytes(b"not a jpeg")
    res = index_with("fail")  # new params: Snakemake reruns the index, deleting its outputs first
    assert res.returncode != 0
    assert "bad_c" in (tmp_path / "results" / "logs" / "index.log").read_text()
    assert not any(p.exists() for p in outputs)
    bad_input = (REPO / "README.md").read_text().split("### Bad input", 1)[1].split("\n\n", 2)[1]
    assert "left untouched" not in bad_input and "deletes the index job's" in bad_input


@pytest.mark.slow
def test_ground_truth_tracker_caches_the_synthetic_tracks(tmp_path):
    """track.tracker: ground_truth runs through the workflow: the rule gives the job the synthetic scenes."""
    from mosic.store import ShardReader, verify_shard

    cfg = tmp_path / "gt.yaml"
    cfg.write_text(yaml.safe_dump({"track": {"tracker": "ground_truth"}}))
    shard = "results/synthetic/tracks/shard_00000.zarr"
    res = snakemake(tmp_path, shard, "--cores", "2", "--configfile", str(TINY), "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert verify_shard(tmp_path / shard) == []
    reader = ShardReader(tmp_path / shard)
    assert reader.attrs["tracker"]["name"] == "ground_truth" and len(reader) > 0
    # Not synthetic data: refused at parse time, naming the key.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"track": {"tracker": "ground_truth"}, "dataset": {"kind": "davis", "root": "x"}}))
    res = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(bad))
    assert res.returncode != 0 and "config key 'track.tracker' is 'ground_truth'" in res.stderr + res.stdout


@pytest.mark.slow
def test_adding_a_video_retracks_only_its_shard(tmp_path):
    """README, "The index": after a video is added to a real dataset and the index rerun, only the shard that
    receives its clips is tracked again; the other shards' stores are left as they were."""
    from PIL import Image

    from mosic.data.clips import shard_of

    rng = np.random.default_rng(0)
    frames = tmp_path / "corpus" / "JPEGImages"

    def add_video(name: str) -> None:
        (frames / name).mkdir(parents=True)
        for t in range(6):
            Image.fromarray(rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)).save(frames / name / f"{t:05d}.jpg")

    videos, new = ["bear", "cat", "fox"], "owl"
    assert [shard_of(v, 3) for v in [*videos, new]] == [0, 1, 2, 1]
    for video in videos:
        add_video(video)
    cfg = tmp_path / "real.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "x", "kind": "ytvos", "root": str(frames.parent), "split": ""},
                "clips": {"num_frames": 4, "step": 1, "clips_per_video": 2, "num_shards": 3},
                "track": {"tracker": "lk", "height": 32, "width": 32, "grid": 4, "threads": 1},
                # The demo's image-pretrained start (train.init: pretrain) needs the synthetic set.
                "train": {"init": "random", "num_points": 16},
            }
        )
    )
    shards = [tmp_path / "results" / "x" / "tracks" / f"shard_{s:05d}.zarr" for s in range(3)]
    targets = [str(p.relative_to(tmp_path)) for p in shards]

    def tracked(*args: str) -> set[int]:
        res = snakemake(tmp_path, *targets, "--cores", "2", "--configfile", str(cfg), *args)
        assert res.returncode == 0, res.stderr[-3000:]
        return {int(s) for s in re.findall(r"^\s+wildcards: shard=(\d+)$", res.stdout + res.stderr, flags=re.M)}

    def snapshot(path) -> dict[str, tuple[int, bytes]]:
        """Each file of a store: its modification time and bytes."""
        files = [f for f in path.rglob("*") if f.is_file()]
        return {str(f.relative_to(path)): (f.stat().st_mtime_ns, f.read_bytes()) for f in files}

    assert tracked() == {0, 1, 2}
    before = [snapshot(p) for p in shards]
    add_video(new)
    # Real data: the index has no data input, so new videos need the index rerun (README).
    assert tracked("--forcerun", "index") == {1}
    assert snapshot(shards[0]) == before[0] and snapshot(shards[2]) == before[2]
    from mosic.store import ShardReader

    assert new in ShardReader(shards[1]).videos
    res = snakemake(tmp_path, *targets, "-n", "--cores", "2", "--configfile", str(cfg))
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr, res.stdout[-3000:]
