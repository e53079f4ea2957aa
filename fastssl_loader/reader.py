"""DatasetReader: memory-map one dataset file, validate its metadata, give samples by index.

Opening reads the header, schema and index (checksummed) but never the data region, and validates every
index row (payload inside the data region, known storage kind, 1 <= height, width <= MAX_SIDE, height *
width <= the file's ``max_pixels``, raw payload size == height * width * 3) in one compiled pass over the
mapped index, without copying it: about 50 ms for 1.28M samples, most of it the index checksum. The int64
columns (``offsets``, ``labels``, ...) are built on first use. A file that is not valid raises
:class:`DatasetFormatError` naming the problem; a sample whose payload cannot be decoded raises
:class:`CorruptSampleError` naming its index. So a crafted file, even with recomputed checksums, can make
no read go outside the file and no decode allocate more than ``max_pixels`` * 3 bytes.
Readers are safe to share across threads (read-only map, stateless decode) and picklable (the map is
re-opened in the receiving process).
"""
from __future__ import annotations

import mmap
import operator
import os
from typing import Any

import numba as nb
import numpy as np

from . import format as fmt, jpeg
from .errors import CorruptSampleError, DatasetFormatError

_PROBLEMS = ("payload outside the data region", f"height/width not in 1..{fmt.MAX_SIDE}", "unknown storage kind",
             "raw payload size != height*width*3", "height*width > the file's max_pixels")


@nb.njit(nogil=True, cache=True)
def _first_bad_row(offsets: np.ndarray, sizes: np.ndarray, heights: np.ndarray, widths: np.ndarray,
                   storage: np.ndarray, lo: np.uint64, hi: np.uint64, max_side: np.uint64, max_pixels: np.uint64,
                   max_storage: np.uint8) -> tuple[int, int]:
    """(row, index into _PROBLEMS) of the first invalid index row, or (-1, -1). All arithmetic in uint64."""
    for i in range(len(offsets)):
        offset, size = offsets[i], sizes[i]
        if size == 0 or size > hi - lo or offset < lo or offset > hi - size:
            return i, 0
        height, width = nb.uint64(heights[i]), nb.uint64(widths[i])
        if height < 1 or width < 1 or height > max_side or width > max_side:
            return i, 1
        if storage[i] > max_storage:
            return i, 2
        if storage[i] == fmt.STORAGE_RAW and size != height * width * nb.uint64(3):
            return i, 3
        if height * width > max_pixels:
            return i, 4
    return -1, -1


def sample_index(i: Any, n: int) -> int:
    """``i`` as a sample index in ``0..n-1`` (negative indices count from the end, as for lists)."""
    try:
        i = operator.index(i)
    except TypeError:
        raise TypeError(f"sample index must be an integer, got {i!r}") from None
    if not -n <= i < n:
        raise IndexError(f"sample index {i} out of range for {n} samples")
    return i % n


class _IndexColumn:
    """One index field as a contiguous read-only array of ``dtype``, built on first use and then cached on the
    reader (opening a file of a million samples builds none of them)."""

    def __init__(self, field: str, dtype: type) -> None:
        self.field, self.dtype = field, dtype

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, reader: DatasetReader | None, owner: type | None = None) -> Any:
        if reader is None:
            return self
        column = np.ascontiguousarray(reader.index[self.field], dtype=self.dtype)
        column.flags.writeable = False
        reader.__dict__[self.name] = column  # later reads find the array first: no descriptor call
        return column


