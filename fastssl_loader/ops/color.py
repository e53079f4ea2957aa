"""Colour ops: ColorJitter, RandomGrayscale, RandomSolarize, bit-faithful to torchvision v2 on uint8 tensors.

torchvision's uint8 kernels compute in float32 and truncate back to uint8 (``.to(uint8)``); its CPU kernels use
fused multiply-add for ``a.add_(b, alpha=...)``. The helpers below mirror that arithmetic (the FMA is emulated
exactly through float64), so brightness, contrast, saturation and grayscale agree with torchvision on every
pixel, and hue (the same float32 HSV round trip) agrees within one level.

Speed: brightness, contrast and solarize are 256-entry lookup tables, saturation two small float tables per
image, gray an exact integer fixed-point sum; every kernel walks the image as one flat C-order array
(``img`` must be C-contiguous, the contract's ``uint8[:, :, ::1]``), which is several times faster than
indexing ``img[y, x, c]``.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Callable

import numba as nb
import numpy as np

from .. import rng
from .base import PixelOp
from .flip import sample_coin

_F32 = np.float32
_GRAY_R = _F32(0.2989)
_GRAY_G = _F32(0.587)
_GRAY_B = _F32(0.114)
_INV255 = _F32(1.0 / 255.0)
_TO_U8 = _F32(255.0 + 1.0 - 1e-3)  # torchvision's float -> uint8 scale (then truncation)
_FRAC_BITS = 28
_GRAY_RI = int(np.float64(_GRAY_R) * 2**_FRAC_BITS)  # exact: float32 weights are multiples of 2**-28
_GRAY_GI = int(np.float64(_GRAY_G) * 2**_FRAC_BITS)
_GRAY_BI = int(np.float64(_GRAY_B) * 2**_FRAC_BITS)
_FRAC_MASK = (1 << _FRAC_BITS) - 1
_NEAR = 1 << 14  # 6e-5 of a level: well above float32 rounding error near 255 (1.5e-5)
_SIXTH = _F32(1.0 / 6.0)
_ZERO = _F32(0.0)
_ONE = _F32(1.0)
_TWO = _F32(2.0)
_FOUR = _F32(4.0)
_SIX = _F32(6.0)
_MAX = _F32(255.0)

BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3  # torchvision's fn_idx codes


@nb.njit(nogil=True, cache=True, inline="always")
def _fma32(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """float32 ``a * b + c`` with one rounding, as the FMA in torch's ``add_(other, alpha)`` (exact via float64)."""
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


@nb.njit(nogil=True, cache=True, inline="always")
def _gray_float(r: int, g: int, b: int) -> int:
    """torchvision's float32 gray ``0.2989 R + 0.587 G + 0.114 B`` (two FMAs), floored."""
    acc = _fma32(np.float32(g), _GRAY_G, np.float32(r) * _GRAY_R)
    return int(np.floor(_fma32(np.float32(b), _GRAY_B, acc)))


@nb.njit(nogil=True, cache=True, inline="always")
def gray_value(r: int, g: int, b: int) -> int:
    """torchvision's floored uint8 gray of one pixel, exactly.

    Fast path: the exact sum with the float32 weights, in integer fixed point (the weights are multiples of
    2**-28). It differs from torch's float32 rounding only when the sum is within float error of an integer
    (3 of the 2**24 colours), so those near-integer sums take the float path. Checked on all 2**24 colours.
    """
    acc = r * _GRAY_RI + g * _GRAY_GI + b * _GRAY_BI
    frac = acc & _FRAC_MASK
    if frac < _NEAR or frac > _FRAC_MASK - _NEAR:
        return _gray_float(r, g, b)
    return acc >> _FRAC_BITS


@nb.njit(nogil=True, cache=True, inline="always")
def _blend(x: int, other: np.float32, ratio: np.float32, one_minus_ratio: np.float32) -> int:
    """torchvision ``_blend`` for uint8: ``ratio*x + (1-ratio)*other`` in float32, clamped, truncated."""
    v = _fma32(other, one_minus_ratio, np.float32(x) * ratio)
    if v < _ZERO:
        return 0
    if v > _MAX:
        return 255
    return int(v)


