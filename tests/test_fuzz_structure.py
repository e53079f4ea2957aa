"""Structure-aware fuzz of crafted dataset files: index rows (offsets, sizes, heights, widths, storage codes,
labels) and the schema are mutated, checksums and header recomputed, so every mutation reaches the deep
checks. The reader and the Loader (all views, dct_scale on and off) may only raise DatasetFormatError (on open)
or CorruptSampleError (naming the sample); no crash, no hang (faulthandler ends a stuck run), no image larger
than the file's max_pixels."""
from __future__ import annotations

import faulthandler
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from fastssl_loader import (CorruptSampleError, DatasetFormatError, DatasetReader, Loader, format as fmt, presets,
                            write_dataset)

from .conftest import natural_image

CASES = 2400
LOADER_EVERY = 3  # the Loader runs on every third case that opens (it costs more than the reader)
BASE_MAX_PIXELS = 96 * 96
U64 = 2**64 - 1


class Crafted:
    """A dataset file taken apart (data, schema dict, index array) and put back with valid checksums."""

    def __init__(self, blob: bytes) -> None:
        header = fmt.Header.unpack(blob[: fmt.HEADER_SIZE], len(blob))
        self.data = blob[header.data_offset: header.data_offset + header.data_size]
        self.schema = json.loads(blob[header.schema_offset: header.schema_offset + header.schema_size])
        dtype = fmt.index_dtype(self.schema["extra_fields"])
        self.index = np.frombuffer(blob, dtype, header.num_samples, header.index_offset).copy()
        self.num_samples = header.num_samples

    def pack(self, index_bytes: bytes | None = None) -> bytes:
        schema = json.dumps(self.schema).encode()
        index = self.index.tobytes() if index_bytes is None else index_bytes
        data_offset = fmt.HEADER_SIZE
        schema_offset = data_offset + len(self.data)
        header = fmt.Header(self.num_samples, data_offset, len(self.data), schema_offset, len(schema),
                            schema_offset + len(schema), len(index), fmt.checksum(schema), fmt.checksum(index))
        return header.pack() + self.data + schema + index


@pytest.fixture(scope="module")
def base_blob(tmp_path_factory) -> bytes:
    sizes = [(8, 8), (70, 90), (16, 12), (90, 70), (5, 40), (64, 64), (40, 96)]
    samples = [(natural_image(h, w, seed=h * w), h % 3, {"score": float(h)}) for h, w in sizes]
    path = tmp_path_factory.mktemp("fuzz_structure") / "base.fssl"
    write_dataset(path, samples, mode="auto", num_workers=0, progress=False, extra_fields={"score": "float32"},
                  max_pixels=BASE_MAX_PIXELS)
    reader = DatasetReader(path)
    assert set(reader.storage) == {fmt.STORAGE_RAW, fmt.STORAGE_JPEG}
    return path.read_bytes()


