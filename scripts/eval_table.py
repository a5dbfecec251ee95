"""Snakemake script for rule `eval_table`: result JSONs -> table with deltas + plot."""

from pathlib import Path

from mosic.evaluate.run import aggregate
from mosic.logs import job_logging

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    aggregate(list(snakemake.input.results), Path(snakemake.output.table).parent)
