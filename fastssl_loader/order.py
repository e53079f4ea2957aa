"""Sample orders (sequential, random, quasi_random), distributed sharding and batching for one epoch.

The pipeline for one epoch is ``permutation -> shard -> batches``:

1. :func:`epoch_permutation` gives every sample index exactly once, in an order derived only from
   ``(seed, epoch)`` (a numpy ``Generator``), so every rank computes the same permutation.
2. :func:`shard` gives rank ``r`` of ``W`` the strided slice ``perm[r::W]`` of that permutation (like
   ``torch.utils.data.DistributedSampler``). When ``N % W != 0``: ``drop_last=True`` first drops the
   permutation's last ``N % W`` samples so every rank gets ``N // W``; ``drop_last=False`` pads the
   permutation by repeating its first samples so every rank gets ``ceil(N / W)`` (those few samples are
   seen twice in that epoch). Either way all ranks get the same count, so collective ops never stall.
3. :func:`split_batches` cuts a rank's shard into batches; ``drop_last=True`` drops an incomplete last batch.

``quasi_random`` is a page-local random order for files larger than RAM. Samples are grouped into chunks
of ``chunk_bytes`` of contiguous file bytes. Samples are shuffled inside each chunk, and the chunk order is
shuffled too. The order then draws from a bounded active set of ``active_chunks`` chunks: each step emits
the next sample of an active chunk picked uniformly at random. A chunk leaves the set when it is used up,
and the next chunk in the shuffled order takes its place. Memory bound: a chunk is read from start to
finish while it is active, so any stretch of the order touches at most ``active_chunks * chunk_bytes``
bytes of open chunks. Chunks that are finished are never touched again in that epoch, so the OS can evict
their pages. It is sharded like the other orders, so it also works with ``distributed=True``. All ranks
walk the same active chunks at the same time, and they share one page cache on a node.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

ORDERS = ("sequential", "random", "quasi_random")

#: quasi_random defaults: 4 MiB chunks, 64 of them active (a 256 MiB working set of file bytes)
DEFAULT_CHUNK_BYTES = 4 << 20
DEFAULT_ACTIVE_CHUNKS = 64

_ORDER_TAG = {"random": 1, "quasi_random": 2}


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of {', '.join(ORDERS)}")


def epoch_permutation(n: int, order: str, seed: int, epoch: int, *, offsets: np.ndarray | None = None,
                      chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                      active_chunks: int = DEFAULT_ACTIVE_CHUNKS) -> np.ndarray:
    """All sample indices ``0..n-1`` once each (int64 [n]), in ``order`` for ``(seed, epoch)``.

    ``offsets`` (the samples' byte offsets in the file) is required by ``quasi_random`` only.
    """
    _check_order(order)
    if n < 0 or seed < 0 or epoch < 0:
        raise ValueError(f"n, seed and epoch must be >= 0, got n={n}, seed={seed}, epoch={epoch}")
    if order == "sequential":
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch, _ORDER_TAG[order]])
    if order == "random":
        return rng.permutation(n).astype(np.int64)
    if offsets is None or len(offsets) != n:
        raise ValueError("quasi_random needs the samples' byte offsets (one per sample)")
    if chunk_bytes < 1 or active_chunks < 1:
        raise ValueError(f"chunk_bytes and active_chunks must be >= 1, got {chunk_bytes}, {active_chunks}")
    return _quasi_random(np.asarray(offsets, dtype=np.int64), rng, chunk_bytes, active_chunks)


def _quasi_random(offsets: np.ndarray, rng: np.random.Generator, chunk_bytes: int,
                  active_chunks: int) -> np.ndarray:
    """Samples grouped by file chunk, shuffled within and across chunks, drawn from a bounded active set."""
    n = len(offsets)
    chunk = _chunk_ids(offsets // chunk_bytes)
    num_chunks = int(chunk.max()) + 1 if n else 0
    chunk_position = rng.permutation(num_chunks)[chunk]  # where each sample's chunk comes in the chunk order
    grouped, ends = _group_by_chunk(chunk_position, rng.random(n), num_chunks)  # chunk by chunk, shuffled inside
    return _interleave_chunks(grouped, ends, rng.random(n), active_chunks)


def _non_decreasing(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))


def _chunk_ids(chunk: np.ndarray) -> np.ndarray:
    """Each sample's chunk as a dense id 0..C-1 in increasing chunk order (``np.unique``'s inverse).

    A written file's offsets grow with the sample index, so its chunk numbers never decrease and the ids are
    a running count of changes: one linear pass instead of ``np.unique``'s sort.
    """
    if not _non_decreasing(chunk):
        return np.unique(chunk, return_inverse=True)[1].reshape(-1).astype(np.int64)
    ids = np.zeros(len(chunk), dtype=np.int64)
    np.cumsum(chunk[1:] != chunk[:-1], out=ids[1:])
    return ids


_RADIX_BITS = 11  # radix sort digit: 6 passes over 64-bit keys, 2,048 counters (measured faster than 8 or 16)


@nb.njit(nogil=True, cache=True)
def _group_by_chunk(chunk_position: np.ndarray, keys: np.ndarray, num_chunks: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``np.lexsort((keys, chunk_position))`` and the end of each chunk's run in it, in linear time.

    Sample ids chunk by chunk (in ``chunk_position`` order), each chunk's ids in increasing ``keys`` order,
    equal keys in increasing id order. ``keys`` are non-negative floats (``Generator.random``), whose IEEE
    bit patterns sort as the values do, so each chunk is radix-sorted on them; a stable counting sort by
    chunk first keeps every chunk's sort inside the cache (at 1.28 M samples about 10x faster than lexsort;
    ``python -m benches.order_speed`` times the whole order against the first implementation).
    """
    n = len(chunk_position)
    counts = np.zeros(num_chunks, dtype=np.int64)
    for i in range(n):
        counts[chunk_position[i]] += 1
    ends = np.cumsum(counts)
    fill = ends - counts
    grouped = np.empty(n, dtype=np.int64)
    for i in range(n):
        grouped[fill[chunk_position[i]]] = i
        fill[chunk_position[i]] += 1
    bits = keys.view(np.uint64)
    scratch = np.empty(counts.max() if num_chunks else 0, dtype=np.int64)
    digit_counts = np.empty(1 << _RADIX_BITS, dtype=np.int64)
    start = 0
    for c in range(num_chunks):
        _stable_sort_by_bits(grouped[start:ends[c]], bits, scratch, digit_counts)
        start = ends[c]
    return grouped, ends


