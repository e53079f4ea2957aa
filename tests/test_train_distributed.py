"""Distributed training on CPU (gloo): losses over gathered batches equal the single-process losses, and a
real 2-process ``torchrun train_ref.py`` run completes."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import train_ref as tr
from tests.test_train_ref import make_image_folder

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loss_worker(rank: int, port: int, za: torch.Tensor, zb: torch.Tensor, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        n = za.shape[0] // WORLD
        part = slice(rank * n, (rank + 1) * n)
        out = {}
        for name, fn in (("simclr", lambda a, b: tr.nt_xent_loss(a, b, 0.2)), ("vicreg", tr.vicreg_loss),
                         ("barlow", tr.barlow_loss)):
            a = za[part].clone().requires_grad_(True)
            b = zb[part].clone().requires_grad_(True)
            loss, _ = fn(a, b)
            loss.backward()
            # DDP averages parameter gradients over ranks: divide by the world size like it does
            out[name] = (loss.item(), (a.grad / WORLD).tolist(), (b.grad / WORLD).tolist())
        results[rank] = out
    finally:
        dist.destroy_process_group()


def test_gathered_losses_and_gradients_equal_single_process():
    torch.manual_seed(0)
    za, zb = torch.randn(8, 6), torch.randn(8, 6)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_loss_worker, args=(_free_port(), za, zb, results), nprocs=WORLD, join=True)
        results = dict(results)
    n = za.shape[0] // WORLD
    for name, fn in (("simclr", lambda a, b: tr.nt_xent_loss(a, b, 0.2)), ("vicreg", tr.vicreg_loss),
                     ("barlow", tr.barlow_loss)):
        a, b = za.clone().requires_grad_(True), zb.clone().requires_grad_(True)
        loss, _ = fn(a, b)
        loss.backward()
        for rank in range(WORLD):
            r_loss, r_ga, r_gb = results[rank][name]
            assert r_loss == pytest.approx(loss.item(), rel=1e-5), name
            assert torch.allclose(torch.tensor(r_ga), a.grad[rank * n:(rank + 1) * n], atol=1e-6), name
            assert torch.allclose(torch.tensor(r_gb), b.grad[rank * n:(rank + 1) * n], atol=1e-6), name


def torchrun(data: Path, out: Path, *extra: str) -> list[dict]:
    """A 2-process train_ref run; its log records."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
           "train_ref.py", "--data", str(data), "--method", "simclr", "--arch", "small", "--width", "4",
           "--projector", "32-16", "--size", "32", "--epochs", "1", "--batch-size", "8", "--workers", "1",
           "--eval-batch-size", "32", "--knn-k", "5", "--threads", "1", "--no-progress", "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=Path(tr.__file__).parent, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path):
    data = make_image_folder(tmp_path / "data", n_train=64, n_test=16)
    out = tmp_path / "run"
    records = torchrun(data, out)
    epoch = [r for r in records if r["type"] == "epoch"]
    assert len(epoch) == 1
    # 64 images, 2 ranks x batch 8 -> 4 steps per rank per epoch, 64 images seen in all
    assert epoch[0]["step"] == 4
    assert 0 <= epoch[0]["knn_top1"] <= 100
    assert (out / "checkpoint.pt").exists()


@pytest.mark.slow
def test_torchrun_resumed_mid_epoch_gives_the_same_steps(tmp_path: Path):
    """Every rank continues its own shard at the saved batch: the losses (over the batch gathered from both
    ranks) of the steps after the resume equal the uninterrupted run's."""
    data = make_image_folder(tmp_path / "data", n_train=64, n_test=16)
    full = torchrun(data, tmp_path / "full", "--log-every", "1", "--eval")
    torchrun(data, tmp_path / "cut", "--log-every", "1", "--eval", "--stop-after-steps", "2")
    resumed = torchrun(data, tmp_path / "cut", "--log-every", "1", "--eval", "--resume", "auto")
    steps = [(r["step"], r["loss"]) for r in full if r["type"] == "step"]
    assert len(steps) == 4 and [(r["step"], r["loss"]) for r in resumed if r["type"] == "step"] == steps
