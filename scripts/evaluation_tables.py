"""Snakemake script for rule `evaluation_tables`: summary.csv and table.csv -> one HTML page for the report."""

from pathlib import Path

from mosic.logs import job_logging
from mosic.report.figures import tables_html

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    page = tables_html(
        {
            "Summary: mean and std over seeds per variant (delta: against the start)": snakemake.input.summary,
            "Every model and metric": snakemake.input.table,
        },
        title="Evaluation of the starting and trained backbones",
    )
    Path(snakemake.output[0]).write_text(page, encoding="utf-8")
