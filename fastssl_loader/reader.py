"""DatasetReader: memory-map one dataset file, validate its metadata, give samples by index.

Opening reads the header, schema and index (checksummed) but never the data region, so it takes
milliseconds for any file size. A file that is not valid raises :class:`DatasetFormatError` naming the
problem; a sample whose payload cannot be decoded raises :class:`CorruptSampleError` naming its index.
Readers are safe to share across threads (read-only map, stateless decode) and picklable (the map is
re-opened in the receiving process).
"""
from __future__ import annotations

import operator
import os
from typing import Any

import numpy as np

from . import format as fmt, jpeg
from .errors import CorruptSampleError, DatasetFormatError


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
            # a plain read-only ndarray view of the map: cheaper to slice than np.memmap, Numba-friendly
            self.data: np.ndarray = np.memmap(self.path, dtype=np.uint8, mode="r").view(np.ndarray)
            header = fmt.Header.unpack(self.data[: fmt.HEADER_SIZE].tobytes(), file_size)
            self.schema: dict[str, Any] = self._read_schema(header)
            self.index: np.ndarray = self._read_index(header)
        except DatasetFormatError as exc:
            raise DatasetFormatError(f"{self.path}: {exc}") from None
        self.offsets = np.ascontiguousarray(self.index["offset"], dtype=np.int64)
        self.sizes = np.ascontiguousarray(self.index["size"], dtype=np.int64)
        self.heights = np.ascontiguousarray(self.index["height"], dtype=np.int64)
        self.widths = np.ascontiguousarray(self.index["width"], dtype=np.int64)
        self.storage = np.ascontiguousarray(self.index["storage"], dtype=np.uint8)
        self.labels = np.ascontiguousarray(self.index["label"], dtype=np.int64)
        for array in (self.offsets, self.sizes, self.heights, self.widths, self.storage, self.labels):
            array.flags.writeable = False
        self._check_index(header)

    def _read_schema(self, header: fmt.Header) -> dict[str, Any]:
        raw = self.data[header.schema_offset: header.schema_offset + header.schema_size]
        if fmt.checksum(raw) != header.schema_crc:
            raise DatasetFormatError("schema checksum mismatch")
        schema = fmt.decode_schema(raw)
        if schema.get("num_samples") != header.num_samples:
            raise DatasetFormatError(f"schema says {schema.get('num_samples')!r} samples, header {header.num_samples}")
        return schema

    def _read_index(self, header: fmt.Header) -> np.ndarray:
        dtype = fmt.index_dtype(self.schema["extra_fields"])
        if header.index_size != header.num_samples * dtype.itemsize:
            raise DatasetFormatError(f"index size {header.index_size} != {header.num_samples} samples x "
                                     f"{dtype.itemsize} bytes")
        raw = self.data[header.index_offset: header.index_offset + header.index_size]
        if fmt.checksum(raw) != header.index_crc:
            raise DatasetFormatError("index checksum mismatch")
        # one sequential copy into memory (a memcpy): column extraction from it is much faster than from the map
        index = np.array(raw).view(dtype)
        index.flags.writeable = False
        return index

    def _check_index(self, header: fmt.Header) -> None:
        """Vectorised sanity checks so that no index value can make a read go outside the data region."""
        lo, hi = header.data_offset, header.data_offset + header.data_size
        offsets, sizes, heights, widths = self.offsets, self.sizes, self.heights, self.widths
        # u8 values >= 2**63 became negative int64: the "< lo" and "<= 0" tests catch them, no overflow below
        problems = {
            "payload outside the data region": (offsets < lo) | (sizes <= 0) | (sizes > hi - lo)
            | (offsets > hi - sizes),
            f"height/width not in 1..{fmt.MAX_SIDE}": (heights < 1) | (widths < 1) | (heights > fmt.MAX_SIDE)
            | (widths > fmt.MAX_SIDE),
            "unknown storage kind": self.storage > max(fmt.STORAGE_NAMES),
            "raw payload size != height*width*3": (self.storage == fmt.STORAGE_RAW) & (sizes != heights * widths * 3),
        }
        for what, bad in problems.items():
            if bad.any():
                raise DatasetFormatError(f"{self.path}: sample {int(np.argmax(bad))}: {what}")

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"DatasetReader({self.path!r}, {len(self)} samples)"

    def _sample(self, i: Any) -> int:
        n = len(self)
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"sample index must be an integer, got {i!r}") from None
        if not -n <= i < n:
            raise IndexError(f"sample index {i} out of range for {n} samples")
        return i % n

    def encoded(self, i: int) -> bytes:
        """The stored payload of sample i (JPEG bytes, or raw H*W*3 pixels)."""
        i = self._sample(i)
        start = self.offsets[i]
        return self.data[start: start + self.sizes[i]].tobytes()

    def image(self, i: int) -> np.ndarray:
        """Sample i decoded to a new H x W x 3 uint8 RGB array; CorruptSampleError if it cannot be."""
        i = self._sample(i)
        start, height, width = self.offsets[i], int(self.heights[i]), int(self.widths[i])
        payload = self.data[start: start + self.sizes[i]]
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
