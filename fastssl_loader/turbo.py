"""ctypes binding to the TurboJPEG 3 API bundled in the ``turbojpeg`` wheel (optional extra ``[turbo]``).

Why: libjpeg-turbo 3's TurboJPEG API decodes a *region* of a JPEG (``tj3SetCroppingRegion``) at a DCT scale
(``tj3SetScalingFactor``): rows below the region are never entropy-decoded and rows above it are only
entropy-decoded (no IDCT, upsampling or colour conversion), columns outside it skip IDCT and colour
conversion. simplejpeg links libjpeg-turbo statically and exposes neither. The ``turbojpeg`` 0.0.2 wheel
(Linux x86_64, Python 3.10-3.13) ships ``turbojpeg.libs/libturbojpeg-*.so.0.3.0`` (libjpeg-turbo 2.1.92, the
3.0 beta) with the tj3 symbols exported; we load that library with ctypes (its own pybind11 module is not
used: it holds the GIL). ctypes releases the GIL around every foreign call, so loader threads decode in
parallel. A TurboJPEG handle is not thread-safe: each thread gets its own (``threading.local``).

``available()`` is False when the wheel (or its library) is missing; :mod:`fastssl_loader.jpeg` then falls
back to simplejpeg. Errors raise ``ValueError`` with libjpeg-turbo's message; warnings (truncated or corrupt
data that libjpeg would conceal) are errors too, as in ``simplejpeg.decode_jpeg(strict=True)``.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import threading
from typing import Any

import numpy as np

# enum TJPARAM of turbojpeg.h (identical in 2.1.92 and 3.0.x)
_PARAM_STOPONWARNING = 0
_PARAM_SUBSAMP = 4
_PARAM_JPEGWIDTH = 5
_PARAM_JPEGHEIGHT = 6
_PARAM_FASTDCT = 10
_PARAM_PROGRESSIVE = 12
_INIT_DECOMPRESS = 1
_PF_RGB = 0
# iMCU size in pixels per chroma subsampling (TJSAMP_444, 422, 420, GRAY, 440, 411, 441); -1 = unknown
_MCU_WIDTH = (8, 16, 16, 8, 8, 32, 8)
_MCU_HEIGHT = (8, 8, 16, 8, 16, 8, 32)


class _Region(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


class _Scaling(ctypes.Structure):
    _fields_ = [("num", ctypes.c_int), ("denom", ctypes.c_int)]


def library_path() -> str | None:
    """Path of the libturbojpeg bundled in the installed ``turbojpeg`` wheel, or None."""
    spec = importlib.util.find_spec("turbojpeg")
    if spec is None or not spec.origin:
        return None
    root = os.path.dirname(spec.origin)
    found = sorted(glob.glob(os.path.join(root, "turbojpeg.libs", "libturbojpeg*.so*")))
    return found[0] if found else None


def _load() -> ctypes.CDLL | None:
    path = library_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        lib.tj3SetCroppingRegion  # noqa: B018  (a TurboJPEG 2 library lacks it)
    except (OSError, AttributeError):
        return None
    handle, c_int, buf = ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
    lib.tj3Init.argtypes, lib.tj3Init.restype = [c_int], handle
    lib.tj3Destroy.argtypes, lib.tj3Destroy.restype = [handle], None
    lib.tj3Set.argtypes, lib.tj3Set.restype = [handle, c_int, c_int], c_int
    lib.tj3Get.argtypes, lib.tj3Get.restype = [handle, c_int], c_int
    lib.tj3GetErrorStr.argtypes, lib.tj3GetErrorStr.restype = [handle], ctypes.c_char_p
    lib.tj3DecompressHeader.argtypes, lib.tj3DecompressHeader.restype = [handle, buf, ctypes.c_size_t], c_int
    lib.tj3SetScalingFactor.argtypes, lib.tj3SetScalingFactor.restype = [handle, _Scaling], c_int
    lib.tj3SetCroppingRegion.argtypes, lib.tj3SetCroppingRegion.restype = [handle, _Region], c_int
    lib.tj3Decompress8.argtypes = [handle, buf, ctypes.c_size_t, buf, c_int, c_int]
    lib.tj3Decompress8.restype = c_int
    return lib


_LIB = _load()
_FULL = _Region(0, 0, 0, 0)  # TJUNCROPPED


def available() -> bool:
    """True when the TurboJPEG 3 library could be loaded."""
    return _LIB is not None


class _Handle:
    """One thread's TurboJPEG decompressor, destroyed with the thread-local that owns it."""

    def __init__(self) -> None:
        self.ptr = _LIB.tj3Init(_INIT_DECOMPRESS)
        if not self.ptr:
            raise RuntimeError("tj3Init failed")
        _LIB.tj3Set(self.ptr, _PARAM_STOPONWARNING, 1)

    def __del__(self) -> None:
        if _LIB is not None and getattr(self, "ptr", None):
            _LIB.tj3Destroy(self.ptr)

    def fail(self, what: str) -> ValueError:
        """The error to raise for the failed call; the thread gets a fresh handle next time, because after a
        failed decode libjpeg-turbo 2.1.92 keeps failing on the same handle."""
        _local.handle = None
        return ValueError(f"{what}: {_LIB.tj3GetErrorStr(self.ptr).decode(errors='replace')}")


