"""``fma32``: float32 ``a * b + c`` rounded once, for Numba kernels that must reproduce torch's arithmetic.

torch's CPU kernels compute ``add_(other, alpha=...)`` and its convolutions with fused multiply-adds. Calling
LLVM's ``fma`` intrinsic says so explicitly: the result does not depend on whether LLVM chooses to contract
``a * b + c`` (``fastmath={"contract"}`` allows it but does not promise it), and the loop still vectorises.
"""
from __future__ import annotations

from numba.core import types
from numba.extending import intrinsic


@intrinsic
def fma32(typingctx, a, b, c):
    """``a * b + c`` with one rounding; all three arguments must already be float32."""
    if not all(arg == types.float32 for arg in (a, b, c)):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen
