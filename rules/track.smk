"""Stage 1: track every clip of a shard into a Zarr shard (one job per shard); score tracks on synthetic GT."""

from mosic.config import track_substep

# The ground_truth tracker reads the synthetic scenes through the generator's code; other trackers do not
# depend on it (an edit there must not rerun LK on a real dataset). make_tracker imports tracking/ground_truth.py,
# and through it mosic.data.synthetic, for that tracker alone, so the others' code inputs skip it.
UNUSED_TRACKER_CODE = [] if CFG.track.tracker == "ground_truth" else ["mosic/tracking/ground_truth.py"]


rule track_shard:
    """Decode the shard's clips at the cache resolution, track the query grid, write the shard atomically."""
    input:
        clips=shard_clips,
        code=code_inputs("scripts/track_shard.py", skip=UNUSED_TRACKER_CODE),
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
        substep=track_substep(CFG),
        scenes=SCENES_DIR,
    script:
        "../scripts/track_shard.py"


rule tracking_metrics:
    """TAP-Vid metrics of the cached tracks against the synthetic dataset's exact trajectories."""
    input:
        shards=SHARDS,
        data=SYNTH_DIR,
        code=code_inputs("scripts/tracking_metrics.py"),
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
