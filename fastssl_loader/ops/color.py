"""Colour ops: ColorJitter, RandomGrayscale, RandomSolarize, bit-faithful to torchvision v2 on uint8 tensors.

torchvision's uint8 kernels compute in float32 and truncate back to uint8 (``.to(uint8)``); its CPU kernels use
fused multiply-add for ``a.add_(b, alpha=...)``. The helpers below mirror that arithmetic (the FMA is emulated
exactly through float64), so brightness, contrast, saturation and grayscale agree with torchvision on every
pixel, and hue (the same float32 HSV round trip) agrees within one level.

Speed: brightness and contrast are 256-entry lookup tables; the jitter steps run fused per pixel in their
sampled order, in at most two passes (contrast needs the gray mean of the image as it is at its step, so the
steps before it run in a first pass that also sums the gray values).
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
def gray_value(r: int, g: int, b: int) -> np.float32:
    """torchvision's float32 gray ``0.2989 R + 0.587 G + 0.114 B`` of one uint8 pixel, floored."""
    acc = _fma32(np.float32(g), _GRAY_G, np.float32(r) * _GRAY_R)
    return np.floor(_fma32(np.float32(b), _GRAY_B, acc))


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
def _unit_to_u8(v: np.float32) -> int:
    """torchvision's float [0, 1] -> uint8: ``trunc(v * 255.999)``."""
    return int(v * _TO_U8)


@nb.njit(nogil=True, cache=True)
def hue_pixel(r: int, g: int, b: int, hue: np.float32) -> tuple[int, int, int]:
    """torchvision ``adjust_hue`` of one uint8 pixel: float32 RGB->HSV (Pillow's), ``h = (h + hue) mod 1``, back.

    Gray pixels (max == min) come back unchanged, as in torchvision (saturation 0).
    """
    if r == g and g == b:
        return r, g, b
    rf = np.float32(r) * _INV255
    gf = np.float32(g) * _INV255
    bf = np.float32(b) * _INV255
    maxc = max(rf, max(gf, bf))
    minc = min(rf, min(gf, bf))
    span = maxc - minc
    s = span / maxc
    if maxc == rf:
        h = (maxc - bf) / span - (maxc - gf) / span
    elif maxc == gf:
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
    one_minus_s = _ONE - s
    v = _unit_to_u8(maxc)
    p = _unit_to_u8(min(max(one_minus_s * maxc, _ZERO), _ONE))
    if i == 0:
        return v, _unit_to_u8(min(max((sf + one_minus_s) * maxc, _ZERO), _ONE)), p
    if i == 1:
        return _unit_to_u8(min(max((_ONE - sf) * maxc, _ZERO), _ONE)), v, p
    if i == 2:
        return p, v, _unit_to_u8(min(max((sf + one_minus_s) * maxc, _ZERO), _ONE))
    if i == 3:
        return p, _unit_to_u8(min(max((_ONE - sf) * maxc, _ZERO), _ONE)), v
    if i == 4:
        return _unit_to_u8(min(max((sf + one_minus_s) * maxc, _ZERO), _ONE)), p, v
    return v, p, _unit_to_u8(min(max((_ONE - sf) * maxc, _ZERO), _ONE))


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
def _run_steps(img: np.ndarray, steps: np.ndarray, start: int, stop: int, luts: np.ndarray,
               saturation: float, hue: float, want_gray_sum: bool) -> float:
    """Apply ``steps[start:stop]`` to every pixel in place; return the sum of the result's floored gray if asked.

    Brightness and contrast read ``luts[0]`` / ``luts[1]``; every step ends in uint8, like torchvision.
    """
    s_f = np.float32(saturation)
    s_rest = np.float32(1.0 - saturation)
    h_f = np.float32(hue)
    total = 0.0
    for y in range(img.shape[0]):
        row = img[y]
        for x in range(img.shape[1]):
            r = np.int64(row[x, 0])
            g = np.int64(row[x, 1])
            b = np.int64(row[x, 2])
            for k in range(start, stop):
                step = steps[k]
                if step == BRIGHTNESS or step == CONTRAST:
                    lut = luts[step]
                    r = np.int64(lut[r])
                    g = np.int64(lut[g])
                    b = np.int64(lut[b])
                elif step == SATURATION:
                    gray = gray_value(r, g, b)
                    r = _blend(r, gray, s_f, s_rest)
                    g = _blend(g, gray, s_f, s_rest)
                    b = _blend(b, gray, s_f, s_rest)
                else:
                    r, g, b = hue_pixel(r, g, b, h_f)
            if stop > start:
                row[x, 0] = r
                row[x, 1] = g
                row[x, 2] = b
            if want_gray_sum:
                total += gray_value(r, g, b)
    return total


@nb.njit(nogil=True, cache=True)
def jitter_kernel(img: np.ndarray, params: np.ndarray) -> None:
    """Apply ColorJitter in place from its parameter slice (see :attr:`ColorJitter.param_names`).

    Steps whose factor is the identity (1, or 0 for hue) are skipped, like torchvision's ``None`` ranges.
    """
    if params[0] == 0.0:
        return
    steps = np.empty(4, dtype=np.int64)
    n = 0
    split = -1  # position of the contrast step, which needs the gray mean of the image at that point
    for k in range(4):
        step = np.int64(params[5 + k])
        identity = 0.0 if step == HUE else 1.0
        if params[1 + step] != identity:
            if step == CONTRAST:
                split = n
            steps[n] = step
            n += 1
    if n == 0:
        return
    luts = np.empty((2, 256), dtype=np.uint8)
    if params[1] != 1.0:
        fill_brightness_lut(params[1], luts[BRIGHTNESS])
    if split < 0:
        _run_steps(img, steps, 0, n, luts, params[3], params[4], False)
        return
    total = _run_steps(img, steps, 0, split, luts, params[3], params[4], True)
    # torch: float32 sum of the floored gray, divided by the pixel count (the sum is exact below 2**24)
    mean = np.float32(total) / np.float32(img.shape[0] * img.shape[1])
    fill_contrast_lut(params[2], mean, luts[CONTRAST])
    _run_steps(img, steps, split, n, luts, params[3], params[4], False)


@nb.njit(nogil=True, cache=True)
def grayscale_kernel(img: np.ndarray, params: np.ndarray) -> None:
    """torchvision ``rgb_to_grayscale(num_output_channels=3)`` in place when ``params[0]`` says it fired."""
    if params[0] == 0.0:
        return
    for y in range(img.shape[0]):
        row = img[y]
        for x in range(img.shape[1]):
            v = np.uint8(gray_value(row[x, 0], row[x, 1], row[x, 2]))
            row[x, 0] = v
            row[x, 1] = v
            row[x, 2] = v


@nb.njit(nogil=True, cache=True)
def solarize_lut(threshold: float) -> np.ndarray:
    """``lut[x] = 255 - x`` where ``x >= threshold`` (torchvision ``solarize``), else x."""
    lut = np.empty(256, dtype=np.uint8)
    for x in range(256):
        lut[x] = 255 - x if x >= threshold else x
    return lut


@nb.njit(nogil=True, cache=True)
def apply_lut(img: np.ndarray, lut: np.ndarray) -> None:
    """``img = lut[img]`` in place, for every channel of every pixel."""
    for y in range(img.shape[0]):
        row = img[y]
        for x in range(img.shape[1]):
            row[x, 0] = lut[row[x, 0]]
            row[x, 1] = lut[row[x, 1]]
            row[x, 2] = lut[row[x, 2]]


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
