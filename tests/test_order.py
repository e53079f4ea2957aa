"""Orders, sharding and batching: exactly-once coverage, determinism, the N % W rule, quasi_random locality."""
from __future__ import annotations

import numpy as np
import pytest

from fastssl_loader.order import (ORDERS, EpochOrder, _group_by_chunk, _interleave_chunks, epoch_permutation,
                                  num_batches, shard, shard_size, split_batches)

N = 103  # prime: N % W != 0 for W = 2, 3, 4
OFFSETS = np.cumsum(np.r_[0, np.full(N - 1, 1000)]).astype(np.int64)  # 1000-byte samples back to back


def _perm(order: str, seed: int = 0, epoch: int = 0, **kw) -> np.ndarray:
    return epoch_permutation(N, order, seed, epoch, offsets=OFFSETS, chunk_bytes=4000, **kw)


@pytest.mark.parametrize("order", ORDERS)
def test_permutation_covers_every_sample_once(order):
    perm = _perm(order)
    assert perm.dtype == np.int64
    np.testing.assert_array_equal(np.sort(perm), np.arange(N))


@pytest.mark.parametrize("order", ["random", "quasi_random"])
def test_permutation_depends_on_seed_and_epoch_only(order):
    np.testing.assert_array_equal(_perm(order, 3, 5), _perm(order, 3, 5))
    assert not np.array_equal(_perm(order, 3, 5), _perm(order, 3, 6))
    assert not np.array_equal(_perm(order, 3, 5), _perm(order, 4, 5))
    assert not np.array_equal(_perm(order), np.arange(N))


def test_sequential_is_file_order():
    np.testing.assert_array_equal(_perm("sequential", 7, 9), np.arange(N))


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [True, False])
def test_shards_are_disjoint_equal_and_cover(order, world, drop_last):
    perm = _perm(order, epoch=2)
    shards = [shard(perm, r, world, drop_last) for r in range(world)]
    sizes = {len(s) for s in shards}
    assert sizes == {shard_size(N, world, drop_last)}
    union = np.concatenate(shards)
    counts = np.bincount(union, minlength=N)
    if drop_last:  # every kept sample exactly once; only the permutation's tail (N % W samples) is dropped
        assert counts.max() == 1
        assert counts.sum() == N - N % world
        np.testing.assert_array_equal(np.flatnonzero(counts == 0), np.sort(perm[N - N % world:]))
    else:  # every sample at least once; the padding repeats the permutation's first samples
        assert counts.min() == 1
        pad = (-N) % world
        assert counts.sum() == N + pad
        np.testing.assert_array_equal(np.flatnonzero(counts == 2), np.sort(perm[:pad]))


def test_shard_pads_when_world_exceeds_samples():
    perm = np.arange(3, dtype=np.int64)
    shards = [shard(perm, r, 5, drop_last=False) for r in range(5)]
    assert [len(s) for s in shards] == [1] * 5
    assert set(np.concatenate(shards)) == {0, 1, 2}
    assert all(len(shard(perm, r, 5, drop_last=True)) == 0 for r in range(5))


def test_split_batches_drop_last():
    idx = np.arange(10)
    assert [len(b) for b in split_batches(idx, 4, True)] == [4, 4]
    assert [len(b) for b in split_batches(idx, 4, False)] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(split_batches(idx, 4, False)), idx)
    assert num_batches(10, 4, True) == 2 and num_batches(10, 4, False) == 3


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [True, False])
def test_epoch_order_batches_match_len_and_cover(order, world, drop_last):
    ranks = [EpochOrder(N, 8, order, seed=1, rank=r, world_size=world, drop_last=drop_last, offsets=OFFSETS,
                        chunk_bytes=4000) for r in range(world)]
    per_rank = [o.batches(epoch=4) for o in ranks]
    assert {len(b) for b in per_rank} == {len(ranks[0])}  # equal batch counts on every rank
    for o, batches in zip(ranks, per_rank):
        assert len(batches) == len(o)
        assert all(len(b) == 8 for b in batches[:-1])
        if drop_last:
            assert all(len(b) == 8 for b in batches)
    union = np.concatenate([np.concatenate(b) for b in per_rank if b])
    if drop_last:
        assert len(np.unique(union)) == len(union)  # no sample twice
    else:
        assert set(union) == set(range(N))  # every sample at least once


