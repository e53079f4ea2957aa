"""PyTorch Lightning: :class:`FastSSLDataModule`, a ``LightningDataModule`` serving fastssl_loader batches.

::

    dm = FastSSLDataModule("train.fssl", presets.byol(224), batch_size=256,
                           val_path="val.fssl", val_views=presets.eval_view(224))
    trainer = lightning.Trainer(accelerator="gpu", devices=8, strategy="ddp")
    trainer.fit(model, datamodule=dm)

Needs the ``[lightning]`` extra. Uses ``lightning`` (``lightning.pytorch``) when installed, else
``pytorch_lightning``; ``fastssl_loader.lightning.pl`` is the package in use, and the Trainer must come from it.

What Lightning does with the loaders, and why it works (checked against Lightning 2.6's fit loop):

- Sharding: each loader is created inside the trainer (``train_dataloader()``), with ``distributed=True`` and
  the trainer's ``global_rank`` and ``world_size``, so under DDP every rank reads its own shard without the
  user passing them. Lightning injects a ``DistributedSampler`` only into ``torch.utils.data.DataLoader``
  objects, so ``use_distributed_sampler`` leaves these loaders alone.
- Epochs: before each epoch Lightning calls ``dataloader.sampler.set_epoch(e)`` (training and validation
  loaders); :class:`~fastssl_loader.batch_formats.MappedLoader` routes it to ``Loader.set_epoch``. So epoch e
  of the trainer is epoch e of the loader, also when Lightning re-requests the dataloaders
  (``reload_dataloaders_every_n_epochs``) or resumes a fit from a checkpoint. Lightning creates the first
  epoch's iterator before it calls ``set_epoch(0)`` (and calls ``iter()`` once just to check iterability), so
  the wrapper starts the loader's epoch at the first batch, as a ``DataLoader`` reads its sampler lazily.
- Resuming mid-epoch: Lightning saves the training loader's ``state_dict()`` in a checkpoint (a step
  checkpoint too) and, on resume, calls ``load_state_dict`` and then ``set_epoch`` with the same epoch before
  iterating; that ``set_epoch`` keeps the restored position, so the fit continues at the next batch.
- Batch lifetime: the loaders have ``len()``, so Lightning fetches one batch at a time, without prefetching,
  and a batch sharing the loader's recycled CPU buffer stays valid for the whole training step.
- Device: unless ``device`` is given in the options, batches are produced on the trainer's CUDA device when it
  has one (the loader copies uint8 on its side stream and normalises on the GPU), else on the CPU.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    try:
        import pytorch_lightning as pl
    except ImportError as exc:
        raise ImportError("fastssl_loader.lightning needs PyTorch Lightning: pip install 'fastssl_loader[lightning]' "
                          "(or pytorch-lightning)") from exc

from .batch_formats import NEEDS_INDICES, MappedLoader, batch_format
from .loader import Loader

#: Loader options the validation loader uses unless ``val_options`` says otherwise: every sample once, in order.
VAL_DEFAULTS = {"order": "sequential", "drop_last": False}


class FastSSLDataModule(pl.LightningDataModule):
    """Training loader of multi-view SSL batches, and an optional validation loader (e.g. an eval view).

    ``views`` / ``batch_size``: as for :class:`~fastssl_loader.Loader`. ``train_options`` / ``val_options``:
    further Loader keyword arguments (``num_workers``, ``seed``, ``dtype``, ``device``, ...); rank, world
    size and ``distributed`` come from the trainer. ``batch_format``: the training batch shape ("solo_learn",
    "lightly", or None for the Loader's own ``(views, labels, ...)``; see
    :mod:`fastssl_loader.batch_formats`). ``val_batch_format``: the validation batch shape, by default
    ``(images, labels)`` ("classification", one view). Without ``val_path`` there is no validation loader.
    """

    def __init__(self, train_path: str | os.PathLike, views: Any, batch_size: int, *,
                 val_path: str | os.PathLike | None = None, val_views: Any = None,
                 val_batch_size: int | None = None, batch_format: str | None = None,
                 val_batch_format: str | None = "classification",
                 train_options: Mapping[str, Any] | None = None,
                 val_options: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if val_path is not None and val_views is None:
            raise ValueError("val_path needs val_views (e.g. presets.eval_view(size))")
        self.train_path, self.views, self.batch_size = train_path, views, batch_size
        self.val_path, self.val_views = val_path, val_views
        self.val_batch_size = batch_size if val_batch_size is None else val_batch_size
        self.batch_format, self.val_batch_format = batch_format, val_batch_format
        self.train_options = dict(train_options or {})
        self.val_options = {**VAL_DEFAULTS, **(val_options or {})}

    def train_dataloader(self) -> MappedLoader:
        return self._loader(self.train_path, self.views, self.batch_size, self.train_options, self.batch_format)

    def val_dataloader(self) -> MappedLoader | list:
        if self.val_path is None:
            return []  # Lightning: no validation batches
        return self._loader(self.val_path, self.val_views, self.val_batch_size, self.val_options,
                            self.val_batch_format)

    def _loader(self, path: str | os.PathLike, views: Any, batch_size: int, options: Mapping[str, Any],
                format_name: str | None) -> MappedLoader:
        """A new Loader for the current trainer (rank, world size, device), in the batch shape asked for."""
        options = dict(options)
        if format_name in NEEDS_INDICES:
            options["return_indices"] = True
        trainer = self.trainer
        if trainer is not None:
            options.update(distributed=True, rank=trainer.global_rank, world_size=trainer.world_size)
            root = trainer.strategy.root_device  # the Loader produces CPU or CUDA tensors; Lightning moves others
            options.setdefault("device", root if root.type == "cuda" else "cpu")
        return batch_format(Loader(path, batch_size, views, **options), format_name)
