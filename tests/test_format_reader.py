"""format.py + reader.py: the reader contract, pickling, threads, and rejection of every bad-file kind."""
from __future__ import annotations

import pickle
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from fastssl_loader import CorruptSampleError, DatasetFormatError, DatasetReader, format as fmt


def header_of(data: bytes) -> fmt.Header:
    return fmt.Header.unpack(data[: fmt.HEADER_SIZE], len(data))


def rewrite(src: Path, dst: Path, edit_index: Callable[[np.ndarray], None] | None = None,
            edit_header: dict | None = None) -> Path:
    """Copy src to dst, edit its index rows and/or header fields, and fix the checksums (a 'valid' lie)."""
    data = bytearray(src.read_bytes())
    header = header_of(bytes(data))
    schema = fmt.decode_schema(data[header.schema_offset: header.schema_offset + header.schema_size])
    index = np.frombuffer(bytes(data[header.index_offset: header.index_offset + header.index_size]),
                          dtype=fmt.index_dtype(schema["extra_fields"])).copy()
    if edit_index:
        edit_index(index)
    data[header.index_offset: header.index_offset + header.index_size] = index.tobytes()
    fields = dict(vars(header), index_crc=fmt.checksum(index.tobytes()))
    fields.update(edit_header or {})
    data[: fmt.HEADER_SIZE] = fmt.Header(**fields).pack()
    dst.write_bytes(bytes(data))
    return dst


def test_contract_arrays(auto_dataset, image_samples):
    r = DatasetReader(auto_dataset)
    n = len(image_samples)
    assert len(r) == n and r.path == str(auto_dataset)
    assert r.data.dtype == np.uint8 and r.data.ndim == 1 and r.data.size == auto_dataset.stat().st_size
    assert not r.data.flags.writeable
    for name in ("offsets", "sizes", "heights", "widths", "labels"):
        array = getattr(r, name)
        assert array.dtype == np.int64 and array.shape == (n,) and array.flags.c_contiguous, name
    assert r.storage.dtype == np.uint8 and r.storage.shape == (n,)
    np.testing.assert_array_equal(r.heights, [rgb.shape[0] for rgb, _ in image_samples])
    np.testing.assert_array_equal(r.widths, [rgb.shape[1] for rgb, _ in image_samples])
    for i in range(n):  # the loader's access path: r.data[offset : offset + size]
        assert bytes(r.data[r.offsets[i]: r.offsets[i] + r.sizes[i]]) == r.encoded(i)
        if r.storage[i] == fmt.STORAGE_RAW:
            view = r.data[r.offsets[i]: r.offsets[i] + r.sizes[i]].reshape(r.heights[i], r.widths[i], 3)
            np.testing.assert_array_equal(view, image_samples[i][0])


def test_schema_records_settings(auto_dataset):
    schema = DatasetReader(auto_dataset).schema
    assert schema["image"]["mode"] == "auto" and schema["image"]["jpeg_quality"] == 90
    assert schema["image"]["max_resolution"] is None and schema["num_samples"] == 24
    assert schema["extra_fields"] == []


def test_indexing(raw_dataset, image_samples):
    r = DatasetReader(raw_dataset)
    np.testing.assert_array_equal(r.image(-1), image_samples[-1][0])
    np.testing.assert_array_equal(r.image(np.int64(3)), image_samples[3][0])
    with pytest.raises(IndexError):
        r.image(len(r))
    with pytest.raises(IndexError):
        r.encoded(-len(r) - 1)
    with pytest.raises(TypeError):
        r.image("0")
    with pytest.raises(KeyError, match="no field 'nope'"):
        r.field("nope")
    np.testing.assert_array_equal(r.field("label"), r.labels)


def test_image_is_a_writable_copy(raw_dataset):
    r = DatasetReader(raw_dataset)
    img = r.image(0)
    img[:] = 0
    assert r.image(0).any()


def test_pickle_reopens(jpeg_dataset):
    r = DatasetReader(jpeg_dataset)
    clone = pickle.loads(pickle.dumps(r))
    assert len(pickle.dumps(r)) < 500  # the map is not pickled, only the path
    np.testing.assert_array_equal(clone.image(5), r.image(5))
    np.testing.assert_array_equal(clone.labels, r.labels)


def test_threads_share_a_reader(auto_dataset):
    r = DatasetReader(auto_dataset)
    expected = [r.image(i) for i in range(len(r))]
    order = np.random.default_rng(0).permutation(np.tile(np.arange(len(r)), 8))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(r.image, order))
    for i, img in zip(order, results):
        np.testing.assert_array_equal(img, expected[i])


