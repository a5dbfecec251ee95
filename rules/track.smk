"""Stage 1: track every clip of a shard into a Zarr shard (one job per shard); score tracks on synthetic GT."""

# The ground_truth tracker reads the synthetic scenes through the generator's code; other trackers do not
# depend on it (an edit there must not rerun LK on a real dataset).
GROUND_TRUTH_CODE = ["data/synthetic.py", "data/textures.py"] if CFG.track.tracker == "ground_truth" else []


rule track_shard:
    """Decode the shard's clips at the cache resolution, track the query grid, write the shard atomically."""
    input:
        index=INDEX,
        clips=CLIPS,
        code=sources(
            "tracking/__init__.py",
            "tracking/base.py",
            "tracking/lk.py",
            "tracking/cotracker.py",
            "tracking/shard.py",
            "tracking/ground_truth.py",
            "store/__init__.py",
            "store/schema.py",
            "store/writer.py",
            *GROUND_TRUTH_CODE,
        ),
    output:
        directory(f"{TRACK_DIR}/shard_{{shard}}.zarr"),
    log:
        f"{LOGS}/track_shard/{{shard}}.log",
    wildcard_constraints:
        shard=r"\d{5}",
    conda:
        "../envs/track.yaml"
    threads: CFG.track.threads
    resources:
        gpu=1 if CFG.track.tracker == "cotracker3" else 0,
    params:
        track_cfg=section("track"),
        num_frames=CFG.clips.num_frames,
        scenes=SCENES_DIR,
    script:
        "../scripts/track_shard.py"


rule tracking_metrics:
    """TAP-Vid metrics of the cached tracks against the synthetic dataset's exact trajectories."""
    input:
        shards=SHARDS,
        data=SYNTH_DIR,
        code=sources("tracking/evaluate.py", "tracking/ground_truth.py", "tracking/metrics.py", "data/synthetic.py"),
    output:
        f"{DS}/tracking_metrics.json",
    log:
        f"{LOGS}/tracking_metrics.log",
    conda:
        "../envs/track.yaml"
    params:
        scenes=f"{SYNTH_DIR}/ytvos/Scenes",
        track_cfg=section("track"),
    script:
        "../scripts/tracking_metrics.py"
