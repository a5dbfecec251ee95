"""Snakemake script for rules `pretrain` and `labelled`: typed config -> `mosic.train.pretrain.run_pretrain`."""

from mosic.config import PretrainConfig, section_from_dict
from mosic.logs import job_logging
from mosic.provenance import provenance
from mosic.train.pretrain import run_pretrain

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    cfg = section_from_dict(PretrainConfig, snakemake.params.pretrain_cfg, "pretrain")
    p = snakemake.params
    prov = provenance(cfg, stage=snakemake.rule, model=p.model, input_size=p.input_size)
    # rule labelled: the start (input init) trained further on split train; rule pretrain: a fresh start
    run_pretrain(cfg, f"{snakemake.input.data}/voc", snakemake.output[0], model=p.model, input_size=p.input_size,
                 faces=p.faces, provenance=prov, split=p.split, init=snakemake.input.get("init"))  # fmt: skip
