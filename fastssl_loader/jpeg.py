"""JPEG decode (full or DCT-scaled 1/2, 1/4, 1/8, optionally only a region), encode and header peek.

Backend: simplejpeg (libjpeg-turbo, shipped as PyPI wheels, releases the GIL), so decoding from several
loader threads runs in parallel. Decoding always yields RGB: YCbCr, RGB and grayscale JPEGs convert exactly
as libjpeg does (accurate integer IDCT, fancy upsampling: the same pixels as Pillow).
``fast_idct=True`` selects libjpeg-turbo's fast integer IDCT (what FFCV uses): a few percent faster, pixels
differ from the accurate IDCT by a few levels (figures in benches/decode_region.py's JSON).
:func:`decode_region` decodes only the part of the image a set of crops needs, through the TurboJPEG 3 API
of the optional ``turbojpeg`` wheel (extra ``[turbo]``, see :mod:`fastssl_loader.turbo`); without it, it
decodes the whole (scaled) image with simplejpeg. Both give the same pixels (same libjpeg-turbo algorithms).
Errors from the backend come out as ``ValueError`` with its reason; the reader and the loader wrap them in
:class:`~fastssl_loader.errors.CorruptSampleError` naming the sample.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import simplejpeg

from fastssl_loader import turbo

SCALES = (1, 2, 4, 8)
SUBSAMPLING = "420"  # chroma subsampling of encode_jpeg: what cv2/Pillow use by default at quality 90
REGION_BACKEND = "turbojpeg" if turbo.available() else "simplejpeg"  # what decode_region uses


def scaled_shape(height: int, width: int, scale: int) -> tuple[int, int]:
    """Exact libjpeg-turbo output size of a 1/scale DCT decode: (ceil(h/scale), ceil(w/scale))."""
    _check_scale(scale)
    return -(-int(height) // scale), -(-int(width) // scale)


def jpeg_shape(data: Any) -> tuple[int, int]:
    """(height, width) read from the JPEG header without decoding; ValueError if it is not a JPEG."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    return int(height), int(width)


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame; C4 DHT, C8 JPG, CC DAC
_PROGRESSIVE_SOF = frozenset((0xC2, 0xC6, 0xCA, 0xCE))
_STANDALONE_MARKERS = frozenset((0x01, *range(0xD0, 0xD9)))  # TEM, RSTn, SOI: no length field


def is_progressive(data: Any) -> bool:
    """Whether the JPEG's frame is progressive (SOF2/6/10/14), from its header markers; no decode.

    ValueError when no start-of-frame marker is found before the data ends or the marker chain breaks.
    """
    view = memoryview(data).cast("B")
    i = 2 if bytes(view[:2]) == b"\xff\xd8" else None
    while i is not None and i + 4 <= len(view):
        if view[i] != 0xFF:
            break
        marker = view[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _SOF_MARKERS:
            return marker in _PROGRESSIVE_SOF
        elif marker in _STANDALONE_MARKERS:
            i += 2
        else:
            i += 2 + (view[i + 2] << 8 | view[i + 3])
    raise ValueError("not a JPEG or no start-of-frame marker in its header")


def decode_jpeg(data: Any, *, scale: int = 1, out: np.ndarray | None = None, fast_idct: bool = False) -> np.ndarray:
    """Decode JPEG bytes (bytes, memoryview or uint8 ndarray slice, no copy) to H x W x 3 uint8 RGB.

    ``scale`` in {1, 2, 4, 8} decodes at 1/scale size in the DCT domain (see :func:`scaled_shape`).
    ``out``: optional writable C-contiguous uint8 buffer of at least h*w*3 bytes (for the scaled size); the
    result is then a view of its first h*w*3 bytes. ``fast_idct``: libjpeg-turbo's fast integer IDCT instead
    of the accurate one. Corrupt or truncated data raises ValueError.
    """
    _check_scale(scale)
    kwargs: dict[str, Any] = {"colorspace": "RGB", "strict": True, "fastdct": bool(fast_idct)}
    if scale != 1:
        height, width = scaled_shape(*jpeg_shape(data), scale)
        kwargs.update(min_factor=scale, min_height=height, min_width=width)
    if out is not None:
        _check_out(out)
        kwargs["buffer"] = out
    image = simplejpeg.decode_jpeg(data, **kwargs)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"decoder returned shape {image.shape}, expected H x W x 3")
    return image


