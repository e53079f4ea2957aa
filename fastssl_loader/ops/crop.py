"""Geometry ops: RandomResizedCrop (training views) and Resize / CenterCrop (evaluation views).

Resampling reproduces ``torch.nn.functional.interpolate(..., antialias=True)`` on uint8 tensors (PIL's
algorithm in torch's fixed-point form), which is what ``torchvision.transforms.v2.functional.resized_crop``
runs: a separable filter (triangle for bilinear, Keys cubic with a=-0.5 for bicubic) whose support is widened
by the downscale factor, float64 weights normalised to sum to one, then scaled to integers with torch's
precision rule (:func:`axis_weights`), taps limited to the source region, the horizontal pass first, each pass
rounded (half a unit added, then shifted back) and clamped to uint8 levels. The sums are computed in float32 (float64 beyond
~4-5x downscaling) holding exact integers, so they equal torch's integer sums: crops at integer coordinates
are pixel-identical to torchvision on x86 (tests/test_ops_crop.py). Unlike torchvision we never cut the source
to an integer box first: the box is mapped into the (possibly DCT-downscaled) decoded image in float and the
filter runs over that exact float region, so a 1/2-scale decode still gives nearly the same pixels as a full
one. Cost per view: one horizontal pass over only the source rows the vertical pass needs, run as a vertical
pass between two byte transposes of the channel planes, and one vertical pass vectorised over whole rows, with
the per-row and per-column weights computed once per sample.

``antialias=False`` keeps the filter support unwidened: bilinear then equals torch's plain bilinear
(``align_corners=False``); bicubic uses torch's a=-0.75 but renormalises the weights at the borders where torch
replicates the edge pixel, so border pixels may differ.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import numba as nb
import numpy as np

from .. import rng
from ..progressive import ProgressiveResolution
from .base import GeometryOp
from .simd import BLOCK, merge_channels, split_channels, transpose16

SizeArg = Union[int, tuple[int, int], ProgressiveResolution]
INTERPOLATIONS = ("bilinear", "bicubic")


@nb.njit(nogil=True, cache=True)
def _filter(x: float, cubic: bool, a: float) -> float:
    """Triangle (bilinear) or Keys cubic kernel at distance ``x``, with torch's float operation order."""
    x = abs(x)
    if cubic:
        if x < 1.0:
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        if x < 2.0:
            return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        return 0.0
    return 1.0 - x if x < 1.0 else 0.0


