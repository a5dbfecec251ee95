"""Snakemake script for rule `evaluate`: typed config -> `mosic.evaluate.run.run_protocol`."""

from mosic.config import EvaluateConfig, section_from_dict
from mosic.evaluate.run import run_protocol
from mosic.gpu_slots import gpu_slots
from mosic.logs import job_logging
from mosic.provenance import provenance

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    cfg = section_from_dict(EvaluateConfig, snakemake.params.evaluate_cfg, "evaluate")
    with gpu_slots(snakemake.resources.gpu):  # this job's own GPU when several run side by side
        run_protocol(
            snakemake.wildcards.protocol,
            model=snakemake.input.model,
            model_name=snakemake.wildcards.model,
            cfg=cfg,
            image_root=snakemake.params.image_root,
            video_root=snakemake.params.video_root,
            out_path=snakemake.output[0],
            provenance=provenance(cfg, stage="evaluate", model=str(snakemake.input.model)),
            cache_dir=snakemake.params.cache,
        )