@nb.njit(nogil=True, cache=True)
def _stable_sort_by_bits(ids: np.ndarray, bits: np.ndarray, scratch: np.ndarray,
                         digit_counts: np.ndarray) -> None:
    """Sort ``ids`` in place by ``bits[ids]``, stably: insertion sort when short, else LSD radix sort."""
    m = len(ids)
    if m < 64:
        for a in range(1, m):
            value = ids[a]
            key = bits[value]
            b = a - 1
            while b >= 0 and bits[ids[b]] > key:
                ids[b + 1] = ids[b]
                b -= 1
            ids[b + 1] = value
        return
    mask = np.uint64((1 << _RADIX_BITS) - 1)
    src, dst = ids, scratch[:m]
    in_scratch = False
    for shift in range(0, 64, _RADIX_BITS):
        s = np.uint64(shift)
        digit_counts[:] = 0
        for a in range(m):
            digit_counts[(bits[src[a]] >> s) & mask] += 1
        if digit_counts[(bits[src[0]] >> s) & mask] == m:
            continue  # every key has this digit: the pass would move nothing
        total = 0
        for d in range(len(digit_counts)):
            count = digit_counts[d]
            digit_counts[d] = total
            total += count
        for a in range(m):
            value = src[a]
            d = (bits[value] >> s) & mask
            dst[digit_counts[d]] = value
            digit_counts[d] += 1
        src, dst = dst, src
        in_scratch = not in_scratch
    if in_scratch:
        ids[:] = src


