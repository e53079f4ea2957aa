"""Data movement for the kernels: channel split / merge of RGB rows and a 16 x 16 byte block transpose.

``split_channels`` / ``merge_channels`` move between interleaved RGB rows and three channel rows. Written with
unsigned indices, the stride-3 loops vectorise (LLVM's interleaved-access lowering); splitting a row first and
then working on contiguous channel rows is several times faster than strided per-channel loops.

``transpose16``: the resize's horizontal pass filters whole rows of a transposed image (see :mod:`.crop`), so it
transposes byte planes twice per view. Numba has no vector types and LLVM does not turn a scalar transpose into
shuffles, so this intrinsic emits the vector IR itself: sixteen 16-byte loads, four rounds of the byte "perfect
shuffle" (row ``2i`` of a round interleaves the low halves of rows ``i`` and ``i + 8``, row ``2i + 1`` their
high halves; four rounds transpose a 16 x 16 block), sixteen stores. LLVM lowers the shuffles to the target's unpack
instructions (SSE2/AVX2 ``punpck*``, NEON ``zip``), about 3.5x faster than transposing 8 x 8 blocks held in
64-bit words.

Under ``NUMBA_DISABLE_JIT=1`` an intrinsic cannot run, so the same block copy is done with NumPy.
"""
from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import config, types
from numba.extending import intrinsic

BLOCK = 16
_I64 = ir.IntType(64)
_ROW = ir.VectorType(ir.IntType(8), BLOCK)
_LOW_HALVES = ir.Constant(ir.VectorType(ir.IntType(32), BLOCK), [j for i in range(8) for j in (i, i + BLOCK)])
_HIGH_HALVES = ir.Constant(ir.VectorType(ir.IntType(32), BLOCK), [j for i in range(8, 16) for j in (i, i + BLOCK)])


def _transpose16_numpy(src: np.ndarray, src_start: int, src_stride: int, dst: np.ndarray, dst_start: int,
                       dst_stride: int) -> None:
    """Plain-Python twin of the intrinsic (same bytes moved)."""
    block = np.stack([src[src_start + k * src_stride:src_start + k * src_stride + BLOCK] for k in range(BLOCK)])
    for k in range(BLOCK):
        dst[dst_start + k * dst_stride:dst_start + k * dst_stride + BLOCK] = block[:, k]


@intrinsic
def _transpose16_intrinsic(typingctx, src, src_start, src_stride, dst, dst_start, dst_stride):
    """Row k of the block at ``src[src_start + k * src_stride:][:16]`` becomes column k of the block at
    ``dst[dst_start + k * dst_stride:][:16]``; both arrays 1-D contiguous uint8, indices unchecked."""
    if not all(isinstance(a, types.Array) and a.dtype == types.uint8 and a.ndim == 1 and a.layout == "C"
               for a in (src, dst)):
        return None

    def codegen(context, builder, signature, args):
        src_arr, src_pos, src_step, dst_arr, dst_pos, dst_step = args
        src_ptr = context.make_array(signature.args[0])(context, builder, src_arr).data
        dst_ptr = context.make_array(signature.args[3])(context, builder, dst_arr).data

        def row_pointer(base, pos, step, k):
            address = builder.gep(base, [builder.add(pos, builder.mul(step, ir.Constant(_I64, k)))])
            return builder.bitcast(address, _ROW.as_pointer())

        rows = [builder.load(row_pointer(src_ptr, src_pos, src_step, k), align=1) for k in range(BLOCK)]
        for _ in range(4):
            rows = [builder.shuffle_vector(rows[i // 2], rows[i // 2 + 8], _HIGH_HALVES if i % 2 else _LOW_HALVES)
                    for i in range(BLOCK)]
        for k in range(BLOCK):
            builder.store(rows[k], row_pointer(dst_ptr, dst_pos, dst_step, k), align=1)
        return context.get_dummy_value()

    return types.void(src, types.int64, types.int64, dst, types.int64, types.int64), codegen


transpose16 = _transpose16_numpy if config.DISABLE_JIT else _transpose16_intrinsic


@nb.njit(nogil=True, cache=True, inline="always")
def split_channels(line: np.ndarray, count: int, red: np.ndarray, green: np.ndarray, blue: np.ndarray) -> None:
    """``red[x], green[x], blue[x] = line[3x], line[3x + 1], line[3x + 2]`` for ``x < count``."""
    for x in range(count):
        p = np.uint64(3 * x)  # unsigned: no negative-index fix-up, so the stride-3 loads vectorise
        red[x], green[x], blue[x] = line[p], line[p + np.uint64(1)], line[p + np.uint64(2)]


@nb.njit(nogil=True, cache=True, inline="always")
def merge_channels(red: np.ndarray, green: np.ndarray, blue: np.ndarray, count: int, line: np.ndarray) -> None:
    """``line[3x], line[3x + 1], line[3x + 2] = red[x], green[x], blue[x]`` for ``x < count``."""
    for x in range(count):
        q = np.uint64(3 * x)
        line[q], line[q + np.uint64(1)], line[q + np.uint64(2)] = red[x], green[x], blue[x]
