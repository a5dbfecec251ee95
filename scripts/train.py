"""Entry point of rule `train`, started by torchrun (one process per GPU, or gloo processes on CPU).

    torchrun --standalone --nproc-per-node=N scripts/train.py --train-config '<json>' --out DIR SHARD...

Reads the typed training config, calls `mosic.train.loop.train`, and logs to stderr (rank 0 at INFO).
"""

import argparse
import json
import logging
import os
import sys

from mosic.config import TrainConfig, section_from_dict
from mosic.provenance import provenance
from mosic.train.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    train(cfg, args.shards, args.out, provenance=provenance(cfg, stage="train", shards=args.shards))


if __name__ == "__main__":
    main()