class DatasetReader:
    """Read-only view of a dataset file. See docs/architecture.md (reader -> loader contract)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._open()

    def _open(self) -> None:
        try:
            file_size = os.path.getsize(self.path)
        except OSError as exc:
            raise DatasetFormatError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        if file_size < fmt.HEADER_SIZE:
            raise DatasetFormatError(f"{self.path}: file too short ({file_size} bytes) to be a dataset")
        try:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_RANDOM"):  # no read-around on a page fault: prefetch() says what to read
                self._map.madvise(mmap.MADV_RANDOM)
            # a plain read-only ndarray view of the map: cheaper to slice than np.memmap, Numba-friendly
            self.data: np.ndarray = np.frombuffer(self._map, dtype=np.uint8)
            header = fmt.Header.unpack(self.data[: fmt.HEADER_SIZE].tobytes(), file_size)
            self.schema: dict[str, Any] = self._read_schema(header)
            self.max_pixels: int = _max_pixels(self.schema)
            self.index: np.ndarray = self._read_index(header)
            self._check_index(header)
            self.data_size: int = header.data_size  # bytes of the data region (payloads), from HEADER_SIZE on
        except DatasetFormatError as exc:
            raise DatasetFormatError(f"{self.path}: {exc}") from None

    def _read_schema(self, header: fmt.Header) -> dict[str, Any]:
        raw = self.data[header.schema_offset: header.schema_offset + header.schema_size]
        if fmt.checksum(raw) != header.schema_crc:
            raise DatasetFormatError("schema checksum mismatch")
        schema = fmt.decode_schema(raw)
        if schema.get("num_samples") != header.num_samples:
            raise DatasetFormatError(f"schema says {schema.get('num_samples')!r} samples, header {header.num_samples}")
        return schema

    def _read_index(self, header: fmt.Header) -> np.ndarray:
        """The index as a read-only structured view of the map (no copy)."""
        dtype = fmt.index_dtype(self.schema["extra_fields"])
        if header.index_size != header.num_samples * dtype.itemsize:
            raise DatasetFormatError(f"index size {header.index_size} != {header.num_samples} samples x "
                                     f"{dtype.itemsize} bytes")
        raw = self.data[header.index_offset: header.index_offset + header.index_size]
        if fmt.checksum(raw) != header.index_crc:
            raise DatasetFormatError("index checksum mismatch")
        return raw.view(dtype)

    def _check_index(self, header: fmt.Header) -> None:
        """Every row valid, so that no index value can make a read leave the data region or a decode allocate
        more than max_pixels * 3 bytes."""
        index = self.index
        row, problem = _first_bad_row(
            index["offset"], index["size"], index["height"], index["width"], index["storage"],
            np.uint64(header.data_offset), np.uint64(header.data_offset + header.data_size),
            np.uint64(fmt.MAX_SIDE), np.uint64(self.max_pixels), np.uint8(max(fmt.STORAGE_NAMES)))
        if row >= 0:
            raise DatasetFormatError(f"sample {row}: {_PROBLEMS[problem]}")

    # int64 / uint8 columns of the index, built on first use (the loader's contract; see docs/architecture.md)
    offsets = _IndexColumn("offset", np.int64)
    sizes = _IndexColumn("size", np.int64)
    heights = _IndexColumn("height", np.int64)
    widths = _IndexColumn("width", np.int64)
    storage = _IndexColumn("storage", np.uint8)
    labels = _IndexColumn("label", np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"DatasetReader({self.path!r}, {len(self)} samples)"

    def _sample(self, i: Any) -> int:
        return sample_index(i, len(self))

    def payload(self, i: int) -> np.ndarray:
        """The stored payload of sample i, in place: a read-only uint8 view of the map (no copy)."""
        i = self._sample(i)
        start = self.offsets[i]
        return self.data[start: start + self.sizes[i]]

    def prefetch(self, ids: np.ndarray) -> None:
        """Start reading the payloads of samples ``ids`` from disk and return at once (``madvise(WILLNEED)`` on
        their pages; nothing to do for pages already cached).

        The map is advised ``MADV_RANDOM``, so a page fault reads only its own page instead of the kernel's
        read-around window (up to megabytes around every random access, most of it never used when the file is
        larger than the page cache); the loader prefetches each batch's samples before decoding them, so their
        bytes arrive in a few large reads that overlap the decoding."""
        if not hasattr(mmap, "MADV_WILLNEED"):
            return
        offsets = self.offsets[ids]
        starts = offsets // mmap.PAGESIZE * mmap.PAGESIZE
        ends = offsets + self.sizes[ids]
        for start, end in zip(starts.tolist(), ends.tolist()):
            self._map.madvise(mmap.MADV_WILLNEED, start, end - start)

    def describe(self, i: int) -> str:
        """Where sample i is stored, for error messages: the file's path."""
        return self.path

    def encoded(self, i: int) -> bytes:
        """The stored payload of sample i (JPEG bytes, or raw H*W*3 pixels)."""
        return self.payload(i).tobytes()

    def image(self, i: int) -> np.ndarray:
        """Sample i decoded to a new H x W x 3 uint8 RGB array; CorruptSampleError if it cannot be."""
        i = self._sample(i)
        height, width = int(self.heights[i]), int(self.widths[i])
        payload = self.payload(i)
        if self.storage[i] == fmt.STORAGE_RAW:
            return np.array(payload).reshape(height, width, 3)
        try:
            shape = jpeg.jpeg_shape(payload)
            if shape != (height, width):  # checked first: never allocate what a corrupt header claims
                raise ValueError(f"JPEG header says {shape}, index says {(height, width)}")
            return jpeg.decode_jpeg(payload, out=np.empty((height, width, 3), np.uint8))
        except ValueError as exc:
            raise CorruptSampleError(i, str(exc), self.path) from None

    def field(self, name: str) -> np.ndarray:
        """An extra per-sample field (or a base index column such as ``label``) as an [N, ...] array."""
        if name not in self.index.dtype.names:
            raise KeyError(f"no field {name!r} in {self.path}; fields: {list(self.index.dtype.names)}")
        return self.index[name]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._open()


def _max_pixels(schema: dict[str, Any]) -> int:
    """The file's max_pixels (schema ``image.max_pixels``; DEFAULT_MAX_PIXELS for files written without it)."""
    image = schema.get("image")
    if not isinstance(image, dict):
        raise DatasetFormatError("bad schema: 'image' is not an object")
    value = image.get("max_pixels", fmt.DEFAULT_MAX_PIXELS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= fmt.MAX_PIXELS_LIMIT:
        raise DatasetFormatError(f"bad schema: max_pixels {value!r} is not an integer in 1..{fmt.MAX_PIXELS_LIMIT}")
    return value
