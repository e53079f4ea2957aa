"""What is on disk: header struct, magic, version, index dtype, storage codes, checksums. No policy.

File layout (all integers little-endian)::

    header  (HEADER_SIZE bytes, fixed)   magic, version, sample count, (offset, size) of data/schema/index,
                                          crc32 of schema and index, crc32 of the header itself
    data    sample payloads, back to back (raw: H x W x 3 uint8 C-order; jpeg: the JPEG bytes)
    schema  UTF-8 JSON: fields, extra per-sample fields, writer settings, description
    index   one numpy structured array (``index_dtype``), one row per sample

The data region comes first so the writer can stream payloads and write the schema and index at the end.
Every sample is reached with one offset lookup; no page size limits a sample.
"""
from __future__ import annotations

import json
import operator
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import DatasetFormatError

MAGIC = b"FASTSSL\x00"
VERSION = 1
STORAGE_RAW = 0
STORAGE_JPEG = 1
STORAGE_NAMES = {STORAGE_RAW: "raw", STORAGE_JPEG: "jpeg"}
MAX_SIDE = 65535  # heights/widths are stored as u4 but larger sides are rejected as nonsense
# Largest image (height * width) a file may hold; the writer refuses larger sources from their header (decompression
# bombs) and records its limit in the schema (``image.max_pixels``), the reader rejects index rows above it. The
# default is Pillow's error threshold (2 * Image.MAX_IMAGE_PIXELS); files written without the key get it too.
DEFAULT_MAX_PIXELS = 178_956_970
MAX_PIXELS_LIMIT = MAX_SIDE * MAX_SIDE

# magic, version, header size, num_samples, data off/size, schema off/size, index off/size, schema crc, index crc
_HEADER_BODY = struct.Struct("<8sIIQQQQQQQII")
_HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = 128  # body + crc, zero padded: room for later versions without moving the data
assert _HEADER_BODY.size + _HEADER_CRC.size <= HEADER_SIZE

BASE_FIELDS: tuple[tuple[str, str], ...] = (
    ("offset", "<u8"),
    ("size", "<u8"),
    ("height", "<u4"),
    ("width", "<u4"),
    ("storage", "u1"),
    ("label", "<i8"),
)
# dtypes an extra per-sample field may use (explicit little-endian so files are portable)
EXTRA_DTYPES = ("|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8")
MAX_EXTRA_ELEMENTS = 4096  # elements of one extra field per sample
MAX_EXTRA_FIELDS = 64
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Header:
    """The fixed-size header: where each region is and the checksums that guard the metadata."""

    num_samples: int
    data_offset: int
    data_size: int
    schema_offset: int
    schema_size: int
    index_offset: int
    index_size: int
    schema_crc: int
    index_crc: int
    version: int = VERSION

    def pack(self) -> bytes:
        body = _HEADER_BODY.pack(
            MAGIC, self.version, HEADER_SIZE, self.num_samples, self.data_offset, self.data_size,
            self.schema_offset, self.schema_size, self.index_offset, self.index_size,
            self.schema_crc, self.index_crc,
        )
        crc = _HEADER_CRC.pack(checksum(body))
        return (body + crc).ljust(HEADER_SIZE, b"\x00")

    @classmethod
    def unpack(cls, raw: bytes, file_size: int) -> "Header":
        """Parse and validate a header against the file size; raise DatasetFormatError naming the problem."""
        if len(raw) < HEADER_SIZE:
            raise DatasetFormatError(f"file too short for a header ({len(raw)} < {HEADER_SIZE} bytes)")
        body = raw[: _HEADER_BODY.size]
        (magic, version, header_size, n, d_off, d_size, s_off, s_size, i_off, i_size, s_crc, i_crc) = (
            _HEADER_BODY.unpack(body)
        )
        if magic != MAGIC:
            raise DatasetFormatError(f"bad magic {magic!r}: not a fastssl_loader dataset")
        if version != VERSION:
            raise DatasetFormatError(f"unsupported format version {version} (this reader reads {VERSION})")
        (crc,) = _HEADER_CRC.unpack_from(raw, _HEADER_BODY.size)
        if crc != checksum(body):
            raise DatasetFormatError("header checksum mismatch")
        if header_size != HEADER_SIZE:
            raise DatasetFormatError(f"bad header size {header_size}")
        for name, off, size in (("data", d_off, d_size), ("schema", s_off, s_size), ("index", i_off, i_size)):
            if off < HEADER_SIZE or off + size > file_size:
                raise DatasetFormatError(
                    f"{name} region [{off}, {off + size}) lies outside the file ({file_size} bytes)"
                )
        return cls(n, d_off, d_size, s_off, s_size, i_off, i_size, s_crc, i_crc, version)


