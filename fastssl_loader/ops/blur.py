"""GaussianBlur: torchvision v2 ``gaussian_blur`` on uint8 images, run as two separable float32 passes.

torchvision convolves the reflect-padded float32 image with the outer product of two normalised 1-D
gaussians and rounds back to uint8. The same result comes from a horizontal then a vertical 1-D pass (we
accumulate in float32 too; only the summation order differs, so a pixel can land one level away when its
value sits on a rounding boundary). Each pass folds the symmetric kernel (``w[t] == w[k-1-t]``) to halve the
multiplications, and works on contiguous float32 rows so the compiler vectorises the inner loops.

Taps whose weights together move an output by less than ``TAIL_LEVELS`` (1e-4 of a uint8 level, the size of
float32 rounding noise over a 23-tap sum) are skipped: with sigma ~ U(0.1, 2) and k = 23 that halves the work
on average (radius about 5 sigma instead of 11) and can only flip a value lying within 1e-4 of a .5 boundary.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Callable

import numba as nb
import numpy as np

from .. import rng
from .base import PixelOp, check_probability, sample_coin
from .fma import fma32

_ROUNDER = np.float32(1.5 * 2**23)
_MAX = np.float32(255.0)
TAIL_LEVELS = 1e-4  # largest total contribution (in uint8 levels) of the outer taps we leave out
AUTO = 0  # kernel_size code for "auto": an odd size of about 10% of the image's shorter side


@nb.njit(nogil=True, cache=True)
def gaussian_weights(kernel_size: int, sigma: float) -> np.ndarray:
    """torchvision's 1-D kernel: softmax of ``-(x / sigma)**2`` over ``x = linspace(-lim, lim, k)``,
    ``lim = (k - 1) / (2 sqrt 2)``, i.e. ``exp(-d**2 / (2 sigma**2))`` with ``d = i - (k - 1) / 2``, normalised."""
    weights = np.empty(kernel_size, dtype=np.float32)
    center = (kernel_size - 1) / 2.0
    total = 0.0
    for i in range(kernel_size):
        d = i - center
        total += math.exp(-d * d / (2.0 * sigma * sigma))
    for i in range(kernel_size):
        d = i - center
        weights[i] = math.exp(-d * d / (2.0 * sigma * sigma)) / total
    return weights


@nb.njit(nogil=True, cache=True, inline="always")
def reflect_index(i: int, n: int) -> int:
    """Index ``i`` mirrored into [0, n) without repeating the edge (torch ``reflect``), folding again when the
    kernel is wider than the image (torch refuses that case; we keep mirroring)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i = abs(i) % period
    return period - i if i >= n else i


@nb.njit(nogil=True, cache=True, inline="always")
def _round_u8(v: np.float32) -> np.uint8:
    """torch ``round_().to(uint8)`` of a value in [0, 255] (up to float error): round half to even.

    Adding and removing 1.5 * 2**23 rounds a float32 to an integer in the current (nearest-even) mode;
    unlike a libm ``rint`` call it stays inline and vectorises.
    """
    v = (v + _ROUNDER) - _ROUNDER
    return np.uint8(255) if v > _MAX else np.uint8(v)


@nb.njit(nogil=True, cache=True, inline="always")
def _sum_taps(src: np.ndarray, centre: int, near: np.ndarray, far: np.ndarray, weights: np.ndarray,
              out: np.ndarray) -> None:
    """``out[x] = weights[r] * src[centre + x] + sum_t weights[t] * (src[near[t] + x] + src[far[t] + x])``.

    The symmetric kernel (radius ``r``, ``w[t] == w[2r - t]``) is folded around its centre and the taps are added
    in the order t = 0, 1, ..., each with one FMA (as torch's convolution), four per sweep over ``out``: the partial
    sum stays in a register for four taps instead of being stored and reloaded after each (10-15% faster from
    radius 4 up).
    """
    n = out.shape[0]
    r = weights.shape[0] // 2
    wc = weights[r]
    mid = src[centre:centre + n]
    for x in range(n):
        out[x] = wc * mid[x]
    t = 0
    while t + 4 <= r:
        w0, w1, w2, w3 = weights[t], weights[t + 1], weights[t + 2], weights[t + 3]
        a0, b0 = src[near[t]:near[t] + n], src[far[t]:far[t] + n]  # slices: non-negative indices, vectorised
        a1, b1 = src[near[t + 1]:near[t + 1] + n], src[far[t + 1]:far[t + 1] + n]
        a2, b2 = src[near[t + 2]:near[t + 2] + n], src[far[t + 2]:far[t + 2] + n]
        a3, b3 = src[near[t + 3]:near[t + 3] + n], src[far[t + 3]:far[t + 3] + n]
        for x in range(n):
            acc = out[x]
            acc = fma32(w0, a0[x] + b0[x], acc)
            acc = fma32(w1, a1[x] + b1[x], acc)
            acc = fma32(w2, a2[x] + b2[x], acc)
            acc = fma32(w3, a3[x] + b3[x], acc)
            out[x] = acc
        t += 4
    while t < r:
        wt = weights[t]
        near_t, far_t = src[near[t]:near[t] + n], src[far[t]:far[t] + n]
        for x in range(n):
            out[x] = fma32(wt, near_t[x] + far_t[x], out[x])
        t += 1