@nb.njit(nogil=True, cache=True, inline="always")
def hue_pixel(r: int, g: int, b: int, hue: np.float32) -> tuple[int, int, int]:
    """torchvision ``adjust_hue`` of one uint8 pixel: float32 RGB->HSV (Pillow's), ``h = (h + hue) mod 1``, back.

    torch's round trip returns exactly the max channel for V and the min channel for ``V (1 - S)`` (checked for
    every (max, min) pair), so only the middle channel is recomputed, with torch's float32 formula. Gray pixels
    (max == min) come back unchanged, as in torch (saturation 0).
    """
    hi = max(r, max(g, b))
    lo = min(r, min(g, b))
    if hi == lo:
        return r, g, b
    rf = np.float32(r) * _INV255
    gf = np.float32(g) * _INV255
    bf = np.float32(b) * _INV255
    maxc = np.float32(hi) * _INV255
    span = maxc - np.float32(lo) * _INV255
    s = span / maxc
    if r == hi:
        h = (maxc - bf) / span - (maxc - gf) / span
    elif g == hi:
        h = ((maxc - rf) / span + _TWO) - (maxc - bf) / span
    else:
        h = ((maxc - gf) / span + _FOUR) - (maxc - rf) / span
    h = h * _SIXTH + _ONE
    h = h - np.floor(h)  # fmod(h, 1) for h in [0, 2)
    h = h + hue
    h = h - np.floor(h)  # Python-style remainder(h, 1)
    h6 = h * _SIX
    sector = np.floor(h6)
    f = h6 - sector
    i = int(sector) % 6
    sf = s * f
    if i % 2 == 0:
        mid = (sf + (_ONE - s)) * maxc  # torch's t
    else:
        mid = (_ONE - sf) * maxc  # torch's q
    m = int(min(max(mid, _ZERO), _ONE) * _TO_U8)
    if i == 0:
        return hi, m, lo
    if i == 1:
        return m, hi, lo
    if i == 2:
        return lo, hi, m
    if i == 3:
        return lo, m, hi
    if i == 4:
        return m, lo, hi
    return hi, lo, m


@nb.njit(nogil=True, cache=True)
def fill_brightness_lut(factor: float, lut: np.ndarray) -> None:
    """``lut[x]`` = torchvision ``adjust_brightness`` of the uint8 value x: ``trunc(clamp(x * factor))``."""
    f = np.float32(factor)
    for x in range(256):
        v = np.float32(x) * f
        lut[x] = 255 if v > _MAX else int(v)


@nb.njit(nogil=True, cache=True)
def fill_contrast_lut(factor: float, mean: np.float32, lut: np.ndarray) -> None:
    """``lut[x]`` = torchvision ``adjust_contrast`` of x given the image's gray mean: a blend with the mean."""
    f = np.float32(factor)
    one_minus_f = np.float32(1.0 - factor)
    for x in range(256):
        lut[x] = _blend(x, mean, f, one_minus_f)


@nb.njit(nogil=True, cache=True)
def fill_saturation_tables(factor: float, tables: np.ndarray) -> None:
    """Tables for torchvision ``adjust_saturation`` (a blend with the pixel's gray): ``tables[0][x]`` = float32
    ``x * factor`` and ``tables[1][gray]`` = ``gray * (1 - factor)`` exactly, both as float64, so one pixel's
    blend is the float32 rounding of a sum of two lookups (torch's FMA, exactly)."""
    f = np.float32(factor)
    rest = np.float64(np.float32(1.0 - factor))
    for x in range(256):
        tables[0, x] = np.float64(np.float32(x) * f)
        tables[1, x] = x * rest


@nb.njit(nogil=True, cache=True, inline="always")
def _saturate(x: int, gray: int, tables: np.ndarray) -> int:
    """One channel of ``adjust_saturation`` from :func:`fill_saturation_tables`: clamped, truncated."""
    v = np.float32(tables[0, x] + tables[1, gray])
    if v < _ZERO:
        return 0
    if v > _MAX:
        return 255
    return int(v)


@nb.njit(nogil=True, cache=True)
def apply_lut(img: np.ndarray, lut: np.ndarray) -> None:
    """``img = lut[img]`` in place, for every channel of every pixel."""
    data = img.reshape(-1)
    for i in range(data.shape[0]):
        data[i] = lut[data[i]]


@nb.njit(nogil=True, cache=True)
def gray_mean(img: np.ndarray) -> np.float32:
    """torchvision's contrast mean: float32 mean of the floored gray image (its float32 sum is exact below 2**24)."""
    data = img.reshape(-1)
    total = 0
    for i in range(0, data.shape[0], 3):
        total += gray_value(np.int64(data[i]), np.int64(data[i + 1]), np.int64(data[i + 2]))
    return np.float32(total) / np.float32(img.shape[0] * img.shape[1])