def test_quasi_random_active_set_is_bounded():
    """At any point at most ``active_chunks`` chunks are open (started but not finished)."""
    n, chunk_bytes, active = 2000, 10_000, 5
    sizes = np.random.default_rng(0).integers(200, 2000, n)
    offsets = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    perm = epoch_permutation(n, "quasi_random", 0, 1, offsets=offsets, chunk_bytes=chunk_bytes,
                             active_chunks=active)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    chunk = offsets[perm] // chunk_bytes
    first = {c: np.flatnonzero(chunk == c)[0] for c in np.unique(chunk)}
    last = {c: np.flatnonzero(chunk == c)[-1] for c in np.unique(chunk)}
    open_at = np.zeros(n, dtype=int)
    for c in first:
        open_at[first[c]:last[c] + 1] += 1
    assert open_at.max() <= active
    assert open_at.max() == active  # and it does use the whole active set: it is not sequential
    assert len(first) > active


def _quasi_random_oracle(n: int, seed: int, epoch: int, offsets: np.ndarray, chunk_bytes: int,
                         active_chunks: int) -> np.ndarray:
    """The first quasi_random implementation (np.unique + np.lexsort), kept as the reproducibility oracle."""
    rng = np.random.default_rng([seed, epoch, 2])
    _, chunk = np.unique(offsets // chunk_bytes, return_inverse=True)
    num_chunks = int(chunk.max()) + 1 if n else 0
    chunk_position = rng.permutation(num_chunks)[chunk]
    grouped = np.lexsort((rng.random(n), chunk_position)).astype(np.int64)
    ends = np.cumsum(np.bincount(chunk_position, minlength=num_chunks)).astype(np.int64)
    return _interleave_chunks(grouped, ends, rng.random(n), active_chunks)


def _offsets(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind in ("written", "empty-payloads"):  # back to back, growing, as the writer lays samples out
        sizes = rng.integers(1, 3000, n) if kind == "written" else rng.integers(0, 3, n) * 500  # 0: same offset
        return (128 + np.cumsum(sizes) - sizes).astype(np.int64)
    return rng.permutation(np.arange(n, dtype=np.int64) * 700)  # not in file order: the np.unique path


@pytest.mark.parametrize("kind", ["written", "empty-payloads", "shuffled"])
@pytest.mark.parametrize("n, chunk_bytes, active_chunks", [
    (0, 4096, 4), (1, 4096, 4), (2, 1, 1), (500, 1, 3), (3000, 2000, 1), (3000, 10_000, 7), (20_000, 1 << 20, 64),
    (20_000, 1 << 30, 64), (20_000, 150_000, 2)])
def test_quasi_random_is_the_same_permutation_as_the_first_implementation(kind, n, chunk_bytes, active_chunks):
    """The order is part of the reproducibility contract: a faster implementation must not change it."""
    offsets = _offsets(kind, n, seed=n)
    for seed, epoch in [(0, 0), (0, 1), (7, 3), (123456, 99)]:
        np.testing.assert_array_equal(
            epoch_permutation(n, "quasi_random", seed, epoch, offsets=offsets, chunk_bytes=chunk_bytes,
                              active_chunks=active_chunks),
            _quasi_random_oracle(n, seed, epoch, offsets, chunk_bytes, active_chunks))


@pytest.mark.parametrize("chunk_size", [1, 5, 63, 64, 65, 5000])
def test_group_by_chunk_is_lexsort_even_with_equal_keys(chunk_size):
    """Equal keys (which ``Generator.random`` could draw) keep sample order, as lexsort's stable sort does."""
    rng = np.random.default_rng(chunk_size)
    n = 20 * chunk_size
    num_chunks = -(-n // chunk_size)
    chunk_position = rng.permutation(num_chunks)[np.arange(n) // chunk_size]
    keys = rng.random(n)
    keys[rng.integers(0, n, n // 3)] = keys[rng.integers(0, n, n // 3)]  # many ties, inside chunks and across
    keys[: n // 4] = 0.5
    keys[rng.integers(0, n, 10)] = 0.0
    grouped, ends = _group_by_chunk(chunk_position, keys, num_chunks)
    np.testing.assert_array_equal(grouped, np.lexsort((keys, chunk_position)))
    np.testing.assert_array_equal(ends, np.cumsum(np.bincount(chunk_position, minlength=num_chunks)))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown order 'shuffle'"):
        epoch_permutation(5, "shuffle", 0, 0)
    with pytest.raises(ValueError, match="offsets"):
        epoch_permutation(5, "quasi_random", 0, 0)
    with pytest.raises(ValueError, match="rank"):
        shard(np.arange(5), 2, 2, True)
    with pytest.raises(ValueError, match="batch_size"):
        EpochOrder(5, 0)
    with pytest.raises(ValueError, match="seed"):
        epoch_permutation(5, "random", -1, 0)