@nb.njit(nogil=True, cache=True)
def axis_weights(start: float, length: float, out_size: int, lo: int, hi: int, cubic: bool, antialias: bool):
    """Fixed-point filter taps along one axis for ``out_size`` outputs covering source span
    ``[start, start + length)``, taps limited to source indices ``[lo, hi)``.

    torch's uint8 weights: float64 filter weights normalised to sum to one, then scaled by ``2**precision``
    and rounded half away from zero to integers, ``precision`` the largest (< 22) that keeps the biggest
    weight below 2**14. Positions are measured from ``lo``, so for a crop at integer coordinates every
    number equals torch's. Returns ``(first, count, weights, precision)``: output ``i`` is
    ``(2**(precision - 1) + sum_t weights[i, t] * src[first[i] + t]) >> precision``, clamped to [0, 255], for
    ``t < count[i]``; ``count[i] == 0`` means the output lies outside the source (zero padding).
    """
    scale = length / out_size
    half = 2.0 if cubic else 1.0
    a = -0.5 if antialias else -0.75
    if antialias and scale > 1.0:
        support = half * scale
        inv = 1.0 / scale
    else:
        support = half
        inv = 1.0
    taps = int(math.ceil(support)) * 2 + 1
    first = np.zeros(out_size, np.int64)
    count = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, taps), np.float64)
    origin = start - lo
    size = hi - lo
    largest = 0.0
    for i in range(out_size):
        center = origin + scale * (i + 0.5)
        if center < 0.0 or center > size:
            continue
        j0 = max(int(center - support + 0.5), 0)
        j1 = min(int(center + support + 0.5), size)
        total = 0.0
        for j in range(j0, j1):
            w = _filter((j - center + 0.5) * inv, cubic, a)
            weights[i, j - j0] = w
            total += w
        if total == 0.0:
            continue
        for t in range(j1 - j0):
            weights[i, t] = weights[i, t] / total
            largest = max(largest, weights[i, t])
        first[i] = lo + j0
        count[i] = j1 - j0
    precision = 0
    while precision < 22 and int(0.5 + largest * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    unit = float(1 << precision)
    for i in range(out_size):
        for t in range(count[i]):
            v = weights[i, t] * unit
            weights[i, t] = float(int(v - 0.5)) if v < 0.0 else float(int(v + 0.5))
    return first, count, weights, precision


@nb.njit(nogil=True, cache=True, inline="always")
def _to_level(acc: float, unit: float, zero: float, top: float) -> np.uint8:
    """``acc >> precision`` clamped to [0, top]: ``acc`` is an exact integer, ``unit`` is 2**-precision (exact
    scaling); clamped first, so the truncating conversion floors."""
    return np.uint8(min(max(acc * unit, zero), top))


@nb.njit(nogil=True, cache=True, fastmath={"contract"})  # exact integer sums: FMA changes nothing
def _rows_pass(src: np.ndarray, offset: int, row_stride: int, first: np.ndarray, count: np.ndarray,
               weights: np.ndarray, fixed: np.ndarray, width: int, dst: np.ndarray) -> None:
    """Filter along rows: ``dst[i, k] = level(bias + sum_t weights[i, t] * row(first[i] + t)[k])`` for
    ``k < width``, where ``row(r)`` starts at ``src[offset + r * row_stride]``. Whole rows at a time, so the
    inner loop vectorises.

    Fixed-point arithmetic in floats: the weights are integers and ``fixed`` = (bias 2**(precision - 1),
    2**-precision, 0, 255) in the weights' float type, chosen by :func:`_filter_pass` so that every partial sum
    is an exact integer; so the sums equal torch's integer sums whatever their order. Up to four taps per sweep
    over the row, the running sum kept in a register between them (a missing tap reads the sweep's first row
    with weight 0), ~1.3x faster than one tap per sweep; the last sweep writes the levels."""
    acc = np.empty(width, weights.dtype)
    bias, unit, zero, top = fixed[0], fixed[1], fixed[2], fixed[3]  # scalars: loads hoisted out of the loops
    for i in range(dst.shape[0]):
        drow = dst[i]
        n = count[i]
        if n == 0:
            drow[:] = 0
            continue
        wrow = weights[i]
        for t in range(0, n, 4):
            base = offset + (first[i] + t) * row_stride
            r0 = src[base:base + width]  # slices, so indexing needs no negative-index fix-up and vectorises
            r1 = src[base + row_stride:base + row_stride + width] if t + 1 < n else r0
            r2 = src[base + 2 * row_stride:base + 2 * row_stride + width] if t + 2 < n else r0
            r3 = src[base + 3 * row_stride:base + 3 * row_stride + width] if t + 3 < n else r0
            w0 = wrow[t]
            w1 = wrow[t + 1] if t + 1 < n else zero
            w2 = wrow[t + 2] if t + 2 < n else zero
            w3 = wrow[t + 3] if t + 3 < n else zero
            # four loop bodies, so that no branch is left inside the vectorised loops
            if t == 0 and t + 4 >= n:
                for k in range(width):
                    drow[k] = _to_level(_four_taps(bias, k, r0, r1, r2, r3, w0, w1, w2, w3), unit, zero, top)
            elif t == 0:
                for k in range(width):
                    acc[k] = _four_taps(bias, k, r0, r1, r2, r3, w0, w1, w2, w3)
            elif t + 4 >= n:
                for k in range(width):
                    drow[k] = _to_level(_four_taps(acc[k], k, r0, r1, r2, r3, w0, w1, w2, w3), unit, zero, top)
            else:
                for k in range(width):
                    acc[k] = _four_taps(acc[k], k, r0, r1, r2, r3, w0, w1, w2, w3)


@nb.njit(nogil=True, cache=True, inline="always")
def _four_taps(v: float, k: int, r0: np.ndarray, r1: np.ndarray, r2: np.ndarray, r3: np.ndarray,
               w0: float, w1: float, w2: float, w3: float) -> float:
    """``v`` plus four weighted uint8 taps at ``k``, in the weights' float type."""
    return v + w0 * r0[k] + w1 * r1[k] + w2 * r2[k] + w3 * r3[k]


@nb.njit(nogil=True, cache=True)
def _transpose_plane(src: np.ndarray, src_start: int, src_stride: int, dst: np.ndarray, dst_start: int,
                     dst_stride: int, rows: int, cols: int) -> None:
    """Transpose the ``rows`` x ``cols`` byte matrix whose row r starts at ``src[src_start + r * src_stride]``
    into ``dst`` (column c becomes the row at ``dst[dst_start + c * dst_stride]``); both sizes multiples of 16."""
    for r0 in range(0, rows, BLOCK):
        for c0 in range(0, cols, BLOCK):
            transpose16(src, src_start + r0 * src_stride + c0, src_stride, dst, dst_start + c0 * dst_stride + r0,
                        dst_stride)


@nb.njit(nogil=True, cache=True)
def _columns_pass(src: np.ndarray, offset: int, row_stride: int, first: np.ndarray, count: np.ndarray,
                  weights: np.ndarray, fixed: np.ndarray, dst: np.ndarray) -> None:
    """Filter along columns: ``dst[r, 3 * i + c] = level(bias + sum_t weights[i, t] * pixel(r, first[i] + t)[c])``
    where
    ``pixel(r, x)`` is at ``src[offset + r * row_stride + 3 * x]``.

    A per-pixel tap loop does not vectorise, so the pixels are split into three channel planes, each plane is
    transposed (16 x 16 blocks in vector registers, :func:`.simd.transpose16`), filtered by :func:`_rows_pass`
    (whole rows at a time) and transposed back, then the planes are interleaved again: same sums in the same
    order, so the same pixels, ~2x faster than the per-pixel loop. Sizes are padded to multiples of 16; the
    padding holds garbage nobody reads."""
    rows, n = dst.shape[0], first.shape[0]
    start, end = _span(first, count)
    if end <= start:
        dst[:, :] = 0
        return
    span = end - start
    rows16, span16, n16 = _padded(rows), _padded(span), _padded(n)
    planes = np.empty((3, rows16, span16), np.uint8)  # planes[c] = channel c, rows16 x span16
    for r in range(rows):
        base = offset + r * row_stride + start * 3
        split_channels(src[base:base + span * 3], span, planes[0, r], planes[1, r], planes[2, r])
    width = 3 * rows16
    columns = np.empty(span16 * width, np.uint8)  # row x = the three planes' column x, side by side
    flat_planes = planes.reshape(-1)
    for c in range(3):
        _transpose_plane(flat_planes, c * rows16 * span16, span16, columns, c * rows16, width, rows16, span16)
    filtered = np.empty(n16 * width, np.uint8)
    _rows_pass(columns, -start * width, width, first, count, weights, fixed, width,
               filtered.reshape(n16, width)[:n])
    out_planes = np.empty((3, rows16, n16), np.uint8)
    flat_out = out_planes.reshape(-1)
    for c in range(3):
        _transpose_plane(filtered, c * rows16, width, flat_out, c * rows16 * n16, n16, n16, rows16)
    for r in range(rows):
        merge_channels(out_planes[0, r], out_planes[1, r], out_planes[2, r], n, dst[r])


@nb.njit(nogil=True, cache=True, inline="always")
def _padded(size: int) -> int:
    """``size`` rounded up to a whole number of transpose blocks."""
    return (size + BLOCK - 1) // BLOCK * BLOCK


@nb.njit(nogil=True, cache=True)
def resize_region(src: np.ndarray, offset: int, src_h: int, src_w: int, y0: float, x0: float, hh: float,
                  ww: float, y_lo: int, y_hi: int, x_lo: int, x_hi: int, cubic: bool, antialias: bool,
                  out: np.ndarray) -> None:
    """Resample the float region (y0, x0, hh, ww) of ``src[offset:]`` (src_h x src_w x 3) into ``out`` (H, W, 3).

    Taps are clamped to rows ``[y_lo, y_hi)`` and columns ``[x_lo, x_hi)`` (the crop box for a crop, the whole
    image for a resize); output pixels whose centre falls outside them are zero. The horizontal pass runs first
    (torch's order, with its rounding to levels in between) over only the source rows the vertical pass reads.
    """
    out_h, out_w = out.shape[0], out.shape[1]
    fy, cy, wy, py = axis_weights(y0, hh, out_h, max(y_lo, 0), min(y_hi, src_h), cubic, antialias)
    fx, cx, wx, px = axis_weights(x0, ww, out_w, max(x_lo, 0), min(x_hi, src_w), cubic, antialias)
    row_first, row_end = _span(fy, cy)
    col_first, col_end = _span(fx, cx)
    flat_out = out.reshape(out_h, out_w * 3)
    if row_end <= row_first or col_end <= col_first:
        flat_out[:, :] = 0
        return
    stride = src_w * 3
    tmp = np.empty((row_end - row_first, out_w * 3), np.uint8)
    _filter_pass(True, src, offset + row_first * stride, stride, fx, cx, wx, px, tmp)
    _filter_pass(False, tmp.reshape(-1), -row_first * out_w * 3, out_w * 3, fy, cy, wy, py, flat_out)


@nb.njit(nogil=True, cache=True)
def _filter_pass(horizontal: bool, src: np.ndarray, offset: int, row_stride: int, first: np.ndarray,
                 count: np.ndarray, weights: np.ndarray, precision: int, dst: np.ndarray) -> None:
    """One pass of torch's fixed-point filter (:func:`axis_weights`), horizontal (:func:`_columns_pass`) or
    vertical (:func:`_rows_pass`), in float32 when every partial sum is an integer float32 holds exactly
    (below 2**24: up to ~4-5x downscaling), else in float64; either way the same integers as torch's."""
    bias = float(1 << (precision - 1))
    largest_sum = 0.0
    for i in range(weights.shape[0]):
        row_sum = 0.0
        for t in range(count[i]):
            row_sum += abs(weights[i, t])
        largest_sum = max(largest_sum, row_sum)
    if bias + 255.0 * largest_sum < 2.0 ** 24:
        _run_pass(horizontal, src, offset, row_stride, first, count, weights.astype(np.float32),
                  _fixed_point_constants(np.float32, precision), dst)
    else:
        _run_pass(horizontal, src, offset, row_stride, first, count, weights,
                  _fixed_point_constants(np.float64, precision), dst)


@nb.njit(nogil=True, cache=True, inline="always")
def _fixed_point_constants(dtype, precision: int) -> np.ndarray:
    """(bias 2**(precision - 1), 2**-precision, 0, 255) in the pass's float type."""
    fixed = np.empty(4, dtype)
    fixed[0] = 2.0 ** (precision - 1)
    fixed[1] = 2.0 ** -precision
    fixed[2] = 0.0
    fixed[3] = 255.0
    return fixed


@nb.njit(nogil=True, cache=True, inline="always")
def _run_pass(horizontal: bool, src: np.ndarray, offset: int, row_stride: int, first: np.ndarray,
              count: np.ndarray, weights: np.ndarray, fixed: np.ndarray, dst: np.ndarray) -> None:
    if horizontal:
        _columns_pass(src, offset, row_stride, first, count, weights, fixed, dst)
    else:
        _rows_pass(src, offset, row_stride, first, count, weights, fixed, dst.shape[1], dst)


@nb.njit(nogil=True, cache=True)
def _span(first: np.ndarray, count: np.ndarray) -> tuple[int, int]:
    """[start, end) of the source indices that any output with taps reads (empty when none has taps)."""
    start = np.int64(2 ** 62)
    end = np.int64(0)
    for i in range(first.shape[0]):
        if count[i] > 0:
            start = min(start, first[i])
            end = max(end, first[i] + count[i])
    return start, end


@nb.njit(nogil=True, cache=True)
def apply_box(src: np.ndarray, offset: int, src_h: int, src_w: int, stored_h: int, stored_w: int,
              params: np.ndarray, out: np.ndarray, clamp_to_box: bool, cubic: bool, antialias: bool) -> None:
    """Resample the box ``params[0:4]`` = (top, left, height, width), given in stored-image coordinates.

    The box is mapped into the decoded image by ``src / stored`` in float. ``clamp_to_box`` limits the filter
    taps to the box (a crop, like torchvision's crop-then-resize); otherwise to the whole image (a resize of
    the whole image followed by a crop).
    """
    sy = src_h / stored_h
    sx = src_w / stored_w
    y0 = params[0] * sy
    x0 = params[1] * sx
    hh = params[2] * sy
    ww = params[3] * sx
    if clamp_to_box:
        resize_region(src, offset, src_h, src_w, y0, x0, hh, ww, int(math.floor(y0 + 1e-6)),
                      int(math.ceil(y0 + hh - 1e-6)), int(math.floor(x0 + 1e-6)), int(math.ceil(x0 + ww - 1e-6)),
                      cubic, antialias, out)
    else:
        resize_region(src, offset, src_h, src_w, y0, x0, hh, ww, 0, src_h, 0, src_w, cubic, antialias, out)


@nb.njit(nogil=True, cache=True)
def sample_rrc(state: np.ndarray, height: int, width: int, limits: tuple[float, float, float, float],
               params: np.ndarray) -> None:
    """torchvision ``RandomResizedCrop.get_params``: writes (top, left, height, width) into ``params[0:4]``;
    ``limits`` = (scale_lo, scale_hi, ratio_lo, ratio_hi)."""
    scale_lo, scale_hi, ratio_lo, ratio_hi = limits
    area = height * width
    log_lo = math.log(ratio_lo)
    log_hi = math.log(ratio_hi)
    for _ in range(10):
        target_area = area * rng.uniform(state, scale_lo, scale_hi)
        aspect = math.exp(rng.uniform(state, log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            params[0] = rng.randint(state, 0, height - h + 1)
            params[1] = rng.randint(state, 0, width - w + 1)
            params[2] = h
            params[3] = w
            return
    in_ratio = width / height
    if in_ratio < ratio_lo:
        w = width
        h = int(round(w / ratio_lo))
    elif in_ratio > ratio_hi:
        h = height
        w = int(round(h * ratio_hi))
    else:
        w = width
        h = height
    params[0] = (height - h) // 2
    params[1] = (width - w) // 2
    params[2] = h
    params[3] = w


def _parse_size(size: SizeArg | None, name: str, op: str) -> tuple[int, int] | ProgressiveResolution:
    """Validate a size argument: int, (h, w) or ProgressiveResolution."""
    if isinstance(size, ProgressiveResolution):
        return size
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)):
        raise ValueError(f"{op}: {name} must be an int, an (height, width) pair of ints"
                         f"{' or a ProgressiveResolution' if op == 'RandomResizedCrop' else ''}, got {size!r}")
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"{op}: {name} must be positive, got {tuple(size)!r}")
    return int(size[0]), int(size[1])


