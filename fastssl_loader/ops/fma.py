"""``fma32``: float32 ``a * b + c`` rounded once, for Numba kernels that must reproduce torch's arithmetic.

torch's CPU kernels compute ``add_(other, alpha=...)`` and its convolutions with fused multiply-adds. Calling
LLVM's ``fma`` intrinsic says so explicitly: the result does not depend on whether LLVM chooses to contract
``a * b + c`` (``fastmath={"contract"}`` allows it but does not promise it), and the loop still vectorises.

Under ``NUMBA_DISABLE_JIT=1`` (stepping through kernels in plain Python) an intrinsic cannot run, so the same
single rounding is computed exactly with fractions: slow, but the pixels equal the compiled kernels'.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
from numba.core import config, types
from numba.extending import intrinsic


def _fma32_exact(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """The float32 nearest to the exact ``a * b + c`` (ties to even), without double rounding."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    guess = np.float32(float(exact))  # may be one float32 off when float64 rounding hit a float32 midpoint
    best = guess
    for candidate in (np.nextafter(guess, np.float32(-np.inf)), np.nextafter(guess, np.float32(np.inf))):
        error, best_error = abs(Fraction(float(candidate)) - exact), abs(Fraction(float(best)) - exact)
        if error < best_error or (error == best_error and int(candidate.view(np.uint32)) % 2 == 0):
            best = candidate
    return np.float32(best)


@intrinsic
def _fma32_intrinsic(typingctx, a, b, c):
    """``a * b + c`` with one rounding; all three arguments must already be float32."""
    if not all(arg == types.float32 for arg in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


fma32 = _fma32_exact if config.DISABLE_JIT else _fma32_intrinsic