@nb.njit(nogil=True, cache=True)
def saturate_image(img: np.ndarray, factor: float) -> None:
    """torchvision ``adjust_saturation`` in place: each channel blended with the pixel's gray."""
    tables = np.empty((2, 256), dtype=np.float64)
    fill_saturation_tables(factor, tables)
    data = img.reshape(-1)
    for i in range(0, data.shape[0], 3):
        r = np.int64(data[i])
        g = np.int64(data[i + 1])
        b = np.int64(data[i + 2])
        gray = gray_value(r, g, b)
        data[i] = _saturate(r, gray, tables)
        data[i + 1] = _saturate(g, gray, tables)
        data[i + 2] = _saturate(b, gray, tables)


@nb.njit(nogil=True, cache=True)
def hue_image(img: np.ndarray, hue: float) -> None:
    """torchvision ``adjust_hue`` in place."""
    h_f = np.float32(hue)
    data = img.reshape(-1)
    for i in range(0, data.shape[0], 3):
        r, g, b = hue_pixel(np.int64(data[i]), np.int64(data[i + 1]), np.int64(data[i + 2]), h_f)
        data[i] = r
        data[i + 1] = g
        data[i + 2] = b


@nb.njit(nogil=True, cache=True)
def jitter_kernel(img: np.ndarray, params: np.ndarray) -> None:
    """Apply ColorJitter in place from its parameter slice (see :attr:`ColorJitter.param_names`).

    One tight pass per step, in the sampled order (the image stays in cache between passes; a per-pixel
    dispatch over the steps measured slower). Steps whose factor is the identity (1, or 0 for hue) are
    skipped, like torchvision's ``None`` ranges.
    """
    if params[0] == 0.0:
        return
    lut = np.empty(256, dtype=np.uint8)
    for k in range(4):
        step = np.int64(params[5 + k])
        factor = params[1 + step]
        if step == BRIGHTNESS and factor != 1.0:
            fill_brightness_lut(factor, lut)
            apply_lut(img, lut)
        elif step == CONTRAST and factor != 1.0:
            fill_contrast_lut(factor, gray_mean(img), lut)
            apply_lut(img, lut)
        elif step == SATURATION and factor != 1.0:
            saturate_image(img, factor)
        elif step == HUE and factor != 0.0:
            hue_image(img, factor)


@nb.njit(nogil=True, cache=True)
def grayscale_kernel(img: np.ndarray, params: np.ndarray) -> None:
    """torchvision ``rgb_to_grayscale(num_output_channels=3)`` in place when ``params[0]`` says it fired."""
    if params[0] == 0.0:
        return
    data = img.reshape(-1)
    for i in range(0, data.shape[0], 3):
        v = gray_value(np.int64(data[i]), np.int64(data[i + 1]), np.int64(data[i + 2]))
        data[i] = v
        data[i + 1] = v
        data[i + 2] = v


@nb.njit(nogil=True, cache=True)
def solarize_lut(threshold: float) -> np.ndarray:
    """``lut[x] = 255 - x`` where ``x >= threshold`` (torchvision ``solarize``), else x."""
    lut = np.empty(256, dtype=np.uint8)
    for x in range(256):
        lut[x] = 255 - x if x >= threshold else x
    return lut


