"""Counter-based streams: uniformity, independence between and within streams, determinism."""
from __future__ import annotations

import itertools

import numba as nb
import numpy as np
import pytest
from scipy import stats

from fastssl_loader import rng

N = 20000


@nb.njit(cache=True)
def _stream(seed, epoch, sample, view, n):
    state = rng.new_state(seed, epoch, sample, view)
    out = np.empty(n)
    for i in range(n):
        out[i] = rng.rand(state)
    return out


@nb.njit(cache=True)
def _first_draws(seed, epoch, view, samples):
    out = np.empty(samples)
    for s in range(samples):
        out[s] = rng.rand(rng.new_state(seed, epoch, s, view))
    return out


@nb.njit(cache=True)
def _randints(low, high, n):
    state = rng.new_state(1, 2, 3, 4)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = rng.randint(state, low, high)
    return out


@nb.njit(cache=True)
def _permutations(n):
    state = rng.new_state(9, 0, 0, 0)
    out = np.empty((n, 4), np.int64)
    perm = np.empty(4, np.int64)
    for i in range(n):
        rng.permutation4(state, perm)
        out[i] = perm
    return out


def test_rand_is_uniform_within_a_stream() -> None:
    draws = _stream(0, 0, 0, 0, N)
    assert draws.min() >= 0.0 and draws.max() < 1.0
    assert stats.kstest(draws, "uniform").pvalue > 1e-3


def test_first_draw_is_uniform_across_samples() -> None:
    """The loader draws few numbers per stream, so the first draw over consecutive sample ids must be uniform."""
    assert stats.kstest(_first_draws(0, 0, 0, N), "uniform").pvalue > 1e-3


def test_streams_and_successive_draws_are_uncorrelated() -> None:
    bound = 5 / np.sqrt(N)
    draws = _stream(3, 1, 7, 0, N)
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < bound
    neighbours = [_first_draws(0, e, v, N) for e, v in ((0, 0), (1, 0), (0, 1))]
    for a, b in itertools.combinations(neighbours, 2):  # adjacent epochs and views
        assert abs(np.corrcoef(a, b)[0, 1]) < bound
    a = neighbours[0]
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < bound  # adjacent sample ids


def test_every_key_field_matters_and_streams_are_reproducible() -> None:
    keys = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (0, 1, 2, 3), (0, 3, 2, 1),
            (0, 2, 1, 3)]  # permuted fields must not collide
    firsts = [rng.stream_key(*k) for k in keys]
    assert len(set(firsts)) == len(keys)
    np.testing.assert_array_equal(_stream(4, 5, 6, 7, 100), _stream(4, 5, 6, 7, 100))


def test_uniform_range() -> None:
    state = rng.new_state(0, 0, 0, 0)
    draws = np.array([rng.uniform(state, -2.0, 3.0) for _ in range(2000)])
    assert draws.min() >= -2.0 and draws.max() < 3.0
    assert stats.kstest((draws + 2.0) / 5.0, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("low,high", [(3, 10), (0, 2), (-5, 1)])
def test_randint_is_uniform(low: int, high: int) -> None:
    draws = _randints(low, high, N)
    assert draws.min() == low and draws.max() == high - 1
    counts = np.bincount(draws - low, minlength=high - low)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_randint_single_value() -> None:
    assert set(_randints(4, 5, 50).tolist()) == {4}


def test_permutation4_is_uniform_over_24_orders() -> None:
    perms = _permutations(N)
    assert np.all(np.sort(perms, axis=1) == np.arange(4))
    codes = perms @ np.array([64, 16, 4, 1])
    _, counts = np.unique(codes, return_counts=True)
    assert len(counts) == 24
    assert stats.chisquare(counts).pvalue > 1e-3
