"""batch_format(): solo-learn, lightly and classification batch shapes around a real Loader, and a wrapper
that behaves like the loader (len, epochs, close, state) and starts its epoch at the first batch."""
from __future__ import annotations

import pytest
import torch

from fastssl_loader import Loader
from fastssl_loader.batch_formats import FORMATS, MappedLoader, batch_format
from fastssl_loader.ops import RandomHorizontalFlip, RandomResizedCrop
from fastssl_loader.presets import eval_view

VIEWS = [[RandomResizedCrop(16), RandomHorizontalFlip()], [RandomResizedCrop(12, scale=(0.1, 0.6))]]


def loader(path, views=VIEWS, **options) -> Loader:
    return Loader(path, 4, views, num_workers=1, seed=3, return_indices=True, **options)


def test_solo_learn_shape_holds_the_loaders_batches(jpeg_dataset):
    wrapped, plain = batch_format(loader(jpeg_dataset), "solo_learn"), loader(jpeg_dataset)
    assert len(wrapped) == len(plain) == 6
    count = 0
    for batch, (views, labels, indices) in zip(wrapped, plain):
        assert isinstance(batch, list) and len(batch) == 3
        indexes, x, targets = batch
        assert torch.equal(indexes, indices) and torch.equal(targets, labels)
        assert len(x) == 2 and all(torch.equal(a, b) for a, b in zip(x, views))
        count += 1
    assert count == 6


def test_lightly_shape_names_samples_by_index(jpeg_dataset):
    seen = []
    for views, targets, filenames in batch_format(loader(jpeg_dataset), "lightly"):
        assert [v.shape[1:] for v in views] == [(3, 16, 16), (3, 12, 12)]
        assert len(filenames) == len(targets) == 4 and all(isinstance(name, str) for name in filenames)
        seen += filenames
    assert sorted(seen, key=int) == [str(i) for i in range(24)]


def test_lightly_filenames_are_the_batch_indices(jpeg_dataset):
    wrapped, plain = batch_format(loader(jpeg_dataset), "lightly"), loader(jpeg_dataset)
    for (_, _, filenames), (_, _, indices) in zip(wrapped, plain):
        assert filenames == [str(i) for i in indices.tolist()]


def test_classification_shape_needs_one_view(jpeg_dataset):
    images, labels = next(iter(batch_format(loader(jpeg_dataset, [eval_view(16)]), "classification")))
    assert images.shape == (4, 3, 16, 16) and labels.shape == (4,)
    with pytest.raises(ValueError, match="exactly one view"):
        next(iter(batch_format(loader(jpeg_dataset), "classification")))


def test_bad_format_or_missing_indices_is_a_clear_error(jpeg_dataset):
    with pytest.raises(ValueError, match="unknown batch format 'simclr'"):
        batch_format(loader(jpeg_dataset), "simclr")
    plain = Loader(jpeg_dataset, 4, VIEWS, num_workers=1)
    for name in ("solo_learn", "lightly"):
        with pytest.raises(ValueError, match="return_indices=True"):
            batch_format(plain, name)
    assert set(FORMATS) == {"solo_learn", "lightly", "classification"}


def test_none_passes_batches_unchanged(jpeg_dataset):
    wrapped, plain = batch_format(loader(jpeg_dataset), None), loader(jpeg_dataset)
    for (views, labels, indices), (v2, l2, i2) in zip(wrapped, plain):
        assert torch.equal(indices, i2) and torch.equal(labels, l2) and torch.equal(views[0], v2[0])


def test_forwards_epochs_len_close_and_attributes(jpeg_dataset):
    inner = loader(jpeg_dataset)
    wrapped = batch_format(inner, "solo_learn")
    assert len(wrapped) == len(inner) and wrapped.rank == 0 and wrapped.param_names(0) == inner.param_names(0)
    assert wrapped.sampler is inner and wrapped.batch_sampler is None
    first = [b[0].tolist() for b in wrapped]
    assert wrapped.epoch == inner.epoch == 0
    second = [b[0].tolist() for b in wrapped]  # like the loader: each iteration is the next epoch
    assert wrapped.epoch == 1 and second != first
    wrapped.sampler.set_epoch(0)  # what Lightning calls
    assert [b[0].tolist() for b in wrapped] == first and wrapped.epoch == 0
    wrapped.set_epoch(1)
    assert [b[0].tolist() for b in wrapped] == second
    with wrapped:
        batches = iter(wrapped)
        next(batches)
    assert list(batches) == []  # leaving the with block closed the loader: its epoch ends


def test_epoch_starts_at_the_first_batch_not_at_iter(jpeg_dataset):
    """Lightning calls iter() before set_epoch(0), and once just to check iterability."""
    wrapped = batch_format(loader(jpeg_dataset), "solo_learn")
    reference = [b[0].tolist() for b in batch_format(loader(jpeg_dataset, epoch=5), "solo_learn")]
    iter(wrapped)  # dropped unused: consumes no epoch
    batches = iter(wrapped)
    wrapped.set_epoch(5)
    assert [b[0].tolist() for b in batches] == reference
    assert wrapped.epoch == 5


def test_state_dict_is_forwarded_only_when_the_loader_has_one(jpeg_dataset):
    class StatefulLoader(Loader):  # stands for a loader version with resumable epochs
        def state_dict(self) -> dict:
            return {"epoch": self.epoch}

        def load_state_dict(self, state: dict) -> None:
            self.set_epoch(state["epoch"])

    plain = batch_format(loader(jpeg_dataset), "solo_learn")
    assert hasattr(plain, "state_dict") == hasattr(Loader, "state_dict")
    stateful = batch_format(StatefulLoader(jpeg_dataset, 4, VIEWS, num_workers=1, return_indices=True), "lightly")
    assert stateful.state_dict() == {"epoch": 0}
    stateful.load_state_dict({"epoch": 7})
    next(iter(stateful))
    assert stateful.epoch == 7
    assert isinstance(stateful, MappedLoader)
