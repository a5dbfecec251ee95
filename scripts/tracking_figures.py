"""Snakemake script for rule `tracking_figures`: tracking_metrics.json -> TAP-Vid accuracy figure."""

import logging

from mosic.logs import job_logging
from mosic.report.figures import plot_tracking_metrics

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    methods = plot_tracking_metrics(snakemake.input.metrics, snakemake.output[0])
    for name, m in methods.items():
        logging.getLogger("mosic.report").info(
            "%s: delta_avg %.3f, AJ %.3f, OA %.3f", name, m["delta_avg"], m["average_jaccard"], m["occlusion_accuracy"]
        )
