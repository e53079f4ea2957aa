"""train_ref.py: one-file SimCLR / VICReg / Barlow Twins / BYOL trainer on fastssl_loader (or torchvision).

The users' reference for SSL training with this loader, and our proof that it trains as well as torchvision's
DataLoader with the same augmentations, faster. Backbones (``fastssl_loader.ssl_models``), LARS and the lr
schedule (``ssl_optim``), cross-rank gathering (``ssl_dist``), data plumbing (``ssl_data``) and the run log
(``run_log``) live in the library; this file keeps, in order: configuration -> model wrapper -> losses ->
optimiser -> evaluation -> checkpoints -> training step, loop and resume.

``<out>/log.jsonl`` holds one JSON line per epoch (``images_per_s``, ``data_wait_frac``, ``epoch_time_s``,
losses, ``lr``, ``<set>/knn_top1`` ... and their means ``knn_top1``, ``probe_top1``) and a final ``summary``
line (``loader_compile_s``: the Loader's one-off kernel compilation); a tqdm bar, optional TensorBoard scalars
and a summary table show the same figures.

Quick start (CPU, CIFAR-10 subset, a few minutes)::

    python train_ref.py --data ../shared/data/cifar10 --method simclr --arch small --width 16 \
        --projector 1024-256 --size 32 --epochs 2 --limit-train 5000 --limit-eval 1000

The README's CPU table (2 cores: one torch thread and one loader worker per run; 12 epochs, evaluation every 4
on 2000 test images plus grayscale / blurred / JPEG-q10 copies; SimCLR took about 19 minutes sharing the
machine, BYOL longer, torchvision about 31 minutes side by side)::

    COMMON="--data ../shared/data/cifar10 --arch small --width 16 --projector 1024-256 --predictor 1024-256 \
        --size 32 --epochs 12 --batch-size 256 --limit-train 20000 --limit-eval 2000 --make-shifted-evals \
        --optimizer sgd --lr 0.06 --lr-ref-batch 128 --weight-decay 5e-4 --warmup-epochs 1 --eval-every 4 \
        --threads 1 --workers 1"
    # (a) one run per method with our loader (VICReg diverges at lr 0.06: it and Barlow Twins use 0.02)
    for m in simclr byol; do python train_ref.py $COMMON --method $m --out runs/cpu-$m; done
    for m in vicreg barlow; do python train_ref.py $COMMON --lr 0.02 --method $m --out runs/cpu-$m; done
    # (b) the same SimCLR run through torchvision's DataLoader with the same augmentations
    python train_ref.py $COMMON --method simclr --loader torchvision --out runs/cpu-simclr-tv
    # (c) the same backbone at random initialisation: --epochs 0 only evaluates
    python train_ref.py $COMMON --method simclr --epochs 0 --out runs/cpu-random

(d) GPU, lightly's CIFAR-10 benchmark setting (published kNN top-1: SimCLR 0.847, BYOL 0.869, Barlow Twins
0.842). Remaining differences: lightly also decays biases and norm parameters, and reports the best kNN
accuracy over epochs (we log every evaluation; take the max)::

    GPU="--data ../shared/data/cifar10 --arch cifar_resnet18 --width 64 --size 32 --epochs 200 --batch-size 128 \
        --optimizer sgd --lr 0.06 --lr-ref-batch 128 --weight-decay 5e-4 --warmup-epochs 0 --device cuda \
        --amp bf16 --workers 8 --eval-every 10"
    python train_ref.py $GPU --method simclr --projector 512-128 --temperature 0.5 --jitter-strength 0.5 \
        --out runs/gpu-simclr
    python train_ref.py $GPU --method byol --projector 1024-256 --predictor 1024-256 --out runs/gpu-byol
    python train_ref.py $GPU --method barlow --projector 2048-2048-2048 --out runs/gpu-barlow
    # several GPUs: torchrun --nproc_per_node=N train_ref.py $GPU ... --sync-bn (batch-size is per process)

Distributed (``torchrun``): DDP, NCCL on CUDA, gloo on CPU; the loader is sharded by rank; SimCLR / VICReg /
Barlow Twins compute their loss over the batch gathered from every rank with gradients, so the gradients equal
the single-process ones; evaluation runs on rank 0.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from fastssl_loader import ssl_eval
from fastssl_loader.eval_sets import SHIFTS, num_classes_of
from fastssl_loader.run_log import RunLog, summary_table
from fastssl_loader.ssl_data import build_loader, make_views, prepare_sources
from fastssl_loader.ssl_dist import gather_with_grad, init_distributed
from fastssl_loader.ssl_models import ARCHS, build_backbone, build_mlp
from fastssl_loader.ssl_optim import LARS, lr_at, param_groups

METHODS = ("simclr", "vicreg", "barlow", "byol")


# ----------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """Every option of the trainer, with its default and meaning (``--help`` prints them)."""
    p = argparse.ArgumentParser(
        description="Self-supervised pre-training (SimCLR, VICReg, Barlow Twins, BYOL) with fastssl_loader, "
                    "reporting throughput, online linear probe and weighted kNN accuracy every epoch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="YAML or JSON file of option values (keys are option names "
                   "with - or _); options given on the command line override it")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="../shared/data/cifar10",
                   help="dataset root with train/ and test/ ImageFolders, or a train ImageFolder / .fssl / .fsslm")
    g.add_argument("--train", default=None, help="train split (ImageFolder, .fssl or .fsslm); default <data>/train")
    g.add_argument("--eval", nargs="*", default=None,
                   help="evaluation sets (ImageFolders or .fssl files with the train classes); default <data>/test")
    g.add_argument("--make-shifted-evals", nargs="*", default=None, choices=SHIFTS, metavar="SHIFT",
                   help=f"add shifted copies of the first eval set ({', '.join(SHIFTS)}; no value = all)")
    g.add_argument("--loader", choices=("fastssl", "torchvision"), default="fastssl",
                   help="fastssl_loader.Loader, or torchvision's DataLoader with the same augmentations")
    g.add_argument("--cache-dir", default=None, help="where converted .fssl files and shifted eval sets are "
                   "cached, keyed by source path, subset and max resolution: delete it when a source changes "
                   "(default <out>/../.fssl_cache)")
    g.add_argument("--max-resolution", type=int, default=None, help="longest side cap when converting")
    g.add_argument("--limit-train", type=int, default=None, help="use a fixed random subset of N train images "
                   "(also the kNN bank)")
    g.add_argument("--limit-eval", type=int, default=None, help="use a fixed random subset of N images per eval set")
    g.add_argument("--workers", type=int, default=None, help="loader workers (default: usable cores)")
    g.add_argument("--jpeg-fast-idct", action="store_true", help="fastssl loader: decode JPEGs with libjpeg-turbo's "
                   "fast integer IDCT (faster, pixels within a few levels; see the README)")
    g = p.add_argument_group("views")
    g.add_argument("--views", default=None, choices=("simclr", "byol", "vicreg", "barlow", "dino", "sslight"),
                   help="augmentation preset (default: the method's own)")
    g.add_argument("--size", type=int, default=32, help="global crop size")
    g.add_argument("--local-size", type=int, default=None, help="local crop size (dino/sslight presets)")
    g.add_argument("--n-local", type=int, default=None, help="number of local crops (dino/sslight presets)")
    g.add_argument("--jitter-strength", type=float, default=1.0, help="scale every ColorJitter range of the "
                   "preset around its identity (lightly's CIFAR-10 SimCLR benchmark uses 0.5)")
    g.add_argument("--alpha", type=float, default=0.5, help="multi-crop: weight of the global-global loss; "
                   "global-local pairs get 1-alpha (Tan et al., SSLight); unused with 2 views")
    g = p.add_argument_group("model")
    g.add_argument("--method", choices=METHODS, default="simclr")
    g.add_argument("--arch", choices=ARCHS, default="small")
    g.add_argument("--width", type=int, default=32, help="base width of --arch small / cifar_resnet18 (64 = standard)")
    g.add_argument("--projector", default="2048-2048-256", help="projector hidden-...-output sizes")
    g.add_argument("--predictor", default="4096-256", help="BYOL predictor hidden-...-output sizes")
    g.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP")
    g = p.add_argument_group("method hyper-parameters")
    g.add_argument("--temperature", type=float, default=0.5, help="SimCLR NT-Xent temperature")
    g.add_argument("--vicreg-weights", type=float, nargs=3, default=(25.0, 25.0, 1.0),
                   metavar=("INV", "VAR", "COV"), help="VICReg invariance/variance/covariance weights")
    g.add_argument("--barlow-lambda", type=float, default=0.0051, help="Barlow Twins off-diagonal weight")
    g.add_argument("--ema-momentum", type=float, default=0.996, help="BYOL EMA start momentum (cosine to 1)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=10, help="training epochs (0 = evaluate the initial model only)")
    g.add_argument("--batch-size", type=int, default=256, help="per-process batch size")
    g.add_argument("--optimizer", choices=("lars", "sgd", "adamw"), default="sgd")
    g.add_argument("--lr", type=float, default=0.06, help="base lr for --lr-ref-batch images; scaled linearly "
                   "with the global batch size")
    g.add_argument("--lr-ref-batch", type=int, default=256, help="batch size at which --lr applies")
    g.add_argument("--min-lr-ratio", type=float, default=0.0, help="final lr / peak lr of the cosine")
    g.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up length")
    g.add_argument("--weight-decay", type=float, default=5e-4, help="not applied to biases and norm parameters")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD/LARS momentum")
    g.add_argument("--lars-eta", type=float, default=0.001, help="LARS trust coefficient")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast dtype (CUDA only)")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda")
    g.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads (default: torch's choice; "
                   "1 avoids OpenMP spin contention on busy or small machines)")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("evaluation")
    g.add_argument("--probe-lr", type=float, default=1e-3, help="online linear probe AdamW lr")
    g.add_argument("--knn-k", type=int, default=200)
    g.add_argument("--knn-t", type=float, default=0.1)
    g.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (and after the last)")
    g.add_argument("--eval-batch-size", type=int, default=512)
    g = p.add_argument_group("logging and checkpoints")
    g.add_argument("--out", default="runs/train_ref", help="output folder (log.jsonl, config.json, checkpoints)")
    g.add_argument("--log-every", type=int, default=0, help="also log every N-th step as a JSON line (0 = off)")
    g.add_argument("--ckpt-every", type=int, default=1, help="checkpoint every N epochs (0 = only at the end)")
    g.add_argument("--resume", default=None, help="checkpoint to resume from ('auto' = <out>/checkpoint.pt if any)")
    g.add_argument("--stop-after", type=int, default=None, help="stop (with a checkpoint) after this many epochs of "
                   "the --epochs schedule, to continue later with --resume")
    g.add_argument("--ckpt-every-steps", type=int, default=0, help="also checkpoint every N steps, mid-epoch: "
                   "--resume continues the epoch at the next batch (needs --loader fastssl)")
    g.add_argument("--stop-after-steps", type=int, default=None, help="stop (with a checkpoint, mid-epoch if need "
                   "be) after this many steps, to continue later with --resume (needs --loader fastssl)")
    g.add_argument("--tensorboard", action="store_true", help="write TensorBoard scalars (needs tensorboard)")
    g.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse flags; a ``--config`` file provides defaults that explicit flags override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            parser.error(f"--config {path}: no such file")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                parser.error(f"--config {path}: YAML needs PyYAML: pip install pyyaml (or the extra "
                             "fastssl_loader[train]), or give a .json file")
            cfg = yaml.safe_load(text) or {}
        else:
            cfg = json.loads(text)
        known = {a.dest for a in parser._actions}
        cfg = {k.replace("-", "_"): v for k, v in cfg.items()}
        unknown = sorted(set(cfg) - known)
        if unknown:
            parser.error(f"--config {path}: unknown option(s) {unknown}")
        parser.set_defaults(**cfg)
        args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "eval_every", "eval_batch_size", "knn_k", "lr_ref_batch"):
        value = getattr(args, name)
        if value < (0 if name == "epochs" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive (got {value})")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha must be in [0, 1] (got {args.alpha})")
    if (args.ckpt_every_steps or args.stop_after_steps is not None) and args.loader != "fastssl":
        parser.error("mid-epoch checkpoints (--ckpt-every-steps, --stop-after-steps) need --loader fastssl")
    if args.make_shifted_evals is not None and not args.make_shifted_evals:
        args.make_shifted_evals = list(SHIFTS)
    return args


# ----------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------

class SSLModel(nn.Module):
    """Backbone + projector (+ BYOL predictor) + online linear probe on detached features, in one module.

    One forward call (so DDP sees every parameter once) returns per view: ``feats`` (backbone), ``z``
    (projector), ``p`` (predictor output for BYOL, else ``z``), plus ``probe_logits`` for the first
    ``n_probe`` views stacked in view order.
    """

    def __init__(self, arch: str, width: int, projector: str, predictor: str | None, num_classes: int) -> None:
        super().__init__()
        self.backbone = build_backbone(arch, width)
        self.projector, out_dim = build_mlp(self.backbone.out_dim, projector)
        self.predictor = build_mlp(out_dim, predictor)[0] if predictor else None
        self.probe = nn.Linear(self.backbone.out_dim, num_classes)

    def forward(self, views: list[torch.Tensor], n_probe: int = 2) -> dict[str, Any]:
        feats = encode_views(self.backbone, views)
        z = [self.projector(f) for f in feats]
        p = [self.predictor(x) for x in z] if self.predictor is not None else z
        probe_logits = self.probe(torch.cat(feats[:n_probe]).detach())
        return {"feats": feats, "z": z, "p": p, "probe_logits": probe_logits}


def encode_views(backbone: nn.Module, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run the backbone once per group of same-size views (concatenated), return features in view order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, v in enumerate(views):
        groups.setdefault(tuple(v.shape[1:]), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(views)
    for idx in groups.values():
        f = backbone(torch.cat([views[i] for i in idx]))
        for j, chunk in zip(idx, f.chunk(len(idx))):
            out[j] = chunk
    return out  # type: ignore[return-value]


class EMATarget(nn.Module):
    """BYOL target network: an EMA copy of backbone + projector, momentum cosine-scheduled from m0 to 1."""

    def __init__(self, online: SSLModel, base_momentum: float) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(online.backbone)
        self.projector = copy.deepcopy(online.projector)
        self.base_momentum = base_momentum
        for param in self.parameters():
            param.requires_grad_(False)

    def momentum(self, step: int, total_steps: int) -> float:
        return 1.0 - (1.0 - self.base_momentum) * (math.cos(math.pi * step / max(total_steps, 1)) + 1) / 2

    @torch.no_grad()
    def update(self, online: SSLModel, momentum: float) -> None:
        for name in ("backbone", "projector"):
            for t, o in zip(getattr(self, name).state_dict().values(), getattr(online, name).state_dict().values()):
                if t.is_floating_point():
                    t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
                else:
                    t.copy_(o)

    @torch.no_grad()
    def forward(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.projector(f) for f in encode_views(self.backbone, views)]


# ----------------------------------------------------------------------------------------------------------
# Losses: each takes two views' embeddings [B, D] (this rank's part) and returns (loss, parts)
# ----------------------------------------------------------------------------------------------------------

def nt_xent_loss(za: torch.Tensor, zb: torch.Tensor, temperature: float = 0.5) -> tuple[torch.Tensor, dict]:
    """SimCLR NT-Xent: each of the 2N embeddings must pick its pair among the 2N-1 others (all ranks' negatives)."""
    za, zb = gather_with_grad(za), gather_with_grad(zb)
    n = za.shape[0]
    z = F.normalize(torch.cat([za, zb]).float(), dim=1)
    logits = (z @ z.T / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    loss = F.cross_entropy(logits, targets)
    return loss, {"nt_xent": loss.detach()}


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m.flatten()[:-1].view(m.shape[0] - 1, m.shape[0] + 1)[:, 1:].flatten()


def vicreg_loss(za: torch.Tensor, zb: torch.Tensor, weights: Iterable[float] = (25.0, 25.0, 1.0),
                eps: float = 1e-4) -> tuple[torch.Tensor, dict]:
    """VICReg: MSE invariance + hinge on per-dimension std (target 1) + squared off-diagonal covariance / D."""
    za, zb = gather_with_grad(za).float(), gather_with_grad(zb).float()
    w_inv, w_var, w_cov = weights
    n, d = za.shape
    inv = F.mse_loss(za, zb)
    var = cov = za.new_zeros(())
    for z in (za, zb):
        z = z - z.mean(dim=0)
        var = var + F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean() / 2
        cov = cov + _off_diagonal(z.T @ z / (n - 1)).pow(2).sum() / d
    loss = w_inv * inv + w_var * var + w_cov * cov
    return loss, {"invariance": inv.detach(), "variance": var.detach(), "covariance": cov.detach()}


def barlow_loss(za: torch.Tensor, zb: torch.Tensor, lambd: float = 0.0051,
                eps: float = 1e-5) -> tuple[torch.Tensor, dict]:
    """Barlow Twins: cross-correlation of batch-normalised embeddings (global batch) pushed to the identity."""
    za, zb = gather_with_grad(za).float(), gather_with_grad(zb).float()

    def standardise(z: torch.Tensor) -> torch.Tensor:  # BatchNorm1d(affine=False) in training mode
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)

    c = standardise(za).T @ standardise(zb) / za.shape[0]
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = _off_diagonal(c).pow(2).sum()
    loss = on + lambd * off
    return loss, {"on_diag": on.detach(), "off_diag": off.detach()}


def byol_loss(p: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """BYOL: 2 - 2 cos(prediction, target), mean over the batch (the target carries no gradient)."""
    loss = (2 - 2 * F.cosine_similarity(p.float(), target.detach().float(), dim=1)).mean()
    return loss, {"byol": loss.detach()}


def multicrop_loss(pair_loss: Callable[[int, int], tuple[torch.Tensor, dict]], n_views: int, n_global: int,
                   alpha: float) -> tuple[torch.Tensor, dict]:
    """Combine a pair loss over views: alpha * mean(global-global pairs) + (1 - alpha) * mean(local-global pairs).

    ``pair_loss(i, j)`` scores views i and j; with no local views the loss is the global-global mean.
    """
    def mean_of(pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, dict]:
        results = [pair_loss(i, j) for i, j in pairs]
        parts = {k: sum(r[1][k] for r in results) / len(results) for k in results[0][1]}
        return sum(r[0] for r in results) / len(results), parts

    gg = [(i, j) for i in range(n_global) for j in range(i + 1, n_global)]
    gl = [(loc, g) for loc in range(n_global, n_views) for g in range(n_global)]
    loss, parts = mean_of(gg)
    if gl:
        loss_gl, _ = mean_of(gl)
        parts = {**parts, "loss_gg": loss.detach(), "loss_gl": loss_gl.detach()}
        loss = alpha * loss + (1 - alpha) * loss_gl
    return loss, parts


def ssl_loss(args: argparse.Namespace, out: dict, targets: list[torch.Tensor] | None,
             n_global: int) -> tuple[torch.Tensor, dict]:
    """The method's loss over all views of one step (multi-crop aware)."""
    z, p = out["z"], out["p"]
    if args.method == "byol":
        def pair(i: int, j: int) -> tuple[torch.Tensor, dict]:
            # targets exist for global views only: a local view is only ever a prediction
            if i >= n_global:
                return byol_loss(p[i], targets[j])
            a, b = byol_loss(p[i], targets[j]), byol_loss(p[j], targets[i])
            return (a[0] + b[0]) / 2, {"byol": (a[1]["byol"] + b[1]["byol"]) / 2}
    else:
        loss_fn = {"simclr": functools.partial(nt_xent_loss, temperature=args.temperature),
                   "vicreg": functools.partial(vicreg_loss, weights=args.vicreg_weights),
                   "barlow": functools.partial(barlow_loss, lambd=args.barlow_lambda)}[args.method]

        def pair(i: int, j: int) -> tuple[torch.Tensor, dict]:
            return loss_fn(z[i], z[j])
    return multicrop_loss(pair, len(z), n_global, args.alpha)


# ----------------------------------------------------------------------------------------------------------
# Optimiser (LARS, parameter groups and the lr schedule: fastssl_loader.ssl_optim)
# ----------------------------------------------------------------------------------------------------------

def build_optimizer(args: argparse.Namespace, model: SSLModel) -> torch.optim.Optimizer:
    """The SSL optimiser over backbone, projector and predictor (the probe has its own)."""
    named = [(n, p) for n, p in model.named_parameters() if not n.startswith("probe.")]
    groups = param_groups(named, args.weight_decay)
    if args.optimizer == "lars":
        return LARS(groups, lr=args.lr, momentum=args.momentum, eta=args.lars_eta)
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum)
    return torch.optim.AdamW(groups, lr=args.lr)


# ----------------------------------------------------------------------------------------------------------
# Evaluation: weighted kNN on the un-augmented train bank, online linear probe (fastssl_loader.ssl_eval)
# ----------------------------------------------------------------------------------------------------------

def evaluate(model: SSLModel, bank_loader: Any, eval_loaders: dict[str, Any], num_classes: int,
             args: argparse.Namespace, device: torch.device, amp: Any) -> dict[str, float]:
    """kNN and probe top-1/top-5 (in %) per eval set, plus their means over the sets, and the time it took."""
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    results = ssl_eval.evaluate(model.backbone, model.probe, bank_loader, eval_loaders, num_classes, k=args.knn_k,
                                temperature=args.knn_t, prepare=lambda x: to_device(x, device), amp=amp)
    model.train(was_training)
    return {**results, "eval_time_s": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------------------
# Checkpoints (the run log and summary table: fastssl_loader.run_log)
# ----------------------------------------------------------------------------------------------------------

def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, trainer: Trainer, epoch: int, history: list[dict], **mid_epoch: Any) -> None:
    """Atomic save of the state to continue at ``epoch``; a mid-epoch checkpoint adds the loader's state and the
    epoch's running sums (``mid_epoch``). A partly written checkpoint never replaces a good one."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"trainer": trainer.state_dict(), "epoch": epoch, "history": history, "rng": rng_state(),
                "args": vars(trainer.args), **mid_epoch}, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------

def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def seed_epoch(seed: int, epoch: int) -> None:
    """Every epoch starts from an RNG state fixed by (seed, epoch), so a resumed run repeats it exactly."""
    s = seed * 1_000_003 + epoch
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


class Trainer:
    """Model, BYOL target, optimisers, AMP and lr/momentum schedules: owns one training step and its state."""

    def __init__(self, args: argparse.Namespace, num_classes: int, n_global: int, steps_per_epoch: int,
                 device: torch.device, world: int) -> None:
        self.args, self.n_global, self.device = args, n_global, device
        seed_epoch(args.seed, 0)  # the initial weights depend on the seed only
        self.model = SSLModel(args.arch, args.width, args.projector,
                              args.predictor if args.method == "byol" else None, num_classes).to(device)
        self.target = EMATarget(self.model, args.ema_momentum).to(device) if args.method == "byol" else None
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(args, self.model)
        self.probe_optimizer = torch.optim.AdamW(self.model.probe.parameters(), lr=args.probe_lr)
        self.net: nn.Module = self.model
        if world > 1:
            if args.sync_bn:
                self.net = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None)
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
        use_amp = amp_dtype is not None and device.type == "cuda"
        self.amp = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if use_amp else contextlib.nullcontext
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
        self.total_steps = args.epochs * steps_per_epoch
        self.warmup_steps = round(args.warmup_epochs * steps_per_epoch)
        self.peak_lr = args.lr * args.batch_size * world / args.lr_ref_batch
        self.step = 0

    def train_step(self, views: list[torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
        """One optimisation step of the SSL loss and of the probe; returns lr and the losses."""
        views = [to_device(v, self.device) for v in views]
        labels = torch.as_tensor(labels).to(self.device, non_blocking=True)
        lr = lr_at(self.step, self.total_steps, self.warmup_steps, self.peak_lr, self.args.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.amp():
            outputs = self.net(views, n_probe=self.n_global)
            targets = self.target(views[:self.n_global]) if self.target is not None else None
            loss, parts = ssl_loss(self.args, outputs, targets, self.n_global)
            probe_loss = F.cross_entropy(outputs["probe_logits"].float(), labels.repeat(self.n_global))
        self.optimizer.zero_grad(set_to_none=True)
        self.probe_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss + probe_loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.step(self.probe_optimizer)
        self.scaler.update()
        self.step += 1
        if self.target is not None:
            self.target.update(self.model, self.target.momentum(self.step, self.total_steps))
        values = {"lr": lr, "loss": loss.item(), "probe_loss": probe_loss.item(),
                  **{k: float(v) for k, v in parts.items()}}
        if not math.isfinite(values["loss"]):
            raise FloatingPointError(f"loss is {values['loss']} at step {self.step}: lower --lr?")
        return values

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "target": self.target.state_dict() if self.target is not None else None,
                "probe_optimizer": self.probe_optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.probe_optimizer.load_state_dict(state["probe_optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.target is not None:
            self.target.load_state_dict(state["target"])
        self.step = state["step"]


def train_epoch(trainer: Trainer, loader: Any, epoch: int, log: RunLog, show_bar: bool, world: int,
                sums: dict | None = None, after_step: Callable[[dict], bool] | None = None) -> dict | None:
    """One pass over the loader (the rest of it when resumed mid-epoch with the epoch's running ``sums``);
    returns the epoch record (throughput, data wait, mean losses, last lr), or None when ``after_step(sums)``
    asked to stop mid-epoch."""
    args = trainer.args
    loader.set_epoch(epoch)  # keeps the position a mid-epoch resume restored
    trainer.net.train()
    sums = sums or {"steps": 0, "seen": 0, "values": {}}
    seen, wait, steps = 0, 0.0, 0
    bar = None
    if show_bar:
        from tqdm import tqdm
        bar = tqdm(total=len(loader), initial=sums["steps"], desc=f"epoch {epoch + 1}/{args.epochs}", leave=False)
    epoch_start = tick = time.perf_counter()
    for views, labels in loader:
        wait += time.perf_counter() - tick
        values = trainer.train_step(views, labels)
        steps += 1
        seen += len(labels)
        sums["steps"], sums["seen"] = sums["steps"] + 1, sums["seen"] + len(labels)
        for k, v in values.items():
            sums["values"][k] = sums["values"].get(k, 0.0) + v
        if args.log_every and trainer.step % args.log_every == 0:
            log.write({"type": "step", "epoch": epoch, "step": trainer.step, **values}, trainer.step)
        if bar is not None:
            bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}")
            bar.update()
        if after_step is not None and sums["steps"] < len(loader) and after_step(sums):
            return None
        tick = time.perf_counter()
    epoch_time = time.perf_counter() - epoch_start
    if bar is not None:
        bar.close()
    means = {k: v / max(sums["steps"], 1) for k, v in sums["values"].items()}
    return {"type": "epoch", "epoch": epoch + 1, "step": trainer.step, **means,
            "lr": values["lr"] if steps else trainer.peak_lr, "epoch_time_s": epoch_time,
            "images_per_s": seen * world / epoch_time, "data_wait_frac": wait / epoch_time}


def setup_run(args: argparse.Namespace) -> tuple[torch.device, int, int, Path, RunLog]:
    """Device, torch threads, process group, output folder with config.json, and the run log."""
    device = pick_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    rank, world = init_distributed(device)
    if args.sync_bn and world > 1 and device.type != "cuda":
        raise ValueError("--sync-bn needs CUDA: torch's SyncBatchNorm does not run on CPU tensors")
    out = Path(args.out)
    if args.cache_dir is None:
        args.cache_dir = str(out.resolve().parent / ".fssl_cache")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(vars(args), indent=2, default=str))
    return device, rank, world, out, RunLog(out, rank == 0, args.tensorboard)


@dataclass
class RunData:
    """The training loader and, on the evaluating rank, the kNN bank and evaluation loaders."""

    train: Any
    bank: Any | None
    evals: dict[str, Any]
    num_classes: int
    compile_s: float  # the Loaders' one-off kernel compilation

    @property
    def evaluating(self) -> bool:
        return self.bank is not None


def build_data(args: argparse.Namespace, device: torch.device, rank: int, world: int) -> RunData:
    """Sources, views and loaders; compiles the Loaders' kernels up front."""
    train_src, eval_srcs = prepare_sources(args, rank)
    train_views, eval_view = make_views(args)
    if len(train_views) < 2:
        raise ValueError(f"--views {args.views or args.method}: SSL needs at least 2 views, got {len(train_views)}")
    loader = build_loader(args, train_src, args.limit_train, train_views, True, device, rank, world)
    if len(loader) == 0 and args.epochs > 0:
        raise ValueError(f"no full training batch: --batch-size {args.batch_size} x {world} process(es) exceeds "
                         f"the training set ({train_src}, --limit-train {args.limit_train})")
    evaluating = rank == 0 and bool(eval_srcs)
    bank = build_loader(args, train_src, args.limit_train, [eval_view], False, device) if evaluating else None
    evals = {name: build_loader(args, src, args.limit_eval, [eval_view], False, device)
             for name, src in eval_srcs} if evaluating else {}
    compile_s = sum(data.warmup() for data in [loader, bank, *evals.values()] if data is not None)
    return RunData(loader, bank, evals, num_classes_of(train_src), compile_s)


def resume(trainer: Trainer, args: argparse.Namespace, out: Path, device: torch.device) -> dict:
    """Load --resume's checkpoint into the trainer and the RNGs; returns it (``epoch``: the first epoch to run;
    ``history``; ``loader`` and ``sums`` for a mid-epoch one), an empty start without one."""
    path = out / "checkpoint.pt" if args.resume == "auto" else (Path(args.resume) if args.resume else None)
    if path is not None and path.exists():
        ckpt = torch.load(path, map_location=device, weights_only=False)
        if ckpt.get("loader") is not None and args.loader != "fastssl":
            raise ValueError(f"--resume {path}: a mid-epoch checkpoint needs --loader fastssl")
        trainer.load_state_dict(ckpt["trainer"])
        set_rng_state(ckpt["rng"])
        return {**ckpt, "path": str(path)}
    if args.resume not in (None, "auto"):
        raise FileNotFoundError(f"--resume {args.resume}: no such checkpoint")
    return {"epoch": 0, "history": [], "path": None}


def stopping(args: argparse.Namespace, trainer: Trainer) -> bool:
    """Whether --stop-after-steps is reached."""
    return args.stop_after_steps is not None and trainer.step >= args.stop_after_steps


def run_epochs(trainer: Trainer, data: RunData, args: argparse.Namespace, log: RunLog, out: Path, rank: int,
               world: int, start: dict) -> dict[str, float]:
    """Train from the ``start`` checkpoint's epoch (and batch) to the last epoch of this launch, evaluating and
    checkpointing on schedule; appends the epoch records to its history and returns the last evaluation ({} if
    none ran)."""
    final: dict[str, float] = {}
    history, sums = start["history"], start.get("sums")
    if start.get("loader") is not None:  # mid-epoch: every rank continues at the saved batch of its own shard
        data.train.load_state_dict(dict(start["loader"], rank=data.train.rank))

    def after_step(epoch: int, sums: dict) -> bool:
        stop = stopping(args, trainer)
        if rank == 0 and (stop or (args.ckpt_every_steps and trainer.step % args.ckpt_every_steps == 0)):
            save_checkpoint(out / "checkpoint.pt", trainer, epoch, history, loader=data.train.state_dict(), sums=sums)
        return stop

    last_epoch = args.epochs if args.stop_after is None else min(args.stop_after, args.epochs)
    for epoch in range(start["epoch"], last_epoch):
        if sums is None:  # a mid-epoch resume restored the RNG state of its step instead
            seed_epoch(args.seed, epoch)
        record = train_epoch(trainer, data.train, epoch, log, rank == 0 and not args.no_progress, world, sums,
                             functools.partial(after_step, epoch))
        if record is None:
            break
        sums = None
        if data.evaluating and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs):
            final = evaluate(trainer.model, data.bank, data.evals, data.num_classes, args, trainer.device,
                             trainer.amp)
            record.update(final)
        history.append(record)
        log.write(record, trainer.step)
        if rank == 0:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}), flush=True)
        stop = stopping(args, trainer)
        if rank == 0 and ((args.ckpt_every and (epoch + 1) % args.ckpt_every == 0) or epoch + 1 == last_epoch or stop):
            save_checkpoint(out / "checkpoint.pt", trainer, epoch + 1, history)
        if stop:
            break
    return final


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole job; returns the final evaluation and the per-epoch records."""
    device, rank, world, out, log = setup_run(args)
    data = build_data(args, device, rank, world)
    trainer = Trainer(args, data.num_classes, 2, len(data.train), device, world)  # views 0, 1: the global views
    start = resume(trainer, args, out, device)
    start_epoch, history = start["epoch"], start["history"]
    log.write({"type": "start", "start_epoch": start_epoch, "start_step": trainer.step, "resumed_from": start["path"],
               "world_size": world, "device": str(device), "loader": args.loader}, trainer.step)
    final = run_epochs(trainer, data, args, log, out, rank, world, start)
    last_epoch = args.epochs if args.stop_after is None else min(args.stop_after, args.epochs)
    if data.evaluating and not final and last_epoch == args.epochs and not stopping(args, trainer):  # e.g. --epochs 0
        final = evaluate(trainer.model, data.bank, data.evals, data.num_classes, args, device, trainer.amp)
        record = {"type": "eval", "epoch": max(last_epoch, start_epoch), "step": trainer.step, **final}
        history.append(record)
        log.write(record, trainer.step)
    if rank == 0:
        log.write({"type": "summary", "epochs": args.epochs, "steps": trainer.step,
                   "loader_compile_s": data.compile_s, **final}, trainer.step)
        print(summary_table([h for h in history if h["type"] == "epoch"], final), flush=True)
    log.close()
    return {"final": final, "history": history}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    try:
        return train(args)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