def _check_interpolation(op: str, interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{op}: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")


class _BoxResample(GeometryOp):
    """Shared kernel of the geometry ops: resample the box in columns (top, left, height, width).

    ``clamp_to_box``: filter taps stay inside the box (a crop, as torchvision crops then resizes), or may read
    the whole image (a resize of the whole image followed by a crop).
    """

    param_names = ("top", "left", "height", "width")
    clamp_to_box: bool = True
    interpolation: str
    antialias: bool

    def crop_box_columns(self) -> tuple[int, int, int, int]:
        return 0, 1, 2, 3

    def box_sampler(self) -> tuple[Callable, tuple]:
        """The njit ``draw(state, height, width, constants, params)`` writing the box, and its constants."""
        raise NotImplementedError

    def make_sampler(self) -> Callable:
        draw, constants = self.box_sampler()

        @nb.njit(nogil=True)
        def sample(state, height, width, params):
            draw(state, height, width, constants, params)

        return sample

    def make_kernel(self) -> Callable:
        cubic = self.interpolation == "bicubic"
        antialias = self.antialias
        clamp = self.clamp_to_box

        @nb.njit(nogil=True)
        def apply(src, offset, src_h, src_w, stored_h, stored_w, params, out):
            apply_box(src, offset, src_h, src_w, stored_h, stored_w, params, out, clamp, cubic, antialias)

        return apply


class RandomResizedCrop(_BoxResample):
    """torchvision ``RandomResizedCrop``: random area fraction and log-uniform aspect ratio, then resize.

    ``size`` is an int, (h, w) or a :class:`ProgressiveResolution`. Parameters (top, left, height, width) are
    drawn exactly as ``RandomResizedCrop.get_params`` (10 attempts, Python rounding, centred ratio-clamped
    fallback) from the (seed, epoch, sample, view) stream; resampling follows ``resized_crop`` with
    ``antialias=True`` (see the module docstring).
    """

    def __init__(self, size: SizeArg, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = "bilinear",
                 antialias: bool = True) -> None:
        self.size = _parse_size(size, "size", "RandomResizedCrop")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"RandomResizedCrop: scale must be (min, max) with 0 < min <= max <= 1, got {scale!r}")
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop: ratio must be (min, max) with 0 < min <= max, got {ratio!r}")
        _check_interpolation("RandomResizedCrop", interpolation)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def output_size(self, epoch: int) -> tuple[int, int]:
        if isinstance(self.size, ProgressiveResolution):
            side = self.size(epoch)
            return side, side
        return self.size

    @property
    def max_output_size(self) -> tuple[int, int]:
        if isinstance(self.size, ProgressiveResolution):
            return self.size.max, self.size.max
        return self.size

    def box_sampler(self) -> tuple[Callable, tuple]:
        return sample_rrc, (*self.scale, *self.ratio)