_local = threading.local()


def _handle() -> _Handle:
    handle = getattr(_local, "handle", None)
    if handle is None:
        handle = _local.handle = _Handle()
    return handle


def _buffer(data: Any) -> tuple[np.ndarray, int]:
    """A uint8 array over ``data`` (no copy for bytes, memoryview or uint8 arrays) and its address."""
    array = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
    if array.dtype != np.uint8 or array.ndim != 1 or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, np.uint8).reshape(-1)
    if array.size == 0:
        raise ValueError("empty JPEG data")
    return array, array.ctypes.data


def header(data: Any) -> dict[str, int]:
    """height, width, subsampling (TJSAMP index, -1 unknown), progressive (0/1), mcu_height, mcu_width."""
    array, address = _buffer(data)
    h = _handle()
    if _LIB.tj3DecompressHeader(h.ptr, address, array.size) != 0:
        raise h.fail("not a readable JPEG header")
    subsamp = _LIB.tj3Get(h.ptr, _PARAM_SUBSAMP)
    known = 0 <= subsamp < len(_MCU_WIDTH)
    return {"height": _LIB.tj3Get(h.ptr, _PARAM_JPEGHEIGHT), "width": _LIB.tj3Get(h.ptr, _PARAM_JPEGWIDTH),
            "subsampling": subsamp, "progressive": _LIB.tj3Get(h.ptr, _PARAM_PROGRESSIVE),
            "mcu_height": _MCU_HEIGHT[subsamp] if known else 32, "mcu_width": _MCU_WIDTH[subsamp] if known else 32}


