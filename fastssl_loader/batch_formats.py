"""The batch shapes SSL frameworks expect, as one thin wrapper around a :class:`~fastssl_loader.Loader`.

::

    loader = Loader("train.fssl", 256, presets.byol(224), return_indices=True)
    for indexes, views, targets in batch_format(loader, "solo_learn"):
        ...

Formats (the Loader yields ``(views, labels, indices, ...)``; ``views`` is a list of [B, 3, H, W] tensors):

- ``"solo_learn"``: ``[indexes, [view_1, ..., view_n], targets]``, what solo-learn's pretraining step unpacks
  (``indexes, X, targets = batch``). Needs ``return_indices=True``.
- ``"lightly"``: ``(views, targets, filenames)``, the shape of lightly's ``MultiViewCollate``. The dataset file
  does not store source file names, so ``filenames`` are the sample indices as strings (``"0"``, ``"17"``, ...).
  Needs ``return_indices=True``.
- ``"classification"``: ``(images, targets)`` from a loader with exactly one view (an evaluation view), the
  shape of solo-learn's and lightly's validation steps.

The wrapper, :class:`MappedLoader`, behaves like the loader it wraps: ``len()``, ``set_epoch``, ``epoch``,
``close``, ``with`` blocks, and every other attribute (``state_dict``/``load_state_dict`` when the loader has
them) are the loader's. Batch validity is the loader's too: a CPU float32/uint8 batch is valid until the next
one is requested.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

Batch = tuple  # what a Loader yields: (views, labels[, indices][, params])


def _solo_learn(batch: Batch) -> list:
    views, labels, indices = batch[:3]
    return [indices, views, labels]


def _lightly(batch: Batch) -> tuple:
    views, labels, indices = batch[:3]
    return views, labels, [str(i) for i in indices.tolist()]


def _classification(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    views, labels = batch[:2]
    if len(views) != 1:
        raise ValueError(f"the 'classification' batch format needs a loader with exactly one view, "
                         f"got {len(views)} views")
    return views[0], labels


FORMATS: dict[str, Callable[[Batch], Any]] = {
    "solo_learn": _solo_learn, "lightly": _lightly, "classification": _classification}
NEEDS_INDICES = frozenset({"solo_learn", "lightly"})


class MappedLoader:
    """Iterates ``loader``, applying ``map_batch`` to every batch (none: batches pass unchanged).

    ``sampler`` is the wrapped loader: Lightning (like code written for ``DistributedSampler``) advances the
    epoch by calling ``dataloader.sampler.set_epoch(e)`` before each epoch, and this routes that call to the
    loader, so epoch e of the trainer is epoch e of the loader. ``batch_sampler`` is None, as for a
    ``DataLoader`` that does not batch (Lightning reads both).
    """

    batch_sampler = None

    def __init__(self, loader: Any, map_batch: Callable[[Batch], Any] | None = None) -> None:
        self.loader = loader
        self.map_batch = map_batch

    def __iter__(self) -> Iterator[Any]:
        """Batches of one epoch. The loader's epoch starts at the first ``next()``, not at ``iter()``, as with
        a ``DataLoader`` whose sampler is read lazily: Lightning creates the first epoch's iterator before it
        calls ``set_epoch(0)``, and calls ``iter()`` once only to check that the object is iterable."""
        for batch in self.loader:
            yield batch if self.map_batch is None else self.map_batch(batch)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def epoch(self) -> int:
        return self.loader.epoch

    @property
    def sampler(self) -> Any:
        return self.loader

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def close(self) -> None:
        self.loader.close()

    def __enter__(self) -> MappedLoader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name in ("loader", "map_batch"):  # not set yet (e.g. during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


def batch_format(loader: Any, name: str | None) -> MappedLoader:
    """``loader`` yielding batches in the shape ``name`` (see the module docstring); ``None``: unchanged."""
    if name is None:
        return MappedLoader(loader)
    if name not in FORMATS:
        raise ValueError(f"unknown batch format {name!r}; choose one of {sorted(FORMATS)} or None")
    if name in NEEDS_INDICES and not getattr(loader, "return_indices", False):
        raise ValueError(f"the {name!r} batch format needs the sample indices: create the loader with "
                         f"return_indices=True")
    return MappedLoader(loader, FORMATS[name])
