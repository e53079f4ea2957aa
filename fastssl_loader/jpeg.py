"""JPEG decode (full or DCT-scaled 1/2, 1/4, 1/8), encode and header peek.

Backend: simplejpeg (libjpeg-turbo, shipped as PyPI wheels, releases the GIL), so decoding from several
loader threads runs in parallel. Decoding always yields RGB: YCbCr, RGB and grayscale JPEGs convert exactly
as libjpeg does (accurate integer IDCT, fancy upsampling: the same pixels as Pillow).
Errors from the backend come out as ``ValueError`` with its reason; the reader and the loader wrap them in
:class:`~fastssl_loader.errors.CorruptSampleError` naming the sample.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import simplejpeg

SCALES = (1, 2, 4, 8)
SUBSAMPLING = "420"  # chroma subsampling of encode_jpeg: what cv2/Pillow use by default at quality 90


def scaled_shape(height: int, width: int, scale: int) -> tuple[int, int]:
    """Exact libjpeg-turbo output size of a 1/scale DCT decode: (ceil(h/scale), ceil(w/scale))."""
    _check_scale(scale)
    return -(-int(height) // scale), -(-int(width) // scale)


def jpeg_shape(data: Any) -> tuple[int, int]:
    """(height, width) read from the JPEG header without decoding; ValueError if it is not a JPEG."""
    height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    return int(height), int(width)


def decode_jpeg(data: Any, *, scale: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """Decode JPEG bytes (bytes, memoryview or uint8 ndarray slice, no copy) to H x W x 3 uint8 RGB.

    ``scale`` in {1, 2, 4, 8} decodes at 1/scale size in the DCT domain (see :func:`scaled_shape`).
    ``out``: optional writable C-contiguous uint8 buffer of at least h*w*3 bytes (for the scaled size); the
    result is then a view of its first h*w*3 bytes. Corrupt or truncated data raises ValueError.
    """
    _check_scale(scale)
    kwargs: dict[str, Any] = {"colorspace": "RGB", "strict": True}
    if scale != 1:
        height, width = scaled_shape(*jpeg_shape(data), scale)
        kwargs.update(min_factor=scale, min_height=height, min_width=width)
    if out is not None:
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or not out.flags.c_contiguous \
                or not out.flags.writeable:
            raise ValueError("out must be a writable C-contiguous uint8 numpy array")
        kwargs["buffer"] = out
    image = simplejpeg.decode_jpeg(data, **kwargs)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"decoder returned shape {image.shape}, expected H x W x 3")
    return image


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


def _check_scale(scale: Any) -> None:
    if scale not in SCALES or isinstance(scale, bool):
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
