"""Fuzz the reader: flipped bytes, truncations, mangled headers/index/schema (with valid checksums, so the
deeper checks are reached). Only DatasetFormatError / CorruptSampleError / ValueError may come out, on open
or on image(i)/encoded(i); a segfault or hang would fail the run."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from fastssl_loader import CorruptSampleError, DatasetFormatError, DatasetReader, format as fmt, write_dataset

ITERATIONS = 200  # per mutation kind


@pytest.fixture(scope="module")
def small_file(tmp_path_factory, make_image) -> bytes:
    samples = [(make_image(h, w, seed=h), h % 3, {"score": float(h)}) for h, w in
               [(8, 8), (70, 90), (16, 12), (90, 70), (5, 40)]]
    path = tmp_path_factory.mktemp("fuzz") / "small.fssl"
    write_dataset(path, samples, mode="auto", num_workers=0, progress=False, extra_fields={"score": "float32"})
    return path.read_bytes()


def _regions(data: bytes) -> fmt.Header:
    return fmt.Header.unpack(data[: fmt.HEADER_SIZE], len(data))


def _with_header(data: bytearray, **changes: int) -> bytearray:
    fields = dict(vars(_regions(bytes(data))), **changes)
    data[: fmt.HEADER_SIZE] = fmt.Header(**fields).pack()
    return data


def _flip(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for pos in rng.integers(0, len(out), rng.integers(1, 9)):
        out[pos] ^= int(rng.integers(1, 256))
    return bytes(out)


def _truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, len(data)))]


def _mangle_header(data: bytes, rng: np.random.Generator) -> bytes:
    header = _regions(data)
    name = rng.choice(["num_samples", "data_offset", "data_size", "schema_offset", "schema_size",
                       "index_offset", "index_size"])
    value = int(rng.choice([0, 1, getattr(header, name) + int(rng.integers(-64, 65)), len(data),
                            int(rng.integers(0, len(data) * 2)), 2**63 - 1, 2**64 - 1]))
    return bytes(_with_header(bytearray(data), **{name: max(0, min(value, 2**64 - 1))}))


def _mangle_region(region: str) -> Callable[[bytes, np.random.Generator], bytes]:
    """Flip bytes inside the index or schema and fix that region's checksum."""
    def mangle(data: bytes, rng: np.random.Generator) -> bytes:
        header = _regions(data)
        start, size = getattr(header, f"{region}_offset"), getattr(header, f"{region}_size")
        out = bytearray(data)
        for pos in start + rng.integers(0, size, rng.integers(1, 5)):
            out[pos] = int(rng.integers(0, 256))
        crc = fmt.checksum(bytes(out[start: start + size]))
        return bytes(_with_header(out, **{f"{region}_crc": crc}))
    mangle.__name__ = f"_mangle_{region}"
    return mangle


def _mangle_data(data: bytes, rng: np.random.Generator) -> bytes:
    header = _regions(data)
    out = bytearray(data)
    for pos in header.data_offset + rng.integers(0, header.data_size, rng.integers(1, 33)):
        out[pos] = int(rng.integers(0, 256))
    return bytes(out)


def _exercise(path: Path) -> str:
    """Open and read everything; return which clean error (if any) came out."""
    try:
        r = DatasetReader(path)
    except DatasetFormatError:
        return "format"
    outcome = "ok"
    for i in range(len(r)):
        r.encoded(i)
        try:
            image = r.image(i)
            assert image.shape == (r.heights[i], r.widths[i], 3)
        except CorruptSampleError as exc:
            assert exc.index == i
            outcome = "sample"
    return outcome


@pytest.mark.parametrize("mutate", [_flip, _truncate, _mangle_header, _mangle_region("index"),
                                    _mangle_region("schema"), _mangle_data],
                         ids=["flip", "truncate", "header", "index", "schema", "data"])
def test_fuzz_only_clean_errors(tmp_path, small_file, mutate):
    rng = np.random.default_rng(sum(map(ord, mutate.__name__)))  # fixed per kind: failures reproduce
    path = tmp_path / "f.fssl"
    outcomes: dict[str, int] = {}
    start = time.perf_counter()
    for _ in range(ITERATIONS):
        path.write_bytes(mutate(small_file, rng))
        try:
            outcome = _exercise(path)
        except ValueError:  # any other clean ValueError-style rejection is acceptable
            outcome = "value"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(mutate.__name__, outcomes)
    assert time.perf_counter() - start < 60
    assert sum(outcomes.values()) == ITERATIONS
    if mutate in (_truncate, _mangle_header):
        assert outcomes.get("ok", 0) < ITERATIONS  # the mutations are really noticed


def test_random_garbage_files(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "g.fssl"
    for _ in range(100):
        body = rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8).tobytes()
        path.write_bytes(fmt.MAGIC + body if rng.random() < 0.5 else body)
        with pytest.raises(DatasetFormatError):
            DatasetReader(path)
