"""Turn any source image into RGB uint8 H x W x 3 (C-order): PIL image, ndarray, file path or encoded bytes.

Conversions (each chosen to match what torchvision's ``ImageFolder`` default loader, ``PIL.convert("RGB")``,
trains on, except where that loader is wrong):

* grayscale (``L``, ``1``, H x W or H x W x 1 arrays) -> the gray value replicated to R, G, B;
* palette (``P``) -> its RGB colours;
* alpha (``RGBA``, ``LA``, ``PA``, H x W x 4 arrays) -> alpha is DROPPED (colour kept as is, no compositing),
  exactly as ``convert("RGB")`` does;
* CMYK -> Pillow's CMYK to RGB conversion (Adobe inverted CMYK JPEGs are handled by Pillow's decoder);
* 16-bit (``I;16*``/``I`` images, uint16 arrays) -> scaled to 8 bit with rounding, ``round(v * 255 / 65535)``
  (Pillow's own conversion clips instead, which turns most 16-bit images white);
* EXIF orientation -> applied, so the pixels are upright (torchvision's loader ignores it; we do not).

Encoded JPEGs that libjpeg-turbo decodes to exactly these pixels (3-component YCbCr/RGB or grayscale,
baseline or progressive, EXIF orientation absent or 1) are "plain": the writer may store their bytes
untouched (``passthrough``); CMYK and EXIF-rotated JPEGs are always decoded here and re-encoded.
``capped_shape``/``cap_resolution`` implement ``max_resolution`` (area downscale, never upscale).

Decompression bombs: an image larger than ``max_pixels`` (height * width) is refused from its header, before
any pixel buffer is allocated, whatever Pillow's ``Image.MAX_IMAGE_PIXELS`` says (Pillow's own limit still
applies to the formats it decodes). Error reasons are deterministic (no object reprs), since skipped samples'
reasons are stored in the file.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from . import format as fmt, jpeg
from .errors import SourceImageError

_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
_JPEG_SOI = b"\xff\xd8\xff"


def read_encoded(image: Any, *, name: str = "image") -> bytes | None:
    """The encoded bytes of a file-path or bytes source (None for PIL images and arrays)."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with open(image, "rb") as f:
                return f.read()
        except OSError as exc:
            raise SourceImageError(name, f"cannot read file: {exc.strerror or exc}") from None
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    return None