@nb.njit(nogil=True, cache=True)
def resized_center_box(state: np.ndarray, height: int, width: int, sizes: tuple[int, int, int, int, int],
                       params: np.ndarray) -> None:
    """Box (in stored coordinates, float) of ``Resize`` then ``CenterCrop`` with torchvision's rounding.

    ``sizes`` = (resize_h, resize_w, shorter, crop_h, crop_w). ``shorter > 0``: resize the shorter side to it
    (longer = int(shorter * long / short)); else resize to (resize_h, resize_w), where 0 means no resize. Crops
    larger than the resized image are centred the way torchvision pads them (zeros around the image). The box
    is deterministic: ``state`` is not used (it is there for the geometry sampler's signature).
    """
    resize_h, resize_w, shorter, crop_h, crop_w = sizes
    if shorter > 0:
        if height <= width:
            rh = shorter
            rw = int(shorter * width / height)
        else:
            rw = shorter
            rh = int(shorter * height / width)
    elif resize_h > 0:
        rh = resize_h
        rw = resize_w
    else:
        rh = height
        rw = width
    ch = crop_h if crop_h > 0 else rh
    cw = crop_w if crop_w > 0 else rw
    top = -((ch - rh) // 2) if ch > rh else int(round((rh - ch) / 2.0))
    left = -((cw - rw) // 2) if cw > rw else int(round((rw - cw) / 2.0))
    sy = height / rh
    sx = width / rw
    params[0] = top * sy
    params[1] = left * sx
    params[2] = ch * sy
    params[3] = cw * sx


class Resize(_BoxResample):
    """Evaluation geometry: torchvision ``Resize(size)`` optionally followed by ``CenterCrop(crop)``, in one op.

    A view allows one geometry op, so resize and centre crop are fused: ``Resize(256, crop=224)`` equals
    ``v2.Compose([v2.Resize(256), v2.CenterCrop(224)])`` and ``CenterCrop(224, resize=256)`` is the same op.
    ``size`` int resizes the shorter side (torchvision semantics), (h, w) resizes exactly, None keeps the image.
    Without ``crop`` the output size is only known per image, so ``Resize`` alone needs an (h, w) ``size``.
    Only the pixels kept by the crop are computed (filter over the whole image, evaluated at the crop).
    """

    clamp_to_box = False  # resize the whole image, then crop: taps may read outside the box

    def __init__(self, size: int | tuple[int, int] | None, crop: int | tuple[int, int] | None = None,
                 interpolation: str = "bilinear", antialias: bool = True) -> None:
        op = type(self).__name__
        if size is None and crop is None:
            raise ValueError(f"{op}: give a resize size, a crop size or both")
        self._shorter = 0
        self._resize = (0, 0)
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            self._shorter = _parse_size(size, "size", op)[0]
        elif size is not None:
            self._resize = _parse_size(size, "size", op)
        self._crop = _parse_size(crop, "crop", op) if crop is not None else (0, 0)
        if crop is None and self._shorter:
            raise ValueError(f"{op}: Resize({size}) alone has an image-dependent output size; pass crop= too "
                             f"(e.g. crop={size}) or an exact (height, width) size")
        _check_interpolation(op, interpolation)
        self.size = size
        self.crop = crop
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def output_size(self, epoch: int) -> tuple[int, int]:
        return self._crop if self._crop != (0, 0) else self._resize

    @property
    def max_output_size(self) -> tuple[int, int]:
        return self.output_size(0)

    def box_sampler(self) -> tuple[Callable, tuple]:
        return resized_center_box, (*self._resize, self._shorter, *self._crop)


class CenterCrop(Resize):
    """torchvision ``CenterCrop(size)`` (zero padding when the image is smaller), optionally after a resize.

    ``CenterCrop(224, resize=256)`` is ``Resize(256, crop=224)``; ``CenterCrop(32)`` alone copies the centre
    32 x 32 pixels exactly (CIFAR evaluation).
    """

    def __init__(self, size: int | tuple[int, int], resize: int | tuple[int, int] | None = None,
                 interpolation: str = "bilinear", antialias: bool = True) -> None:
        super().__init__(resize, crop=size, interpolation=interpolation, antialias=antialias)

    def __repr__(self) -> str:
        return (f"CenterCrop(size={self.crop!r}, resize={self.size!r}, interpolation={self.interpolation!r}, "
                f"antialias={self.antialias!r})")
