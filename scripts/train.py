"""Entry point of rule `train`, started by torchrun (one process per GPU, or gloo processes on CPU).

    torchrun --standalone --nproc-per-node=N scripts/train.py --variant mosic --seed 0 \
        --train-config '<json of the train section>' --out DIR SHARD...

Reads the typed training config and the run (variant, seed), calls `mosic.train.loop.train`, and logs to stderr
(rank 0 at INFO).
"""

import argparse
import json
import logging
import os
import sys

from mosic.config import RunSpec, TrainConfig, run_record, section_from_dict
from mosic.provenance import provenance
from mosic.train.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, help="mosic (the tracker's tracks) or a control: shuffled, "
                        "static, transposed")  # fmt: skip
    parser.add_argument("--seed", required=True, type=int, help="the run's seed")
    parser.add_argument("--train-config", required=True, help="the train config section as JSON")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("shards", nargs="+", help="track-store shards")
    args = parser.parse_args()
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    cfg = section_from_dict(TrainConfig, json.loads(args.train_config), "train")
    run = RunSpec(variant=args.variant, seed=args.seed)
    prov = provenance(run_record(cfg, run), stage="train", shards=args.shards)
    train(cfg, run, args.shards, args.out, provenance=prov)


if __name__ == "__main__":
    main()
