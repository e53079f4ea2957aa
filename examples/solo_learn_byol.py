"""BYOL as a solo-learn-style LightningModule, fed by FastSSLDataModule in solo-learn's batch shape.

    python examples/solo_learn_byol.py --data train.fssl --val val.fssl --size 224 --batch-size 256 --epochs 100
    python examples/solo_learn_byol.py --smoke       # a few CPU steps on small generated data

solo-learn's pretraining methods are LightningModules whose ``training_step`` unpacks
``indexes, X, targets = batch`` (X: one tensor per view) and whose ``validation_step`` unpacks
``X, targets = batch``. ``FastSSLDataModule(..., batch_format="solo_learn")`` yields exactly these, sharded by
the trainer's rank under DDP, so it can stand in for solo-learn's data module.

solo-learn itself is not imported: its PyPI release (1.0.2) pins torch==1.9.1 and needs pl_bolts. The method
below is a minimal BYOL written the way solo-learn's is (loss 2 - 2 cos(prediction, target projection) for
both view orders, an EMA target with cosine-scheduled momentum, an online linear probe on detached features),
built from train_ref.py's parts. Needs ``pip install lightning``.
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from fastssl_loader import presets
from fastssl_loader.lightning import FastSSLDataModule, pl
from smoke_data import NUM_CLASSES, smoke_dataset
from train_ref import EMATarget, SSLModel, byol_loss


class BYOL(pl.LightningModule):
    """Online network (backbone + projector + predictor + probe) and its EMA target."""

    def __init__(self, num_classes: int, lr: float, base_momentum: float = 0.99, arch: str = "small",
                 width: int = 16) -> None:
        super().__init__()
        self.online = SSLModel(arch, width, projector="512-128", predictor="512-128", num_classes=num_classes)
        self.target = EMATarget(self.online, base_momentum)
        self.lr = lr

    def training_step(self, batch: list, batch_idx: int) -> torch.Tensor:
        indexes, X, targets = batch  # solo-learn's pretraining batch
        out = self.online(X)
        z_target = self.target(X)
        loss = byol_loss(out["p"][0], z_target[1])[0] + byol_loss(out["p"][1], z_target[0])[0]
        probe = F.cross_entropy(out["probe_logits"], targets.repeat(2))
        self.log_dict({"train_byol": loss, "train_probe": probe}, prog_bar=True)
        return loss + probe

    def on_train_batch_end(self, outputs: object, batch: list, batch_idx: int) -> None:
        momentum = self.target.momentum(self.global_step, self.trainer.estimated_stepping_batches)
        self.target.update(self.online, momentum)

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        X, targets = batch  # solo-learn's validation batch: one un-augmented view
        logits = self.online.probe(self.online.backbone(X))
        self.log("val_acc", (logits.argmax(dim=1) == targets).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.online.parameters(), lr=self.lr, momentum=0.9, weight_decay=1e-5)


def fit(train: Path, val: Path | None, args: argparse.Namespace) -> dict[str, float]:
    """Train with Lightning; returns the last logged metrics."""
    pl.seed_everything(args.seed)
    data = FastSSLDataModule(train, presets.byol(args.size), args.batch_size, batch_format="solo_learn",
                             val_path=val, val_views=presets.eval_view(args.size) if val else None,
                             train_options={"num_workers": args.workers, "seed": args.seed},
                             val_options={"num_workers": args.workers})
    trainer = pl.Trainer(max_epochs=args.epochs, max_steps=args.max_steps or -1, devices=args.devices,
                         strategy="ddp" if args.devices > 1 else "auto", limit_val_batches=args.val_batches,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(BYOL(args.num_classes, args.lr), datamodule=data)
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    print("done:", trainer.global_step, "steps,", ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a .fssl training file (python -m converters ...)")
    parser.add_argument("--val", type=Path, help="a .fssl validation file (optional)")
    parser.add_argument("--smoke", action="store_true", help="train a few steps on small generated data")
    parser.add_argument("--num-classes", type=int, default=1000, help="for the online linear probe")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--val-batches", type=float, default=1.0, help="Lightning's limit_val_batches")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--devices", type=int, default=1, help="> 1: DDP, one process per device")
    parser.add_argument("--workers", type=int, default=None, help="loader threads per process (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.smoke:
        args.size, args.batch_size, args.epochs, args.num_classes = 32, 16, 2, NUM_CLASSES
        args.max_steps, args.val_batches = args.max_steps or 6, 2
        with tempfile.TemporaryDirectory() as tmp:
            data = smoke_dataset(Path(tmp) / "smoke.fssl")
            metrics = fit(data, data, args)
    elif args.data is None:
        parser.error("give --data PATH.fssl or --smoke")
    else:
        metrics = fit(args.data, args.val, args)
    if not all(math.isfinite(v) for v in metrics.values()):
        raise SystemExit(f"a metric was not finite: {metrics}")


if __name__ == "__main__":
    main()
