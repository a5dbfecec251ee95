"""mosic workflow: synthetic or real videos -> index -> (tracking, training, evaluation in later stages).

Run `snakemake --cores all` for the embedded demo; see README.md. The configuration is validated once,
here at parse time (rules/common.smk), so a bad config.yaml fails `snakemake -n` before any job starts.
"""

import os

from snakemake.utils import min_version

min_version("9.0")


# The shipped config.yaml holds every key with its default; --configfile / --config merge over it.
configfile: os.path.join(workflow.basedir, "config.yaml")


# `snakemake --report report.html`: this description, then the outputs marked with report() in the rules.
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/track.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        index=INDEX,
        clips=CLIPS,
        shards=SHARDS,
        tracking_metrics=f"{DS}/tracking_metrics.json" if CFG.dataset.kind == "synthetic" else [],
        backbones=[f"{TRAIN_ROOT}/{run}/backbone.safetensors" for run in RUNS],
        eval_table=f"{EVAL_DIR}/table.csv" if PROTOCOLS_ON else [],
        report_figures=REPORT_OUTPUTS,
