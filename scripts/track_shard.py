"""Snakemake script for rule `track_shard`: typed config -> `mosic.tracking.shard.track_shard`."""

from mosic.config import TrackConfig, section_from_dict
from mosic.gpu_slots import gpu_slots
from mosic.logs import job_logging
from mosic.provenance import provenance
from mosic.tracking.shard import track_shard

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    track = section_from_dict(TrackConfig, snakemake.params.track_cfg, "track")
    with gpu_slots(snakemake.resources.gpu):  # this job's own GPU when several run side by side
        track_shard(
            shard=int(snakemake.wildcards.shard),
            clips_path=snakemake.input.clips,
            num_frames=snakemake.params.num_frames,
            track=track,
            out_path=snakemake.output[0],
            provenance=provenance(track, stage="track_shard", shard=int(snakemake.wildcards.shard)),
            scenes_dir=snakemake.params.scenes,
            substep=snakemake.params.substep,
        )