def covering_region(height: int, width: int, scale: int, box: tuple[int, int, int, int],
                    mcu_width: int) -> tuple[int, int, int, int]:
    """The scaled-image region (top, left, height, width) that libjpeg-turbo can decode and that covers ``box``.

    ``box`` = (top, left, height, width) in full-image pixels (height x width image). Its scaled extent is
    rows [floor(top*sh/height), ceil((top+h)*sh/height)) with sh = ceil(height/scale) (columns alike): every
    pixel a resampler clamped to the box reads once the box is mapped by scaled/full size. Columns are then
    widened: when chroma is horizontally subsampled (iMCU wider than 8), by one scaled iMCU on each side,
    because libjpeg's fancy upsampling treats the region's side edges as image edges (the outermost columns
    of a region differ from a full decode; rows do not: skipped rows keep their upsampling context); and
    ``left`` moves down to a multiple of the scaled iMCU width, which TurboJPEG requires. Clipped to the
    image; an empty box gives an empty region.
    """
    sh, sw = -(-int(height) // scale), -(-int(width) // scale)
    top, left, bh, bw = (int(v) for v in box)
    y0, y1 = max(0, top) * sh // height, min(sh, -(-(top + bh) * sh // height))
    x0, x1 = max(0, left) * sw // width, min(sw, -(-(left + bw) * sw // width))
    if y1 <= y0 or x1 <= x0:
        return y0, x0, 0, 0
    mcu = -(-mcu_width // scale)
    if mcu_width > 8:
        x0, x1 = max(0, x0 - mcu), min(sw, x1 + mcu)
    x0 -= x0 % mcu
    return y0, x0, y1 - y0, x1 - x0


def decode(data: Any, scale: int, box: tuple[int, int, int, int] | None, out: np.ndarray | None,
           fast_idct: bool, expect_shape: tuple[int, int] | None = None,
           in_frame: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``data`` at 1/``scale`` to RGB; with ``box`` (full-image pixels) only :func:`covering_region`.

    Returns the H x W x 3 image and the (top, left) of its first pixel in the scaled image ((0, 0) for the
    whole image). ``out``: optional writable C-contiguous uint8 buffer of at least H*W*3 bytes; the image is
    then a view of it. ``in_frame``: ``out`` (or a new buffer) is laid out as the WHOLE scaled image (row
    pitch = scaled width) and the region is decoded at its place in it; the image returned is then a strided
    view of that frame, and the frame's pixels outside the region are left as they were. ``expect_shape``:
    full-size (height, width) the caller's boxes refer to; ValueError when the header disagrees.
    """
    array, address = _buffer(data)
    h = _handle()
    if _LIB.tj3DecompressHeader(h.ptr, address, array.size) != 0:
        raise h.fail("not a readable JPEG header")
    full_h, full_w = _LIB.tj3Get(h.ptr, _PARAM_JPEGHEIGHT), _LIB.tj3Get(h.ptr, _PARAM_JPEGWIDTH)
    if expect_shape is not None and (full_h, full_w) != tuple(expect_shape):
        raise ValueError(f"JPEG header says {full_h}x{full_w}, expected {expect_shape[0]}x{expect_shape[1]}")
    if _LIB.tj3SetScalingFactor(h.ptr, _Scaling(1, scale)) != 0:
        raise h.fail(f"scale 1/{scale}")
    if box is None:
        top, left, height, width = 0, 0, -(-full_h // scale), -(-full_w // scale)
        crop = _FULL
    else:
        subsamp = _LIB.tj3Get(h.ptr, _PARAM_SUBSAMP)
        mcu_width = _MCU_WIDTH[subsamp] if 0 <= subsamp < len(_MCU_WIDTH) else 32
        top, left, height, width = covering_region(full_h, full_w, scale, box, mcu_width)
        if height == 0:
            return np.empty((0, 0, 3), np.uint8), (top, left)
        crop = _Region(left, top, width, height)
    if _LIB.tj3SetCroppingRegion(h.ptr, crop) != 0:
        raise h.fail(f"cropping region (top, left, height, width) = {(top, left, height, width)}")
    _LIB.tj3Set(h.ptr, _PARAM_FASTDCT, int(bool(fast_idct)))
    frame_h, frame_w = (-(-full_h // scale), -(-full_w // scale)) if in_frame else (height, width)
    nbytes = frame_h * frame_w * 3
    if out is None:
        out = np.empty(nbytes, np.uint8)
    elif out.size < nbytes:
        raise ValueError(f"out buffer too small: {out.size} bytes for a {frame_h}x{frame_w}x3 image")
    frame = out.reshape(-1)[:nbytes].reshape(frame_h, frame_w, 3)
    image = frame[top:top + height, left:left + width] if in_frame else frame
    if _LIB.tj3Decompress8(h.ptr, address, array.size, image.ctypes.data, frame_w * 3, _PF_RGB) != 0:
        raise h.fail("JPEG decode failed")
    return image, (top, left)
