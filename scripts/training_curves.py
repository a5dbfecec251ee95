"""Snakemake script for rule `training_curves`: every run's metrics.csv -> loss and entropy plots."""

from mosic.logs import job_logging
from mosic.report.figures import plot_training_curves

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    paths = dict(zip(snakemake.params.runs, snakemake.input.metrics, strict=True))
    plot_training_curves(
        paths, snakemake.output.loss, snakemake.output.entropy, num_prototypes=snakemake.params.num_prototypes
    )
