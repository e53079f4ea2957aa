"""The vector-register byte transpose against NumPy's, and the plan cache's view of it."""
from __future__ import annotations

import inspect

import numba as nb
import numpy as np
import pytest

from fastssl_loader.ops import crop, simd
from fastssl_loader.plan import _python_function, jitted_dependencies


@nb.njit
def _compiled_transpose16(src, src_start, src_stride, dst, dst_start, dst_stride):
    simd.transpose16(src, src_start, src_stride, dst, dst_start, dst_stride)


@pytest.mark.parametrize("transpose", [_compiled_transpose16, simd._transpose16_numpy], ids=["compiled", "numpy"])
def test_transpose16_moves_one_block_between_strided_rows(transpose) -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, 40 * 37, dtype=np.uint8)
    dst = np.zeros(30 * 41, np.uint8)
    transpose(src, 5 * 37 + 3, 37, dst, 2 * 41 + 7, 41)
    block = src.reshape(40, 37)[5:21, 3:19]
    expected = np.zeros((30, 41), np.uint8)
    expected[2:18, 7:23] = block.T
    np.testing.assert_array_equal(dst.reshape(30, 41), expected)  # and not a byte outside the block


def test_transpose_plane_equals_numpy_transpose() -> None:
    rng = np.random.default_rng(1)
    rows, cols = 48, 80
    src = rng.integers(0, 256, (rows, cols), dtype=np.uint8)
    dst = np.empty((cols, rows), np.uint8)
    crop._transpose_plane(src.reshape(-1), 0, cols, dst.reshape(-1), 0, rows, rows, cols)
    np.testing.assert_array_equal(dst, src.T)


def test_the_plan_cache_key_covers_the_intrinsics_module() -> None:
    """An edit of simd.py must invalidate cached kernels that inline transpose16 (as for any helper module):
    the intrinsic is among the resize's dependencies, so its file is part of their source digest."""
    reached = jitted_dependencies([crop.apply_box])
    assert simd.transpose16 in reached
    assert inspect.getsourcefile(_python_function(simd.transpose16)) == inspect.getsourcefile(simd)


@nb.njit
def _split_then_merge(line, count, red, green, blue, back):
    simd.split_channels(line, count, red, green, blue)
    simd.merge_channels(red, green, blue, count, back)


def test_split_and_merge_channels_equal_numpy_slicing() -> None:
    rng = np.random.default_rng(2)
    line = rng.integers(0, 256, 3 * 37 + 5, dtype=np.uint8)  # a longer row: only `count` pixels are touched
    red, green, blue = (np.zeros(40, np.uint8) for _ in range(3))
    back = np.zeros_like(line)
    _split_then_merge(line, 37, red, green, blue, back)
    for channel, plane in enumerate((red, green, blue)):
        np.testing.assert_array_equal(plane[:37], line[channel:3 * 37:3])
        assert not plane[37:].any()
    np.testing.assert_array_equal(back[:3 * 37], line[:3 * 37])
    assert not back[3 * 37:].any()


def test_transpose16_refuses_strided_arrays() -> None:
    """Byte offsets address the array's memory directly, so a strided view must not compile (it would read the
    wrong bytes)."""
    from numba.core.errors import TypingError

    strided = np.zeros(512, np.uint8)[::2]
    with pytest.raises(TypingError):
        _compiled_transpose16(strided, 0, 16, np.zeros(256, np.uint8), 0, 16)
