"""Stage 0: generate the synthetic demo dataset (when configured) and index the corpus into clips."""


rule synthetic_data:
    """Render the procedural video dataset (YouTube-VOS layout + GT tracks) and the VOC-layout image set."""
    input:
        code=code_inputs("scripts/synthetic_data.py"),
    output:
        directory(SYNTH_DIR),
    log:
        f"{LOGS}/synthetic_data.log",
    conda:
        "../envs/data.yaml"
    params:
        synthetic_cfg=section("synthetic"),
    script:
        "../scripts/synthetic_data.py"


# A checkpoint, so that the tracking jobs are judged only after it ran: a rule's consumers are rerun whenever it
# runs, but a checkpoint's are then compared file by file, and a shard's clip list that came out with the same
# bytes (same checksum) does not rerun that shard (track_shard input: shard_clips in rules/common.smk).
checkpoint index:
    """Probe every video (bad ones are recorded as skipped), sample clips, assign shards and write each shard's
    clip list."""
    input:
        data=SYNTH_DIR if CFG.dataset.kind == "synthetic" else [],
        code=code_inputs("scripts/index.py"),
    output:
        index_table=INDEX,
        clip_table=CLIPS,
        shard_clips=SHARD_CLIPS,
    log:
        f"{LOGS}/index.log",
    conda:
        "../envs/data.yaml"
    threads: CFG.index.threads
    params:
        root=DATA_ROOT,
        dataset_cfg=section("dataset"),
        index_cfg=section("index"),
        clips_cfg=section("clips"),
    script:
        "../scripts/index.py"