def to_rgb(image: Any, *, name: str = "image", max_pixels: int = fmt.DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any supported source image as C-contiguous RGB uint8 H x W x 3 (see module docstring).

    ``name`` is used in error messages (a file path source names itself). An image of more than
    ``max_pixels`` pixels raises SourceImageError before it is decoded.
    """
    if isinstance(image, (str, os.PathLike)):
        name = os.fspath(image)
    data = read_encoded(image, name=name)
    if data is not None:
        return _from_encoded(data, name, max_pixels)
    if isinstance(image, Image.Image):
        return _from_pil(image, name, max_pixels)
    if isinstance(image, np.ndarray):
        if image.ndim >= 2:
            check_pixels(image.shape[0], image.shape[1], max_pixels, name)
        return _from_array(image, name)
    raise SourceImageError(name, f"unsupported image type {type(image).__name__} "
                                 "(expected PIL image, ndarray, path or encoded bytes)")


def plain_jpeg_shape(data: bytes, *, name: str = "image", max_pixels: int = fmt.DEFAULT_MAX_PIXELS
                     ) -> tuple[int, int] | None:
    """(height, width) if ``data`` is a plain JPEG that can be stored untouched, else None.

    The whole entropy-coded stream is checked with a cheap 1/8-scale decode, so a truncated or corrupt
    plain JPEG raises SourceImageError here rather than in the training loop; so does one of more than
    ``max_pixels`` pixels (before that decode).
    """
    if not (data.startswith(_JPEG_SOI) and _is_plain_jpeg(data)):
        return None
    shape = _jpeg_header_shape(data, name)
    check_pixels(*shape, max_pixels, name)
    try:
        jpeg.decode_jpeg(data, scale=8)
    except ValueError as exc:
        raise SourceImageError(name, _jpeg_reason(data, exc)) from None
    return shape


def check_pixels(height: int, width: int, max_pixels: int, name: str) -> None:
    """Raise SourceImageError if a ``height`` x ``width`` image has more than ``max_pixels`` pixels."""
    if height * width > max_pixels:
        raise SourceImageError(name, f"image of {width}x{height} = {height * width:,} pixels exceeds max_pixels="
                                     f"{max_pixels:,} (a decompression bomb?); raise max_pixels to convert it")


def capped_shape(height: int, width: int, max_resolution: int | None) -> tuple[int, int]:
    """(h, w) with the longer side capped at ``max_resolution`` (never upscaled, aspect kept, >= 1 px)."""
    longest = max(height, width)
    if max_resolution is None or longest <= max_resolution:
        return height, width
    ratio = max_resolution / longest
    return (max(1, math.floor(height * ratio + 0.5)), max(1, math.floor(width * ratio + 0.5)))


def cap_resolution(rgb: np.ndarray, max_resolution: int | None) -> np.ndarray:
    """Downscale so the longer side is at most ``max_resolution`` with area averaging (cv2.INTER_AREA)."""
    height, width = capped_shape(rgb.shape[0], rgb.shape[1], max_resolution)
    if (height, width) == rgb.shape[:2]:
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _from_encoded(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    if not data:
        raise SourceImageError(name, "empty file (0 bytes)")
    if data.startswith(_JPEG_SOI) and _is_plain_jpeg(data):  # libjpeg-turbo: faster than Pillow, same pixels
        check_pixels(*_jpeg_header_shape(data, name), max_pixels, name)
        try:
            return jpeg.decode_jpeg(data)
        except ValueError as exc:
            raise SourceImageError(name, _jpeg_reason(data, exc)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # palette-transparency, EXIF and Pillow's bomb warnings: handled here
        try:
            pil = Image.open(io.BytesIO(data))  # reads the header only
        except Image.UnidentifiedImageError:
            what = "corrupt or truncated JPEG header" if data.startswith(_JPEG_SOI) else "not an image"
            raise SourceImageError(name, f"{what} (starts with {data[:16]!r}, {len(data)} bytes)") from None
        except Image.DecompressionBombError as exc:
            raise SourceImageError(name, f"refused by Pillow's Image.MAX_IMAGE_PIXELS: {exc}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            kind = "JPEG" if data.startswith(_JPEG_SOI) else None
            raise SourceImageError(name, _pillow_reason(kind, data, exc)) from None
        with pil:
            check_pixels(pil.height, pil.width, max_pixels, name)
            try:
                pil.load()
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise SourceImageError(name, _pillow_reason(pil.format, data, exc)) from None
            return _from_pil(pil, name, max_pixels)


def _jpeg_header_shape(data: bytes, name: str) -> tuple[int, int]:
    try:
        return jpeg.jpeg_shape(data)
    except ValueError as exc:
        raise SourceImageError(name, f"corrupt or truncated JPEG header: {exc}") from None


def _jpeg_reason(data: bytes, exc: Exception) -> str:
    """Why libjpeg could not decode ``data``: a missing end-of-image marker means the file was cut short."""
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return f"truncated JPEG ({len(data)} bytes, no end-of-image marker): {exc}"
    return f"corrupt JPEG: {exc}"


def _pillow_reason(image_format: str | None, data: bytes, exc: Exception) -> str:
    kind = image_format or "image"
    if kind == "JPEG":
        return _jpeg_reason(data, exc)
    if "truncated" in str(exc).lower():
        return f"truncated {kind} ({len(data)} bytes)"
    return f"corrupt {kind}: {exc}"


def _is_plain_jpeg(data: bytes) -> bool:
    """True if libjpeg-turbo's RGB output of these bytes is the normalised image (no EXIF turn, no CMYK)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as pil:
                return (pil.format == "JPEG" and pil.mode in ("RGB", "L")
                        and pil.getexif().get(_EXIF_ORIENTATION, 1) == 1)
    except Exception:  # noqa: BLE001 - any header problem: not plain, the full decode path reports it
        return False


def _from_pil(pil: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    check_pixels(pil.height, pil.width, max_pixels, name)
    try:
        pil = ImageOps.exif_transpose(pil)
        if pil.mode in _SIXTEEN_BIT_MODES:
            return _from_array(np.clip(np.asarray(pil), 0, 65535).astype(np.uint16), name)
        if pil.mode == "F":
            raise SourceImageError(name, "floating-point images are not supported (convert to uint8 first)")
        return _from_array(np.asarray(pil.convert("RGB")), name)
    except SourceImageError:
        raise
    except (OSError, ValueError) as exc:
        raise SourceImageError(name, f"cannot convert {pil.mode} image to RGB: {exc}") from None


def _from_array(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint16:
        array = ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise SourceImageError(name, f"array dtype {array.dtype} not supported (need uint8 or uint16)")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        rgb = array[:, :, :3]
    elif array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        rgb = np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
    else:
        raise SourceImageError(name, f"array shape {array.shape} not supported (need HxW or HxWxC, C in 1,3,4)")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise SourceImageError(name, f"empty image of shape {array.shape}")
    return np.ascontiguousarray(rgb)
