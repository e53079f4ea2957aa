"""Optimisation pieces for SSL training: the LARS optimiser, weight-decay parameter groups and the warm-up +
cosine learning-rate schedule."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al.).

    Per parameter the update ``g + wd * w`` is scaled by ``eta * |w| / |g + wd * w|``; groups with
    ``lars_exclude=True`` (biases, norm parameters) get neither weight decay nor adaptation.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                                      lars_exclude=False))

    @torch.no_grad()
    def step(self, closure: Callable | None = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                if not group["lars_exclude"]:
                    g = g.add(w, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(w), torch.norm(g)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    g = g.mul(trust)
                state = self.state[w]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(w)
                mu = state["mu"].mul_(group["momentum"]).add_(g)
                w.add_(mu, alpha=-group["lr"])
        return loss


def param_groups(params: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two groups: weights (weight decay, LARS adaptation) and biases / norm parameters (1-D: neither)."""
    decay, no_decay = [], []
    for _, prm in params:
        if prm.requires_grad:
            (no_decay if prm.ndim <= 1 else decay).append(prm)
    return [{"params": decay, "weight_decay": weight_decay, "lars_exclude": False},
            {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True}]


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float, min_ratio: float) -> float:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine down to ``peak * min_ratio``."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
