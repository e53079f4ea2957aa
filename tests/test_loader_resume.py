"""Resumable epochs: state_dict / load_state_dict continue an epoch exactly where it stopped, on every rank."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastssl_loader import Loader, write_dataset
from fastssl_loader.batch_formats import batch_format
from fastssl_loader.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
from tests.conftest import natural_image

# the same views as tests/test_loader.py, so a full test run compiles them once
BIG = [RandomResizedCrop(32), RandomHorizontalFlip(), Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))]
SMALL = [RandomResizedCrop(16, scale=(0.05, 0.4)), RandomHorizontalFlip()]
N = 37


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    rng = np.random.default_rng(7)
    path = str(tmp_path_factory.mktemp("resume") / "data.fssl")
    write_dataset(path, [(natural_image(int(rng.integers(40, 90)), int(rng.integers(40, 90)), seed=i), i % 5)
                         for i in range(N)], mode="jpeg", num_workers=0, progress=False)
    return path


def _loader(path: str, rank: int, world_size: int) -> Loader:
    return Loader(path, 4, [BIG, SMALL], num_workers=2, order="random", seed=11, drop_last=False,
                  distributed=world_size > 1, rank=rank if world_size > 1 else None,
                  world_size=world_size if world_size > 1 else None, epoch=2, return_indices=True)


def _copy(batch) -> tuple:
    views, labels, ids = batch
    return [v.clone() for v in views], labels.clone(), ids.clone()


def _assert_same(got: list[tuple], expected: list[tuple]) -> None:
    assert len(got) == len(expected)
    for (gv, gl, gi), (ev, el, ei) in zip(got, expected):
        assert torch.equal(gi, ei) and torch.equal(gl, el)
        for a, b in zip(gv, ev):
            assert torch.equal(a, b)


@pytest.mark.parametrize("world_size", [1, 2])
def test_resuming_mid_epoch_yields_the_uninterrupted_batches(dataset, world_size):
    for rank in range(world_size):
        reference = _loader(dataset, rank, world_size)
        epoch2 = [_copy(b) for b in reference]
        epoch3 = [_copy(b) for b in reference]
        k = 3
        interrupted = _loader(dataset, rank, world_size)
        iterator = iter(interrupted)
        for _ in range(k):
            next(iterator)
        state = interrupted.state_dict()
        assert (state["epoch"], state["position"], state["rank"], state["world_size"]) == (2, k, rank, world_size)
        del iterator
        resumed = _loader(dataset, rank, world_size)
        resumed.load_state_dict(state)
        assert resumed.state_dict() == state
        rest = []
        for b in resumed:
            rest.append(_copy(b))
            if len(rest) < len(epoch2) - k:  # mid-epoch: the state counts the skipped batches too
                assert resumed.state_dict()["position"] == k + len(rest)
        assert len(epoch2) > k + 1
        _assert_same(rest, epoch2[k:])
        assert resumed.state_dict()["epoch"] == 3 and resumed.state_dict()["position"] == 0
        _assert_same([_copy(b) for b in resumed], epoch3)  # the next iteration is the next epoch, whole


def test_a_state_from_other_settings_is_refused(dataset):
    state = _loader(dataset, 0, 1).state_dict()
    assert state["position"] == 0 and state["epoch"] == 2
    other = Loader(dataset, 8, [BIG, SMALL], num_workers=1, order="random", seed=11, drop_last=False)
    with pytest.raises(ValueError, match="batch_size: state 4, loader 8"):
        other.load_state_dict(state)
    other_views = Loader(dataset, 4, [BIG, BIG], num_workers=1, order="random", seed=11, drop_last=False)
    with pytest.raises(ValueError, match="views"):
        other_views.load_state_dict(state)
    fast_idct = Loader(dataset, 4, [BIG, SMALL], num_workers=1, order="random", seed=11, drop_last=False,
                       jpeg_fast_idct=True)  # other pixels: a resumed run must not silently switch decoders
    with pytest.raises(ValueError, match="jpeg_fast_idct: state False, loader True"):
        fast_idct.load_state_dict(state)
    with pytest.raises(ValueError, match="lacks"):
        _loader(dataset, 0, 1).load_state_dict({"epoch": 1})
    with pytest.raises(ValueError, match="past the epoch"):
        _loader(dataset, 0, 1).load_state_dict(dict(state, position=100))


def test_set_epoch_of_the_restored_epoch_keeps_the_position(dataset):
    """Lightning (and DistributedSampler-style loops) call load_state_dict, then set_epoch(same epoch), then
    iterate: the restored mid-epoch position must survive that set_epoch; another epoch starts from its start."""
    reference = _loader(dataset, 0, 1)
    epoch2 = [_copy(b) for b in reference]
    state = dict(reference.state_dict(), epoch=2, position=3)
    same = batch_format(_loader(dataset, 0, 1), None)  # the Lightning wrapper forwards both calls
    same.load_state_dict(state)
    batches = iter(same)  # Lightning makes the iterator first; the epoch starts at the first next()
    same.set_epoch(2)
    _assert_same([_copy(b) for b in batches], epoch2[3:])
    other = _loader(dataset, 0, 1)
    other.load_state_dict(state)
    other.set_epoch(1)
    assert other.state_dict()["position"] == 0
    other.set_epoch(2)  # back to the restored epoch: the position was discarded, the epoch runs whole
    _assert_same([_copy(b) for b in other], epoch2)