@nb.njit(nogil=True, cache=True)
def effective_radius(weights: np.ndarray) -> int:
    """Smallest radius whose left-out outer taps weigh less than ``TAIL_LEVELS`` levels on a 255 image."""
    r = weights.shape[0] // 2
    tail = 0.0
    for t in range(r):
        tail += 2.0 * weights[t]
        if tail * 255.0 >= TAIL_LEVELS:
            return r - t
    return 0


@nb.njit(nogil=True, cache=True)
def blur_image(img: np.ndarray, kernel_size: int, sigma: float) -> None:
    """Gaussian-blur the C-contiguous (H, W, 3) uint8 image in place: reflect padding of ``k // 2``, float32,
    rounded half to even."""
    h, w = img.shape[0], img.shape[1]
    full = gaussian_weights(kernel_size, sigma)
    r = effective_radius(full)
    if r == 0:
        return  # the centre weight is 1 to within TAIL_LEVELS: rounding gives the image back
    weights = full[kernel_size // 2 - r:kernel_size // 2 + r + 1]
    row_len = w * 3
    tmp = np.empty(h * row_len, dtype=np.float32)  # the horizontal pass, row after row
    padded = np.empty((w + 2 * r) * 3, dtype=np.float32)
    rows = img.reshape(h, row_len)
    inner = padded[r * 3:r * 3 + row_len]
    near = np.arange(r) * 3  # tap t of a row reads padded[3 t + x] and padded[3 (2r - t) + x]
    far = (2 * r - np.arange(r)) * 3
    for y in range(h):
        row = rows[y]
        for x in range(row_len):  # the row itself, then its mirrored margins
            inner[x] = row[x]
        for xp in range(r):
            left = reflect_index(xp - r, w) * 3
            right = reflect_index(w + xp, w) * 3
            for c in range(3):
                padded[xp * 3 + c] = row[left + c]
                padded[(w + r + xp) * 3 + c] = row[right + c]
        _sum_taps(padded, r * 3, near, far, weights, tmp[y * row_len:(y + 1) * row_len])
    # vertical pass: output row y mixes rows y - r .. y + r of tmp (mirrored at the borders), folded like the rows
    acc = np.empty(row_len, dtype=np.float32)
    for y in range(h):
        for t in range(r):
            near[t] = reflect_index(y + t - r, h) * row_len
            far[t] = reflect_index(y + r - t, h) * row_len
        _sum_taps(tmp, y * row_len, near, far, weights, acc)
        row = rows[y]
        for x in range(row_len):
            row[x] = _round_u8(acc[x])


@nb.njit(nogil=True, cache=True)
def auto_kernel_size(height: int, width: int) -> int:
    """The odd kernel size used for ``kernel_size="auto"``: ``2 * floor(0.05 * min(H, W)) + 1`` (23 at 224)."""
    return 2 * int(0.05 * min(height, width)) + 1


class GaussianBlur(PixelOp):
    """torchvision ``RandomApply([GaussianBlur(kernel_size, sigma)], p)`` on uint8 images.

    Per sample the blur fires when ``rand < p``; then ``sigma ~ U(sigma_min, sigma_max)`` (the same for both axes).
    ``kernel_size`` is an odd int >= 1, or ``"auto"`` for ``2 * floor(0.05 * min(H, W)) + 1`` of the working image
    (23 at 224 px, the BYOL/SimCLR convention). Columns: ``"blur"`` (1.0 when it fired), ``"blur_sigma"`` (0.0 when
    it did not).
    """

    param_names = ("blur", "blur_sigma")

    def __init__(self, kernel_size: int | str, sigma: float | Sequence[float] = (0.1, 2.0), p: float = 1.0) -> None:
        if kernel_size == "auto":
            self.kernel_size: int | str = "auto"
        elif (isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool)
              and kernel_size >= 1 and kernel_size % 2 == 1):
            self.kernel_size = int(kernel_size)
        else:
            raise ValueError(f"GaussianBlur: kernel_size must be an odd int >= 1 or 'auto', got {kernel_size!r}")
        if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
            lo = hi = float(sigma)
        elif (isinstance(sigma, Sequence) and len(sigma) == 2
              and all(isinstance(s, numbers.Real) and not isinstance(s, bool) for s in sigma)):
            lo, hi = float(sigma[0]), float(sigma[1])
        else:
            raise TypeError(f"GaussianBlur: sigma must be a number or a (min, max) pair, got {sigma!r}")
        if not 0.0 < lo <= hi < float("inf"):
            raise ValueError(f"GaussianBlur: sigma must satisfy 0 < min <= max, got {sigma!r}")
        self.sigma = (lo, hi)
        self.p = check_probability(p, "GaussianBlur")

    def make_sampler(self) -> Callable:
        lo, hi = self.sigma
        p = self.p

        @nb.njit(nogil=True, cache=True)
        def sample(state, params):
            sample_coin(state, p, params)
            params[1] = rng.uniform(state, lo, hi) if params[0] == 1.0 else 0.0

        return sample

    def make_kernel(self) -> Callable:
        fixed_size = AUTO if self.kernel_size == "auto" else self.kernel_size

        @nb.njit(nogil=True, cache=True)
        def apply(img, params):
            if params[0] == 0.0:
                return
            size = fixed_size
            if size == AUTO:
                size = auto_kernel_size(img.shape[0], img.shape[1])
            if size > 1:
                blur_image(img, size, params[1])

        return apply