def _pick(rng: np.random.Generator, values: list[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def _index_value(rng: np.random.Generator, c: Crafted, field: str, row: int) -> int:
    """An interesting value for ``field``: boundaries, another row's value, small shifts, extremes."""
    data_end = fmt.HEADER_SIZE + len(c.data)
    other = int(c.index[field][int(rng.integers(c.num_samples))])
    current = int(c.index[field][row])
    common = [0, 1, other, current + int(rng.integers(-3, 4)), current * 2, current // 2]
    by_field = {
        "offset": [fmt.HEADER_SIZE - 1, fmt.HEADER_SIZE, data_end, data_end - int(c.index["size"][row]),
                   int(rng.integers(fmt.HEADER_SIZE, data_end)), 2**63, U64],
        "size": [len(c.data), len(c.data) + 1, data_end, 2**63, U64, int(rng.integers(1, len(c.data)))],
        "height": [2**32 - 1, fmt.MAX_SIDE, fmt.MAX_SIDE + 1, BASE_MAX_PIXELS // max(1, int(c.index["width"][row])) + 1,
                   int(rng.integers(1, 200))],
        "width": [2**32 - 1, fmt.MAX_SIDE, fmt.MAX_SIDE + 1, BASE_MAX_PIXELS // max(1, int(c.index["height"][row])) + 1,
                  int(rng.integers(1, 200))],
        "storage": [fmt.STORAGE_RAW, fmt.STORAGE_JPEG, 2, 255],
        "label": [-1, 2**63 - 1, -(2**63), int(rng.integers(-1000, 1000))],
    }[field]
    bits = c.index.dtype[field].itemsize * 8
    value = _pick(rng, common + by_field)
    return value % 2**bits if c.index.dtype[field].kind == "u" else (value + 2**(bits - 1)) % 2**bits - 2**(bits - 1)


def mutate_index(rng: np.random.Generator, c: Crafted) -> bytes:
    for _ in range(int(rng.integers(1, 4))):
        row = int(rng.integers(c.num_samples))
        field = _pick(rng, ["offset", "size", "height", "width", "storage", "label"])
        c.index[field][row] = _index_value(rng, c, field, row)
    if rng.random() < 0.2:  # a raw sample that stays consistent after a resize: reaches the pixel kernels
        row = int(rng.integers(c.num_samples))
        c.index["storage"][row] = fmt.STORAGE_RAW
        c.index["size"][row] = int(c.index["height"][row]) * int(c.index["width"][row]) * 3
    return c.pack()


def mutate_schema(rng: np.random.Generator, c: Crafted) -> bytes:
    kind = int(rng.integers(6))
    if kind == 0:
        c.schema["image"]["max_pixels"] = _pick(rng, [0, -1, 1, 100, BASE_MAX_PIXELS // 2, BASE_MAX_PIXELS * 4,
                                                      fmt.MAX_PIXELS_LIMIT + 1, "many", True, None, 1.5, [1]])
    elif kind == 1:
        c.schema["image"].pop("max_pixels")  # a file from before max_pixels: the default applies
    elif kind == 2:
        c.schema["image"] = _pick(rng, [None, [], "jpeg", 3])
    elif kind == 3:
        c.schema["num_samples"] = _pick(rng, [c.num_samples + 1, c.num_samples - 1, 0, None, "7"])
    elif kind == 4:  # the index layout changes with the extra fields: its size no longer matches
        c.schema["extra_fields"] = _pick(rng, [[], [{"name": "score", "dtype": "<f8", "shape": []}],
                                               [{"name": "score", "dtype": "<f4", "shape": [2]}], None, {}])
    else:
        del c.schema[_pick(rng, ["extra_fields", "image", "num_samples"])]
    return c.pack()


def mutate_both(rng: np.random.Generator, c: Crafted) -> bytes:
    if rng.random() < 0.5:
        c.schema["image"]["max_pixels"] = _pick(rng, [BASE_MAX_PIXELS // 4, BASE_MAX_PIXELS * 4])
    return mutate_index(rng, c)


MUTATIONS: list[Callable[[np.random.Generator, Crafted], bytes]] = [mutate_index, mutate_schema, mutate_both]
VIEWS = presets.simclr(16) + [presets.eval_view(8)]  # two augmented views and a centre crop of another size


def read_all(path: Path) -> DatasetReader | None:
    """Open and decode every sample; only clean errors may come out. None when the file is refused."""
    try:
        reader = DatasetReader(path)
    except DatasetFormatError:
        return None
    assert np.all(reader.heights * reader.widths <= reader.max_pixels)
    for i in range(len(reader)):
        assert len(reader.encoded(i)) == reader.sizes[i]
        try:
            image = reader.image(i)
        except CorruptSampleError as exc:
            assert exc.index == i
            continue
        assert image.shape == (reader.heights[i], reader.widths[i], 3)
    return reader


def load_all(reader: DatasetReader, dct_scale: bool) -> str:
    """One loader epoch over every sample; CorruptSampleError must name a sample of the file."""
    loader = Loader(reader, batch_size=4, views=VIEWS, num_workers=1, order="sequential", drop_last=False,
                    device="cpu", dtype=torch.uint8, dct_scale=dct_scale)
    try:
        seen = 0
        for views, labels in loader:
            assert [tuple(v.shape[1:]) for v in views] == [(3, 16, 16), (3, 16, 16), (3, 8, 8)]
            seen += len(labels)
        assert seen == len(reader)
        return "ok"
    except CorruptSampleError as exc:
        assert 0 <= exc.index < len(reader)
        return "sample"
    finally:
        loader.close()


def test_crafted_files_give_only_clean_errors(tmp_path, base_blob):
    rng = np.random.default_rng(2024)
    path = tmp_path / "crafted.fssl"
    outcomes: dict[str, int] = {}
    opened = 0
    faulthandler.dump_traceback_later(600, exit=True)  # a hang ends the run with every thread's stack
    try:
        for case in range(CASES):
            mutate = MUTATIONS[case % len(MUTATIONS)]
            path.write_bytes(mutate(rng, Crafted(base_blob)))
            reader = read_all(path)
            outcome = f"{mutate.__name__}:{'refused' if reader is None else 'opened'}"
            if reader is not None:
                opened += 1
                if opened % LOADER_EVERY == 0:
                    outcome += ":loader " + load_all(reader, dct_scale=bool(opened // LOADER_EVERY % 2))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    print(outcomes)
    assert sum(outcomes.values()) == CASES
    for mutate in MUTATIONS:  # every kind both reaches the deep checks and gets past them
        assert outcomes.get(f"{mutate.__name__}:refused", 0) > 0
        assert sum(n for key, n in outcomes.items() if key.startswith(f"{mutate.__name__}:opened")) > 0
    assert sum(n for key, n in outcomes.items() if key.endswith("loader sample")) > 0
    assert sum(n for key, n in outcomes.items() if key.endswith("loader ok")) > 0


def test_unmutated_round_trip_and_old_files_default_max_pixels(tmp_path, base_blob):
    path = tmp_path / "same.fssl"
    path.write_bytes(Crafted(base_blob).pack())
    assert read_all(path).max_pixels == BASE_MAX_PIXELS
    old = Crafted(base_blob)
    del old.schema["image"]["max_pixels"]
    path.write_bytes(old.pack())
    assert DatasetReader(path).max_pixels == fmt.DEFAULT_MAX_PIXELS


@pytest.mark.parametrize("field, value, match", [
    ("height", BASE_MAX_PIXELS // 8 + 1, "height\\*width > the file's max_pixels"),
    ("storage", 2, "unknown storage kind"),
    ("offset", U64, "payload outside the data region"),
    ("size", 2**63, "payload outside the data region"),
])
def test_index_checks_name_the_row(tmp_path, base_blob, field, value, match):
    crafted = Crafted(base_blob)
    row = int(np.flatnonzero(crafted.index["width"] == 8)[0])
    crafted.index[field][row] = value
    if field == "height":
        crafted.index["storage"][row] = fmt.STORAGE_JPEG
    path = tmp_path / "bad.fssl"
    path.write_bytes(crafted.pack())
    with pytest.raises(DatasetFormatError, match=f"sample {row}: {match}"):
        DatasetReader(path)
