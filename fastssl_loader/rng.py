"""Counter-based randomness keyed by (seed, epoch, sample, view).

Every (seed, epoch, sample index, view index) gets its own SplitMix64 stream, derived by hashing the key.
Nothing is shared between threads, so augmentations do not depend on ``num_workers``, batch composition or
world size, and a new epoch gives new augmentations. All functions are Numba ``njit(nogil=True)`` and take the
stream state as a 1-element ``uint64`` array that they advance in place.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@nb.njit(nogil=True, cache=True)
def mix64(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser: a bijective avalanche of 64 bits."""
    z = np.uint64(z)
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@nb.njit(nogil=True, cache=True)
def stream_key(seed: int, epoch: int, sample: int, view: int) -> np.uint64:
    """Starting state of the stream for one (seed, epoch, sample, view)."""
    k = mix64(np.uint64(seed) + _GOLDEN)
    k = mix64(k ^ (np.uint64(epoch) + _GOLDEN))
    k = mix64(k ^ (np.uint64(sample) + _GOLDEN))
    return mix64(k ^ (np.uint64(view) + _GOLDEN))


@nb.njit(nogil=True, cache=True)
def new_state(seed: int, epoch: int, sample: int, view: int) -> np.ndarray:
    """A fresh stream state (1-element uint64 array) for one (seed, epoch, sample, view)."""
    state = np.empty(1, dtype=np.uint64)
    state[0] = stream_key(seed, epoch, sample, view)
    return state


@nb.njit(nogil=True, cache=True)
def next_u64(state: np.ndarray) -> np.uint64:
    """Next 64 random bits of the stream."""
    state[0] = state[0] + _GOLDEN
    return mix64(state[0])


@nb.njit(nogil=True, cache=True)
def rand(state: np.ndarray) -> float:
    """Uniform float in [0, 1) with 53 random bits (like ``torch.rand(1)``)."""
    return float(next_u64(state) >> np.uint64(11)) * _TO_UNIT


@nb.njit(nogil=True, cache=True)
def uniform(state: np.ndarray, low: float, high: float) -> float:
    """Uniform float in [low, high) (like ``torch.empty(1).uniform_(low, high)``)."""
    return low + (high - low) * rand(state)


@nb.njit(nogil=True, cache=True)
def randint(state: np.ndarray, low: int, high: int) -> int:
    """Uniform integer in [low, high) (like ``torch.randint(low, high, (1,))``); unbiased by rejection."""
    span = np.uint64(high - low)
    limit = np.uint64(0xFFFFFFFFFFFFFFFF) - (np.uint64(0xFFFFFFFFFFFFFFFF) % span)
    while True:
        r = next_u64(state)
        if r < limit:
            return low + np.int64(r % span)


@nb.njit(nogil=True, cache=True)
def permutation4(state: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (int64[4]) with a uniform random permutation of 0..3 (like ``torch.randperm(4)``)."""
    for i in range(4):
        out[i] = i
    for i in range(3, 0, -1):
        j = randint(state, 0, i + 1)
        tmp = out[i]
        out[i] = out[j]
        out[j] = tmp
