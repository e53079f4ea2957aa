"""torchrun plumbing for SSL training: join the process group, and gather embeddings across ranks with gradients.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without it everything here is the single-process identity.
"""
from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the torchrun process group when launched by torchrun (NCCL on CUDA, gloo on CPU); returns (rank, world)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        # a long timeout: the other ranks wait in their next collective while rank 0 evaluates
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2))
    return dist.get_rank(), dist.get_world_size()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradients of every rank and returns this rank's slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        g = torch.stack(grads)
        dist.all_reduce(g)
        return g[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, keeping gradients (identity on one process).

    Every rank then computes the same loss over the global batch; the summed backward times DDP's gradient
    averaging gives exactly the single-process gradient of that global loss.
    """
    if world_size() == 1:
        return x
    return torch.cat(_GatherWithGrad.apply(x))