def checksum(data: Any) -> int:
    """crc32 of a bytes-like object (header, schema, index). Fast: ~1 GB/s, so opening stays cheap."""
    return zlib.crc32(data) & 0xFFFFFFFF


def normalize_extra_fields(extra_fields: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Turn ``{name: dtype}`` or ``{name: (dtype, shape)}`` into schema entries; raise ValueError if invalid."""
    if extra_fields is None:
        return []
    if not isinstance(extra_fields, Mapping):
        raise ValueError(f"extra_fields must be a mapping name -> dtype or (dtype, shape), got {extra_fields!r}")
    if len(extra_fields) > MAX_EXTRA_FIELDS:
        raise ValueError(f"at most {MAX_EXTRA_FIELDS} extra fields, got {len(extra_fields)}")
    out = []
    for name, spec in extra_fields.items():
        dtype, shape = spec if isinstance(spec, tuple) else (spec, ())
        try:
            shape = [operator.index(s) for s in (shape if isinstance(shape, (tuple, list)) else [shape])]
            dt = np.dtype(dtype).newbyteorder("<")
        except TypeError as exc:
            raise ValueError(f"extra field {name!r}: bad dtype {dtype!r} or shape {shape!r}") from exc
        out.append({"name": name, "dtype": dt.str, "shape": shape})
    validate_extra_fields(out)
    return out


def validate_extra_fields(entries: Any) -> None:
    """Check schema entries for extra fields (names, dtypes, shapes); raise ValueError naming the bad one."""
    if not isinstance(entries, list) or len(entries) > MAX_EXTRA_FIELDS:
        raise ValueError(f"extra_fields must be a list of at most {MAX_EXTRA_FIELDS} entries")
    seen = {name for name, _ in BASE_FIELDS}
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise ValueError(f"bad extra field entry {entry!r}")
        name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
        if not isinstance(name, str) or not _NAME.match(name) or name in seen:
            raise ValueError(f"bad or duplicate extra field name {name!r}")
        seen.add(name)
        if dtype not in EXTRA_DTYPES:
            raise ValueError(f"extra field {name!r}: dtype {dtype!r} not in {EXTRA_DTYPES}")
        if not isinstance(shape, list) or len(shape) > 4 or not all(
            isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_EXTRA_ELEMENTS for s in shape
        ):
            raise ValueError(f"extra field {name!r}: bad shape {shape!r}")
        if int(np.prod(shape)) > MAX_EXTRA_ELEMENTS:
            raise ValueError(f"extra field {name!r}: more than {MAX_EXTRA_ELEMENTS} elements per sample")


def index_dtype(extra_fields: Sequence[Mapping[str, Any]] = ()) -> np.dtype:
    """The packed little-endian structured dtype of one index row: base fields then extra fields."""
    fields = [(name, dt) for name, dt in BASE_FIELDS]
    fields += [(e["name"], e["dtype"], tuple(e["shape"])) if e["shape"] else (e["name"], e["dtype"])
               for e in extra_fields]
    return np.dtype(fields)


def encode_schema(schema: Mapping[str, Any]) -> bytes:
    """Deterministic JSON bytes (sorted keys) so equal inputs give byte-identical files."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_schema(raw: bytes) -> dict[str, Any]:
    """Parse the schema JSON and check the keys the reader relies on; raise DatasetFormatError if bad."""
    try:
        schema = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DatasetFormatError(f"schema is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise DatasetFormatError("schema is not a JSON object")
    try:
        validate_extra_fields(schema.get("extra_fields"))
    except ValueError as exc:
        raise DatasetFormatError(f"bad schema: {exc}") from None
    return schema
