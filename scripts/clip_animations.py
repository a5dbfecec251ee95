"""Snakemake script for rule `clip_animations`: cached clips + two backbones -> GIFs and an HTML gallery."""

from pathlib import Path

import torch

from mosic.logs import job_logging
from mosic.report.clips import gallery_html, render_clip_animations

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    records = render_clip_animations(
        list(snakemake.input.shards),
        {snakemake.params.start_name: snakemake.input.start, snakemake.params.trained_name: snakemake.input.trained},
        list(snakemake.output.gifs),
        k=snakemake.params.k,
        input_size=snakemake.params.input_size,
        seed=snakemake.params.seed,
    )
    title = f"Tracks and cluster maps: {snakemake.params.start_name} vs {snakemake.params.trained_name}"
    Path(snakemake.output.gallery).write_text(gallery_html(records, title=title), encoding="utf-8")
