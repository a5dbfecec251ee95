"""Parse and validate the configuration once; paths and helpers shared by every rule file."""

import json
import os
import sys

sys.path.insert(0, workflow.basedir)
# Jobs import the workflow's own `mosic` package whether or not it is installed (e.g. in --sdm conda envs,
# which hold only third-party packages); SLURM jobs re-parse this file and set it again.
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p))

from mosic.codedeps import import_closure
from mosic.config import (
    PROTOCOLS,
    ConfigError,
    evaluate_gpus,
    evaluate_job,
    labelled_reference_on,
    parse_config,
    protocols_on,
    run_name,
    run_train_config,
    to_dict,
)

try:
    CFG = parse_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

OUT = CFG.out_dir
DS = f"{OUT}/{CFG.dataset.name}"
LOGS = f"{OUT}/logs"
# Where the generated demo data lives (kind = synthetic) and the root the index reads.
SYNTH_DIR = f"{DS}/data"
DATA_ROOT = f"{SYNTH_DIR}/ytvos" if CFG.dataset.kind == "synthetic" else CFG.dataset.root
# Scene descriptions the synthetic generator writes next to its videos (read by track.tracker = ground_truth).
SCENES_DIR = f"{DATA_ROOT}/Scenes"
INDEX = f"{DS}/index.parquet"
CLIPS = f"{DS}/clips.parquet"
# Each tracking shard's clip list (written by the index checkpoint; the tracking job's only data input).
SHARD_CLIPS = [f"{DS}/clips/shard_{i:05d}.parquet" for i in range(CFG.clips.num_shards)]
TRACK_DIR = f"{DS}/tracks"
SHARDS = [f"{TRACK_DIR}/shard_{i:05d}.zarr" for i in range(CFG.clips.num_shards)]
# One training run per variant and seed: `mosic` (the tracker's tracks) and each control (runs.controls).
VARIANTS = ["mosic", *CFG.runs.controls]
RUNS = [run_name(v, s) for s in CFG.runs.seeds for v in VARIANTS]
TRAIN_ROOT = f"{DS}/train"
# The image-pretrained start of train.init: pretrain (rule pretrain).
PRETRAIN_BACKBONE = f"{DS}/pretrain/backbone.safetensors"
# The train section every run receives (with train.init: pretrain, the pretrain rule's backbone as its init); a
# run's variant and seed come beside it, from the train rule's wildcards.
TRAIN_SECTION = to_dict(run_train_config(CFG, pretrain_backbone=PRETRAIN_BACKBONE))
EVAL_DIR = f"{OUT}/eval"
# Evaluated side by side: each seed's starting backbone (exported by its mosic run as training begins;
# the controls of a seed start from the same weights) and every trained run.
MODELS = {
    run_name("start", s): f"{TRAIN_ROOT}/{run_name('mosic', s)}/initial_backbone.safetensors" for s in CFG.runs.seeds
} | {run: f"{TRAIN_ROOT}/{run}/backbone.safetensors" for run in RUNS}
# The labelled reference (runs.labelled_steps > 0; made by the labelled rule), compared with the first seed's start.
LABELLED_BACKBONE = f"{DS}/labelled/backbone.safetensors"
MODELS |= {run_name("labelled", CFG.runs.seeds[0]): LABELLED_BACKBONE} if labelled_reference_on(CFG) else {}
_EV = CFG.evaluate
# The enabled protocols; the cross-view ones only on the synthetic image set with faces (mosic.config.protocols_on).
PROTOCOLS_ON = protocols_on(CFG)
EVAL_DATASET = {p: _EV.video_dataset.kind if p == "videoseg" else _EV.image_dataset.kind for p in PROTOCOLS}
EVAL_RESULTS = [f"{EVAL_DIR}/{m}/{p}/{EVAL_DATASET[p]}.json" for m in MODELS for p in PROTOCOLS_ON]
EVAL_IMAGE_ROOT = f"{SYNTH_DIR}/voc" if _EV.image_dataset.kind == "synthetic" else _EV.image_dataset.root
EVAL_VIDEO_ROOT = f"{SYNTH_DIR}/ytvos" if _EV.video_dataset.kind == "synthetic" else _EV.video_dataset.root


def code_inputs(*scripts, skip=()):
    """The package files that `scripts` import, directly or not, as inputs: Snakemake does not see edits to
    them (snakemake issue #2192). `scripts` (relative to the workflow) are the rule's script, which Snakemake
    tracks itself, and the package modules its shell command runs with `python -m`; `skip`: modules imported
    only under a config choice that is off (mosic.codedeps.import_closure)."""
    return import_closure(workflow.basedir, *scripts, skip=skip)


def shard_clips(wildcards):
    """Input of track_shard: the shard's clip list, asked for once the index checkpoint has run
    (checkpoints.index.get raises until then), so the shard is tracked again only when its own list changed,
    not whenever the index reran (rules/data.smk)."""
    checkpoints.index.get()
    return f"{DS}/clips/shard_{wildcards.shard}.parquet"


def section(name):
    """One config section as a plain dict for params, so edits to other sections never rerun the job."""
    return to_dict(getattr(CFG, name))