def decode_region(data: Any, scale: int = 1, box: tuple[int, int, int, int] | None = None,
                  out: np.ndarray | None = None, *, fast_idct: bool = False,
                  expect_shape: tuple[int, int] | None = None,
                  in_frame: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode at 1/``scale`` at least the part of the image that ``box`` needs; return it and its origin.

    ``box`` = (top, left, height, width) in FULL-SIZE image pixels (e.g. the union of a sample's crop boxes,
    in stored-image coordinates); None = the whole image. Returns ``(image, (top, left))``: ``image`` is an
    h x w x 3 uint8 RGB array (a view of ``out`` when given, as in :func:`decode_jpeg`) holding rows
    ``top:top+h`` and columns ``left:left+w`` of the 1/``scale`` image (of shape :func:`scaled_shape`).
    It contains every scaled pixel the box maps onto (rows floor(box_top*sh/H) .. ceil((box_top+box_h)*sh/H),
    columns alike; sh = scaled height, H = full height), identical to those of a full decode at the same
    scale when ``fast_idct`` is off; it may be wider (iMCU alignment) or the whole image (without the
    ``[turbo]`` extra, or box None), so always use the returned origin and shape. A box outside the image
    gives an empty (0 x 0) image. ``in_frame=True``: ``out`` is laid out as the whole 1/``scale`` image (it
    must hold :func:`scaled_shape` x 3 bytes) and the region is decoded at its own place in it, so code that
    indexes the whole scaled image reads the region's pixels without any coordinate mapping (the loader's
    kernels); ``image`` is then a strided view of that frame and the frame's pixels outside the region are
    left untouched. ``expect_shape``: the full-size (height, width) the box refers to (the
    dataset index's); a JPEG whose header disagrees raises ValueError instead of being mapped wrongly.
    Corrupt or truncated data raises ValueError.
    """
    _check_scale(scale)
    if out is not None:
        _check_out(out)
    if REGION_BACKEND == "turbojpeg":
        return turbo.decode(data, scale, box, out, fast_idct, expect_shape, in_frame)
    image = decode_jpeg(data, scale=scale, out=out, fast_idct=fast_idct)
    if expect_shape is not None and image.shape[:2] != scaled_shape(*expect_shape, scale):
        raise ValueError(f"decoded {image.shape[0]}x{image.shape[1]} at 1/{scale}, expected "
                         f"{scaled_shape(*expect_shape, scale)} for a {expect_shape[0]}x{expect_shape[1]} image")
    return image, (0, 0)


def largest_scale(ratio: Any) -> np.ndarray:
    """Per sample, the largest DCT scale s in {1, 2, 4, 8} with s <= ``ratio`` (crop side / output side,
    the minimum over every view and both axes): a 1/s decode still has at least one pixel per output pixel."""
    ratio = np.maximum(np.asarray(ratio, np.float64), 1.0)
    return np.left_shift(1, np.clip(np.floor(np.log2(ratio)), 0, 3).astype(np.int64))


def union_box(boxes: Sequence[np.ndarray]) -> np.ndarray:
    """int64 [n, 4] (top, left, height, width): per sample, the smallest box holding every view's box.

    ``boxes``: one int64 [n, 4] (top, left, height, width) array per view (``ViewPlan.crop_boxes``); the
    argument :func:`decode_region` wants for a sample whose views all crop (RandomResizedCrop).
    """
    stack = np.stack([np.asarray(b, np.int64) for b in boxes])
    top, left = stack[..., 0].min(0), stack[..., 1].min(0)
    bottom, right = (stack[..., 0] + stack[..., 2]).max(0), (stack[..., 1] + stack[..., 3]).max(0)
    return np.stack([top, left, bottom - top, right - left], axis=1)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode an H x W x 3 uint8 RGB array at ``quality`` (1..100, 4:2:0 chroma) to JPEG bytes."""
    check_quality(quality)
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_jpeg needs an H x W x 3 uint8 array, got {getattr(rgb, 'shape', type(rgb))}")
    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=int(quality), colorspace="RGB",
                                  colorsubsampling=SUBSAMPLING)


def check_quality(quality: Any) -> None:
    """Raise ValueError unless quality is an int in 1..100."""
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"jpeg_quality must be an integer in 1..100, got {quality!r}")


def _check_out(out: Any) -> None:
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or not out.flags.c_contiguous \
            or not out.flags.writeable:
        raise ValueError("out must be a writable C-contiguous uint8 numpy array")


def _check_scale(scale: Any) -> None:
    if scale not in SCALES or isinstance(scale, bool):
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
