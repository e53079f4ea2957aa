"""One rank of tests/test_distributed.py, launched by ``python -m torch.distributed.run`` on CPU (gloo).

Runs one epoch of a distributed Loader per (order, drop_last) case and writes this rank's sample indices and
batch counts to ``<out>/rank<r>.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch.distributed as dist

from fastssl_loader import Loader
from fastssl_loader.ops import RandomHorizontalFlip, RandomResizedCrop

VIEW = [RandomResizedCrop(16, scale=(0.05, 0.4)), RandomHorizontalFlip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    cases = {}
    for order in ("random", "quasi_random", "sequential"):
        for drop_last in (True, False):
            loader = Loader(args.data, 4, [VIEW], num_workers=1, order=order, drop_last=drop_last, seed=7,
                            distributed=True, return_indices=True)
            batches = [idx.tolist() for _, _, idx in loader]
            cases[f"{order}/{drop_last}"] = {"len": len(loader), "batches": batches, "world": loader.world_size}
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(cases))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
