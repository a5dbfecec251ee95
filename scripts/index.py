"""Snakemake script for rule `index`: typed configs -> `mosic.data.index.run_index`."""

from mosic.config import ClipsConfig, DatasetConfig, IndexConfig, section_from_dict
from mosic.data.index import run_index
from mosic.logs import job_logging
from mosic.provenance import provenance

snakemake = globals()["snakemake"]  # injected by Snakemake's script directive

with job_logging(snakemake.log[0]):
    dataset = section_from_dict(DatasetConfig, snakemake.params.dataset_cfg, "dataset")
    index = section_from_dict(IndexConfig, snakemake.params.index_cfg, "index")
    clips = section_from_dict(ClipsConfig, snakemake.params.clips_cfg, "clips")
    run_index(
        root=snakemake.params.root,
        dataset=dataset,
        index=index,
        clips=clips,
        index_path=snakemake.output.index_table,
        clips_path=snakemake.output.clip_table,
        shard_paths=snakemake.output.shard_clips,
        provenance=provenance(
            {"dataset": dataset, "index": index, "clips": clips}, stage="index", root=str(snakemake.params.root)
        ),
    )
