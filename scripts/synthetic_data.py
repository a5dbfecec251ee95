"""Snakemake script for rule `synthetic_data`: typed config -> `mosic.data.synthetic.generate_synthetic`."""

from mosic.config import SyntheticConfig, section_from_dict
from mosic.data.synthetic import generate_synthetic
from mosic.fsutil import atomic_directory
from mosic.logs import job_logging
from mosic.provenance import provenance

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    cfg = section_from_dict(SyntheticConfig, snakemake.params.synthetic_cfg, "synthetic")
    with atomic_directory(snakemake.output[0]) as tmp:
        generate_synthetic(cfg, tmp, provenance=provenance(cfg, stage="synthetic_data"))
