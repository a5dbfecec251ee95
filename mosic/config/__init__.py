"""Typed, validated configuration for every stage of the pipeline.

`config.yaml` is parsed once, when the Snakefile loads, into frozen dataclasses, so a bad
configuration fails `snakemake -n` before any job starts. Each field carries its documentation and
its accepted values in `metadata`; :func:`parse_config` checks, for every key, that it is known, present,
of the right type and in range, and names the full key (``clips.step``) and what is accepted when not.

This package imports only the standard library: the Snakefile imports it at parse time, and importing
torch there would add seconds to every `snakemake` call. It holds the schema (:mod:`.schema`: the
dataclasses), the parser and validator (:mod:`.parse`) and what each job receives (:mod:`.jobs`: an evaluation
job's :class:`EvaluateJob`, a training run's :class:`RunSpec` beside the train section); everything public is
importable from ``mosic.config``.
"""

from mosic.config.jobs import (
    EvaluateJob,
    RunSpec,
    evaluate_gpus,
    evaluate_job,
    protocols_on,
    run_name,
    run_record,
    run_train_config,
    split_run_name,
    track_substep,
)
from mosic.config.parse import evaluate_job_from_dict, model_patch_size, parse_config, section_from_dict
from mosic.config.schema import *  # noqa: F403  (the dataclasses, listed in schema.__all__)
from mosic.config.schema import __all__ as _schema_all

__all__ = [
    *_schema_all,
    "parse_config",
    "section_from_dict",
    "evaluate_job_from_dict",
    "model_patch_size",
    "track_substep",
    "protocols_on",
    "EvaluateJob",
    "evaluate_job",
    "evaluate_gpus",
    "run_name",
    "split_run_name",
    "RunSpec",
    "run_train_config",
    "run_record",
]
