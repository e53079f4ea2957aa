"""A Lightning fit on CPU for tests/test_lightning.py; run as a script it is one 2-rank DDP fit (gloo).

``python tests/lightning_worker.py DATA OUT`` fits :class:`Recorder` for three epochs on
:class:`FastSSLDataModule` (training batches in solo-learn's shape, validation batches ``(images, labels)``)
with ``Trainer(accelerator="cpu", devices=2, strategy="ddp", reload_dataloaders_every_n_epochs=2)``: epochs 0
and 1 share one training loader, epoch 2 gets a new one. Lightning relaunches this script once per rank. Each
rank writes what its steps saw to ``OUT/rank<r>.json``. The dataset's labels are the sample indices, so the
validation batches name their samples too.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from fastssl_loader import presets
from fastssl_loader.lightning import FastSSLDataModule, pl
from fastssl_loader.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop

SEED, BATCH, VAL_BATCH, EPOCHS = 5, 4, 8, 3
VIEWS = [[RandomResizedCrop(16, scale=(0.2, 1.0)), RandomHorizontalFlip(), Normalize((0.5,) * 3, (0.25,) * 3)],
         [RandomResizedCrop(12, scale=(0.1, 0.5)), Normalize((0.5,) * 3, (0.25,) * 3)]]
EVAL_VIEW = presets.eval_view(16)
LOADER_OPTIONS = {"num_workers": 1, "seed": SEED}


def digest(tensors: Sequence[torch.Tensor]) -> str:
    """SHA-1 of the tensors' bytes: equal pixels <=> equal digests."""
    sha = hashlib.sha1()
    for tensor in tensors:
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def datamodule(data: str | Path) -> FastSSLDataModule:
    return FastSSLDataModule(data, VIEWS, BATCH, val_path=data, val_views=EVAL_VIEW, val_batch_size=VAL_BATCH,
                             batch_format="solo_learn", train_options=LOADER_OPTIONS, val_options=LOADER_OPTIONS)


def trainer(max_epochs: int, **options: Any) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", max_epochs=max_epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, **options)


class Recorder(pl.LightningModule):
    """Records every training and validation batch (epoch, samples, pixel digest) and trains a tiny layer."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.train_batches: list[dict] = []
        self.val_batches: list[dict] = []
        self.loaders: list = []

    def training_step(self, batch: list, batch_idx: int) -> torch.Tensor:
        indexes, views, targets = batch
        loader = self.trainer.train_dataloader
        if not any(loader is seen for seen in self.loaders):
            self.loaders.append(loader)  # kept alive, so a number names one loader object
        self.train_batches.append({"epoch": self.current_epoch, "loader_epoch": loader.epoch,
                                   "loader_number": len(self.loaders) - 1,
                                   "indices": indexes.tolist(), "targets": targets.tolist(), "digest": digest(views)})
        return sum(self.layer(view.mean(dim=(2, 3))).mean() for view in views)

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        images, labels = batch
        self.val_batches.append({"epoch": self.current_epoch, "sanity": self.trainer.sanity_checking,
                                 "indices": labels.tolist(), "shape": list(images.shape)})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def record(self) -> dict:
        return {"rank": self.global_rank, "world_size": self.trainer.world_size,
                "train": self.train_batches, "val": self.val_batches}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    args = parser.parse_args()
    model = Recorder()
    fit = trainer(EPOCHS, devices=2, strategy="ddp", reload_dataloaders_every_n_epochs=2)
    fit.fit(model, datamodule=datamodule(args.data))
    Path(args.out, f"rank{model.global_rank}.json").write_text(json.dumps(model.record()))


if __name__ == "__main__":
    main()
