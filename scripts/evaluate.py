"""Snakemake script for rule `evaluate`: typed job -> `mosic.evaluate.run.run_protocol`."""

from mosic.config import evaluate_job_from_dict
from mosic.evaluate.run import run_protocol
from mosic.gpu_slots import gpu_slots
from mosic.logs import job_logging
from mosic.provenance import provenance

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    job = evaluate_job_from_dict(snakemake.wildcards.protocol, snakemake.params.evaluate_cfg)
    with gpu_slots(snakemake.resources.gpu):  # this job's own GPU when several run side by side
        run_protocol(
            job,
            model=snakemake.input.model,
            model_name=snakemake.wildcards.model,
            image_root=snakemake.params.image_root,
            video_root=snakemake.params.video_root,
            out_path=snakemake.output[0],
            provenance=provenance(job.as_dict(), stage="evaluate", model=str(snakemake.input.model)),
            cache_dir=snakemake.params.cache,
        )