@nb.njit(nogil=True, cache=True)
def _interleave_chunks(grouped: np.ndarray, ends: np.ndarray, picks: np.ndarray,
                       active_chunks: int) -> np.ndarray:
    """Emit ``grouped`` (chunks back to back, chunk c ending at ``ends[c]``) through a bounded active set.

    ``picks[k]`` in [0, 1) chooses which active chunk gives the k-th sample.
    """
    out = np.empty(len(grouped), dtype=np.int64)
    cursor = np.empty(active_chunks, dtype=np.int64)  # next position in ``grouped`` for each active slot
    chunk_of = np.empty(active_chunks, dtype=np.int64)
    n_active = 0
    next_chunk = 0
    while n_active < active_chunks and next_chunk < len(ends):
        cursor[n_active] = 0 if next_chunk == 0 else ends[next_chunk - 1]
        chunk_of[n_active] = next_chunk
        n_active += 1
        next_chunk += 1
    for k in range(len(grouped)):
        j = min(int(picks[k] * n_active), n_active - 1)
        out[k] = grouped[cursor[j]]
        cursor[j] += 1
        if cursor[j] == ends[chunk_of[j]]:
            if next_chunk < len(ends):
                cursor[j] = ends[next_chunk - 1]
                chunk_of[j] = next_chunk
                next_chunk += 1
            else:
                n_active -= 1
                cursor[j] = cursor[n_active]
                chunk_of[j] = chunk_of[n_active]
    return out


def shard_size(n: int, world_size: int, drop_last: bool) -> int:
    """Samples per rank: ``n // world_size`` with drop_last, else ``ceil(n / world_size)``."""
    return n // world_size if drop_last else -(-n // world_size)


def shard(perm: np.ndarray, rank: int, world_size: int, drop_last: bool) -> np.ndarray:
    """Rank ``rank``'s strided share of ``perm`` (see the module docstring for the N % W rule)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    n = len(perm)
    total = shard_size(n, world_size, drop_last) * world_size
    if total > n:
        perm = np.resize(perm, total)  # repeats from the start as often as needed
    return perm[rank:total:world_size]


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches that ``n`` samples make."""
    return n // batch_size if drop_last else -(-n // batch_size)


def split_batches(indices: np.ndarray, batch_size: int, drop_last: bool) -> list[np.ndarray]:
    """Consecutive batches of ``indices``; an incomplete last batch is dropped when ``drop_last``."""
    count = num_batches(len(indices), batch_size, drop_last)
    return [indices[b * batch_size:(b + 1) * batch_size] for b in range(count)]


@dataclass(frozen=True, eq=False)  # holds an array: compare by identity
class EpochOrder:
    """Which samples go into which batch, for one rank, epoch after epoch."""

    num_samples: int
    batch_size: int
    order: str = "random"
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    drop_last: bool = True
    offsets: np.ndarray | None = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    active_chunks: int = DEFAULT_ACTIVE_CHUNKS

    def __post_init__(self) -> None:
        _check_order(self.order)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={self.rank}, world_size={self.world_size}")
        if self.order == "quasi_random" and self.offsets is None:
            raise ValueError("order='quasi_random' needs the samples' byte offsets")

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return num_batches(shard_size(self.num_samples, self.world_size, self.drop_last), self.batch_size,
                           self.drop_last)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches (int64 sample indices) for ``epoch``."""
        perm = epoch_permutation(self.num_samples, self.order, self.seed, epoch, offsets=self.offsets,
                                 chunk_bytes=self.chunk_bytes, active_chunks=self.active_chunks)
        return split_batches(shard(perm, self.rank, self.world_size, self.drop_last), self.batch_size,
                             self.drop_last)
