"""A real 2-process ``torch.distributed.run`` launch on CPU (gloo): the ranks' shards are disjoint, cover the
dataset once per epoch (up to the documented drop/pad rule) and have equal batch counts, for every order."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from fastssl_loader import write_dataset

N, BATCH, WORLD = 45, 4, 2
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
def test_torchrun_two_ranks_share_each_epoch(tmp_path):
    rng = np.random.default_rng(2)
    data = tmp_path / "data.fssl"
    write_dataset(str(data), [(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8), i % 3) for i in range(N)],
                  mode="jpeg", num_workers=0, progress=False)
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           str(REPO / "tests" / "dist_worker.py"), str(data), str(tmp_path)]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert ranks[0].keys() == ranks[1].keys() and len(ranks[0]) == 6
    for case in ranks[0]:
        drop_last = case.endswith("True")
        per_rank = [r[case] for r in ranks]
        assert all(r["world"] == WORLD for r in per_rank)
        counts = [len(r["batches"]) for r in per_rank]
        assert counts[0] == counts[1] == per_rank[0]["len"], case  # equal batch counts: no rank waits forever
        indices = [i for r in per_rank for b in r["batches"] for i in b]
        if drop_last:  # 45 -> 22 per rank -> 5 full batches per rank; nothing twice
            assert counts[0] == (N // WORLD) // BATCH
            assert len(indices) == len(set(indices)) == WORLD * counts[0] * BATCH, case
        else:  # padded to 23 per rank -> 6 batches per rank; every sample at least once, one repeated
            assert counts[0] == math.ceil(math.ceil(N / WORLD) / BATCH)
            assert set(indices) == set(range(N)), case
            assert len(indices) == N + 1, case
