"""Snakemake script for rule `tracking_metrics`: cached shards + synthetic GT -> TAP-Vid metrics JSON."""

import json

from mosic.logs import job_logging
from mosic.provenance import provenance
from mosic.tracking.evaluate import evaluate_shards

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    shards = list(snakemake.input.shards)
    result = evaluate_shards(shards, snakemake.params.scenes)
    result["provenance"] = provenance({"track": snakemake.params.track_cfg}, stage="tracking_metrics", shards=shards)
    with open(snakemake.output[0], "w") as f:
        json.dump(result, f, indent=2)