def check_probability(p: float, op: str) -> float:
    """``p`` as a float, or a ValueError naming the op when it is not a probability."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


def coin_sampler(p: float) -> Callable:
    """njit ``sample(state, params)`` writing 1.0 to ``params[0]`` with probability ``p`` (fires when rand < p)."""

    @nb.njit(nogil=True, cache=True)
    def sample(state, params):
        sample_coin(state, p, params)

    return sample


def _jitter_range(value: float | Sequence[float] | None, name: str, center: float,
                  bound: tuple[float, float]) -> tuple[float, float] | None:
    """torchvision ``ColorJitter._check_input``: a scalar v -> [center - v, center + v] (lower end clipped at 0
    for factors), a (min, max) pair as given; ``None`` when the range is the identity."""
    if value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"ColorJitter: {name}={value!r} must be non-negative when it is a single number")
        lo, hi = center - float(value), center + float(value)
        if name != "hue":
            lo = max(lo, 0.0)
    elif (isinstance(value, Sequence) and len(value) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise TypeError(f"ColorJitter: {name}={value!r} should be a single number or a (min, max) pair")
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"ColorJitter: {name} range must lie in [{bound[0]}, {bound[1]}] and be increasing, "
                         f"got ({lo}, {hi})")
    return None if lo == hi == center else (lo, hi)


class ColorJitter(PixelOp):
    """torchvision ``RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p)`` on uint8 images.

    Ranges: a scalar v gives factors in [max(0, 1 - v), 1 + v] (hue h: [-h, h], h <= 0.5); a (min, max) pair is
    used as given; an identity range skips its step. Per sample: the jitter fires when ``rand < p``; then a
    random order of the four steps is drawn (``randperm(4)``), then the brightness, contrast, saturation and hue
    factors, each uniform in its range; the steps run in that order. Columns: ``"jitter"`` (1.0 when it fired),
    the four factors (1.0 / 0.0 for hue when skipped) and ``"jitter_order0".."3"`` (step codes 0 = brightness,
    1 = contrast, 2 = saturation, 3 = hue).
    """

    param_names = ("jitter", "brightness", "contrast", "saturation", "hue",
                   "jitter_order0", "jitter_order1", "jitter_order2", "jitter_order3")

    def __init__(self, brightness: float | Sequence[float] = 0, contrast: float | Sequence[float] = 0,
                 saturation: float | Sequence[float] = 0, hue: float | Sequence[float] = 0,
                 p: float = 1.0) -> None:
        inf = float("inf")
        self.brightness = _jitter_range(brightness, "brightness", 1.0, (0.0, inf))
        self.contrast = _jitter_range(contrast, "contrast", 1.0, (0.0, inf))
        self.saturation = _jitter_range(saturation, "saturation", 1.0, (0.0, inf))
        self.hue = _jitter_range(hue, "hue", 0.0, (-0.5, 0.5))
        self.p = check_probability(p, "ColorJitter")

    def make_sampler(self) -> Callable:
        ranges = []
        for rng_range, identity in ((self.brightness, 1.0), (self.contrast, 1.0), (self.saturation, 1.0),
                                    (self.hue, 0.0)):
            ranges.append((rng_range is not None,) + (rng_range or (identity, identity)))
        (b_on, b_lo, b_hi), (c_on, c_lo, c_hi), (s_on, s_lo, s_hi), (h_on, h_lo, h_hi) = ranges
        p = self.p

        @nb.njit(nogil=True, cache=True)
        def sample(state, params):
            params[0] = 1.0 if rng.rand(state) < p else 0.0
            order = np.empty(4, dtype=np.int64)
            if params[0] == 0.0:
                for k in range(4):
                    order[k] = k
                params[1] = params[2] = params[3] = 1.0
                params[4] = 0.0
            else:
                rng.permutation4(state, order)
                params[1] = rng.uniform(state, b_lo, b_hi) if b_on else 1.0
                params[2] = rng.uniform(state, c_lo, c_hi) if c_on else 1.0
                params[3] = rng.uniform(state, s_lo, s_hi) if s_on else 1.0
                params[4] = rng.uniform(state, h_lo, h_hi) if h_on else 0.0
            for k in range(4):
                params[5 + k] = order[k]

        return sample

    def make_kernel(self) -> Callable:
        return jitter_kernel


class RandomGrayscale(PixelOp):
    """torchvision ``RandomGrayscale(p)`` on uint8 RGB: gray = floor(0.2989 R + 0.587 G + 0.114 B) in float32,
    written to all three channels. Column ``"gray"`` is 1.0 when it fired (``rand < p``)."""

    param_names = ("gray",)

    def __init__(self, p: float = 0.1) -> None:
        self.p = check_probability(p, "RandomGrayscale")

    def make_sampler(self) -> Callable:
        return coin_sampler(self.p)

    def make_kernel(self) -> Callable:
        return grayscale_kernel


class RandomSolarize(PixelOp):
    """torchvision ``RandomSolarize(threshold, p)`` on uint8: values ``>= threshold`` become ``255 - x``.
    Column ``"solarize"`` is 1.0 when it fired (``rand < p``)."""

    param_names = ("solarize",)

    def __init__(self, threshold: float = 128, p: float = 0.5) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 255:
            raise ValueError(f"RandomSolarize: threshold must be a number in [0, 255] (uint8 levels), "
                             f"got {threshold!r}")
        self.threshold = float(threshold)
        self.p = check_probability(p, "RandomSolarize")

    def make_sampler(self) -> Callable:
        return coin_sampler(self.p)

    def make_kernel(self) -> Callable:
        threshold = self.threshold

        @nb.njit(nogil=True, cache=True)
        def apply(img, params):
            if params[0] != 0.0:
                apply_lut(img, solarize_lut(threshold))

        return apply