def _vm_flags(address: int) -> list[str]:
    """VmFlags of this process's mapping that holds ``address`` (Linux /proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line: "start-end perms offset dev inode path"
            start, end = (int(x, 16) for x in fields[0].split("-"))
            inside = start <= address < end
        elif fields[0] == "VmFlags:" and inside:
            return fields[1:]
    raise AssertionError(f"no mapping holds address {address:#x}")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_map_reads_no_more_than_asked_and_prefetch_leaves_the_data(jpeg_dataset):
    """The map is advised random access (no read-around per page fault: the loader prefetches each batch's
    samples instead); prefetch takes any ids, in any order, and changes no byte."""
    r = DatasetReader(jpeg_dataset)
    assert "rr" in _vm_flags(r.data.ctypes.data)  # VM_RAND_READ, set by madvise(MADV_RANDOM) on this reader's map
    before = [r.encoded(i) for i in range(len(r))]
    r.prefetch(np.array([len(r) - 1, 0, 5, 5], dtype=np.int64))
    r.prefetch(np.array([], dtype=np.int64))
    assert [r.encoded(i) for i in range(len(r))] == before


def test_header_round_trip():
    header = fmt.Header(3, 128, 10, 138, 5, 143, 141, 7, 9)
    raw = header.pack()
    assert len(raw) == fmt.HEADER_SIZE and raw.startswith(fmt.MAGIC)
    assert fmt.Header.unpack(raw, 10_000) == header


@pytest.mark.parametrize("content, match", [
    (b"", "too short"), (b"FASTSSL\x00" + b"\x00" * 20, "too short"), (b"x" * 4096, "bad magic"),
])
def test_foreign_or_short_files(tmp_path, content, match):
    path = tmp_path / "f.fssl"
    path.write_bytes(content)
    with pytest.raises(DatasetFormatError, match=match) as info:
        DatasetReader(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetFormatError, match="cannot open"):
        DatasetReader(tmp_path / "missing.fssl")


def test_unsupported_version(tmp_path, raw_dataset):
    with pytest.raises(DatasetFormatError, match="unsupported format version 2"):
        DatasetReader(rewrite(raw_dataset, tmp_path / "v.fssl", edit_header={"version": 2}))


def test_header_checksum(tmp_path, raw_dataset):
    data = bytearray(raw_dataset.read_bytes())
    data[20] ^= 1  # inside num_samples
    (tmp_path / "h.fssl").write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match="header checksum"):
        DatasetReader(tmp_path / "h.fssl")


@pytest.mark.parametrize("region, match", [("index", "index checksum"), ("schema", "schema checksum")])
def test_metadata_checksums(tmp_path, raw_dataset, region, match):
    data = bytearray(raw_dataset.read_bytes())
    header = header_of(bytes(data))
    data[getattr(header, f"{region}_offset") + 3] ^= 0x10
    (tmp_path / "c.fssl").write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match=match):
        DatasetReader(tmp_path / "c.fssl")


def test_truncated_file(tmp_path, raw_dataset):
    data = raw_dataset.read_bytes()
    (tmp_path / "t.fssl").write_bytes(data[: len(data) - 10])
    with pytest.raises(DatasetFormatError, match="outside the file"):
        DatasetReader(tmp_path / "t.fssl")


def _set(field: str, value: int, row: int = 2) -> Callable[[np.ndarray], None]:
    def edit(index: np.ndarray) -> None:
        index[field][row] = value
    return edit


@pytest.mark.parametrize("edit, match", [
    (_set("offset", 10**12), "payload outside the data region"),
    (_set("offset", 3), "payload outside the data region"),
    (_set("size", 10**9), "payload outside the data region"),
    (_set("height", 0), "height/width"),
    (_set("width", 70000), "height/width"),
    (_set("storage", 7), "unknown storage"),
    (_set("height", 9), "raw payload size"),
])
def test_index_lies_are_caught(tmp_path, raw_dataset, edit, match):
    with pytest.raises(DatasetFormatError, match=f"sample 2: {match}"):
        DatasetReader(rewrite(raw_dataset, tmp_path / "i.fssl", edit_index=edit))


def test_region_offsets_beyond_end(tmp_path, raw_dataset):
    size = raw_dataset.stat().st_size
    with pytest.raises(DatasetFormatError, match="index region .* outside the file"):
        DatasetReader(rewrite(raw_dataset, tmp_path / "o.fssl", edit_header={"index_offset": size}))
    with pytest.raises(DatasetFormatError, match="schema says 24 samples"):
        DatasetReader(rewrite(raw_dataset, tmp_path / "n.fssl", edit_header={"num_samples": 10**15}))


def test_corrupt_jpeg_payload_names_sample(tmp_path, jpeg_dataset):
    path = shutil.copy(jpeg_dataset, tmp_path / "j.fssl")
    r = DatasetReader(path)
    start, size = int(r.offsets[4]), int(r.sizes[4])
    data = bytearray(Path(path).read_bytes())
    data[start: start + size] = b"\x00" * size
    data[int(r.offsets[6]) + size // 2: int(r.offsets[6]) + r.sizes[6]] = b"\x00" * (int(r.sizes[6]) - size // 2)
    Path(path).write_bytes(bytes(data))
    r = DatasetReader(path)  # payloads are not checksummed: found at decode time
    for i in (4, 6):
        with pytest.raises(CorruptSampleError, match=f"sample {i}") as info:
            r.image(i)
        assert info.value.index == i
    r.image(5)


def test_jpeg_header_dims_must_match_index(tmp_path, jpeg_dataset):
    def edit(index: np.ndarray) -> None:
        index["height"][1] = index["height"][1] + 1
    r = DatasetReader(rewrite(jpeg_dataset, tmp_path / "d.fssl", edit_index=edit))
    with pytest.raises(CorruptSampleError, match="sample 1.*index says"):
        r.image(1)


def test_schema_must_be_json_object(tmp_path, raw_dataset):
    data = bytearray(raw_dataset.read_bytes())
    header = header_of(bytes(data))
    bad = b"[1, 2]".ljust(header.schema_size)
    data[header.schema_offset: header.schema_offset + header.schema_size] = bad
    fields = dict(vars(header), schema_crc=fmt.checksum(bad))
    data[: fmt.HEADER_SIZE] = fmt.Header(**fields).pack()
    (tmp_path / "s.fssl").write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match="not a JSON object"):
        DatasetReader(tmp_path / "s.fssl")


def test_header_layout_is_little_endian(raw_dataset):
    raw = raw_dataset.read_bytes()
    magic, version, header_size, n = struct.unpack_from("<8sIIQ", raw)
    assert (magic, version, header_size, n) == (fmt.MAGIC, fmt.VERSION, fmt.HEADER_SIZE, 24)
