"""SimCLR with lightly's projection head and NT-Xent loss, fed by fastssl_loader in lightly's batch shape.

    python examples/lightly_simclr.py --data train.fssl --size 224 --batch-size 256 --epochs 100 --device cuda
    python examples/lightly_simclr.py --smoke       # a few CPU steps on small generated data

The training loop is lightly's plain-PyTorch SimCLR loop (``x0, x1 = batch[0]``, ``NTXentLoss(z0, z1)``). The
one change: instead of a ``DataLoader`` over a lightly dataset with ``SimCLRTransform``, the batches come from
``batch_format(Loader(..., presets.simclr(size), return_indices=True), "lightly")``, which yields lightly's
``(views, targets, filenames)`` (filenames: the sample indices as strings). Needs ``pip install lightly``.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from fastssl_loader import Loader, presets
from fastssl_loader.batch_formats import batch_format
from smoke_data import smoke_dataset


class SimCLR(torch.nn.Module):
    """ResNet-18 backbone (random init) + lightly's SimCLR projection head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = torchvision.models.resnet18(weights=None)
        self.backbone.fc = torch.nn.Identity()
        self.projection_head = SimCLRProjectionHead(512, 512, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x))


def epochs_of(batches: Iterable, epochs: int) -> Iterator[tuple[int, Any]]:
    """(epoch, batch) for every batch of ``epochs`` epochs."""
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for batch in batches:
            yield epoch, batch


def train(data: Path, args: argparse.Namespace) -> list[float]:
    """Run the SimCLR loop; returns the loss of every step."""
    loader = Loader(data, args.batch_size, presets.simclr(args.size), num_workers=args.workers,
                    device=args.device, return_indices=True, seed=args.seed)
    torch.manual_seed(args.seed)
    model = SimCLR().to(args.device)
    criterion = NTXentLoss(temperature=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    print(f"loader ready: {len(loader)} batches per epoch, kernels compiled in {loader.warmup():.1f} s")
    losses: list[float] = []
    start = time.perf_counter()
    with batch_format(loader, "lightly") as batches:
        for epoch, (views, targets, filenames) in islice(epochs_of(batches, args.epochs), args.max_steps):
            x0, x1 = views  # already on args.device
            loss = criterion(model(x0), model(x1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            print(f"epoch {epoch} step {len(losses)} loss {losses[-1]:.4f} (first sample {filenames[0]})")
    seconds = time.perf_counter() - start
    print(f"done: {len(losses)} steps, {len(losses) * args.batch_size / seconds:.1f} images/s, "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a .fssl training file (python -m converters ...)")
    parser.add_argument("--smoke", action="store_true", help="train a few steps on small generated data")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--lr", type=float, default=0.06)
    parser.add_argument("--workers", type=int, default=None, help="loader threads (default: all cores)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.epochs, args.max_steps = 16, 2, args.max_steps or 6
        with tempfile.TemporaryDirectory() as tmp:
            losses = train(smoke_dataset(Path(tmp) / "smoke.fssl"), args)
    elif args.data is None:
        parser.error("give --data PATH.fssl or --smoke")
    else:
        losses = train(args.data, args)
    if not all(math.isfinite(x) for x in losses):
        raise SystemExit("a loss was not finite")


if __name__ == "__main__":
    main()
