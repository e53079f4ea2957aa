"""BatchBuilder: the loader's batches come from it unchanged, it needs no threads, and a JPEG whose header
disagrees with the index is rejected before it is decoded."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from fastssl_loader import DatasetReader, Loader, jpeg, write_dataset
from fastssl_loader.builder import BatchBuilder
from fastssl_loader.errors import CorruptSampleError
from fastssl_loader.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
from tests.conftest import natural_image, write_mixed_dataset

# the same views as tests/test_loader.py, so a full test run compiles them once
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
BIG = [RandomResizedCrop(32), RandomHorizontalFlip(), Normalize(MEAN, STD)]
SMALL = [RandomResizedCrop(16, scale=(0.05, 0.4)), RandomHorizontalFlip()]
N = 20


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    """JPEG and raw samples (mode auto) of varied sizes."""
    return write_mixed_dataset(str(tmp_path_factory.mktemp("builder") / "data.fssl"), N, seed=3, small_every=4,
                               classes=3)


def _outs(builder: BatchBuilder, n: int, dtype) -> list[np.ndarray]:
    return [np.empty(n * 3 * h * w, dtype) for h, w in (p.max_output_size for p in builder.plans)]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_loader_batches_are_the_builders(dataset, dtype):
    loader = Loader(dataset, 6, [BIG, SMALL], num_workers=2, order="random", seed=5, epoch=3, dtype=dtype,
                    drop_last=False, return_indices=True, return_params=True)
    builder = BatchBuilder(DatasetReader(dataset), loader.plans, seed=5, dct_scale=True, batch_size=6)
    host = np.uint8 if dtype == torch.uint8 else np.float32
    count = 0
    for views, labels, ids, params in loader:
        built = builder.build(ids.numpy(), 3, _outs(builder, len(ids), host))
        for ours, theirs in zip(views, built.views):
            np.testing.assert_array_equal(ours.numpy(), theirs)
        for ours, theirs in zip(params, built.params):
            np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(labels.numpy(), built.labels)
        np.testing.assert_array_equal(ids.numpy(), built.ids)
        count += 1
    assert count == len(loader) == 4


def test_builder_runs_in_the_calling_thread_and_owns_its_params(dataset):
    threads = threading.active_count()
    reader = DatasetReader(dataset)
    loader = Loader(reader, 4, [BIG, SMALL], num_workers=1)
    builder = BatchBuilder(reader, loader.plans, seed=0, dct_scale=False, batch_size=4)
    ids = np.array([3, 0, 7, 12])
    outs = _outs(builder, 4, np.uint8)
    first = builder.build(ids, 0, outs)
    assert threading.active_count() == threads  # no thread started
    np.testing.assert_array_equal(first.labels, reader.labels[ids])
    assert [v.shape for v in first.views] == [(4, 3, 32, 32), (4, 3, 16, 16)]
    params = [p.copy() for p in first.params]
    builder.build(np.array([1, 2]), 1, outs)  # a later build reuses the scratch ...
    for kept, now in zip(params, first.params):  # ... but the returned parameters were copies
        np.testing.assert_array_equal(kept, now)
    with pytest.raises(ValueError, match="batches of 4"):
        builder.build(np.arange(5), 0, outs)


def _set_jpeg_height(path: str, sample: int, height: int) -> None:
    """Rewrite the height in sample ``sample``'s JPEG frame header (SOF0) in place; the index is unchanged."""
    reader = DatasetReader(path)
    offset, size = int(reader.offsets[sample]), int(reader.sizes[sample])
    payload = bytes(reader.data[offset:offset + size])
    del reader
    sof = payload.index(b"\xff\xc0")
    with open(path, "r+b") as f:
        f.seek(offset + sof + 5)  # marker (2), length (2), precision (1), then height (2)
        f.write(height.to_bytes(2, "big"))


def test_a_jpeg_header_that_disagrees_with_the_index_is_rejected_before_decoding(tmp_path, monkeypatch):
    path = str(tmp_path / "crafted.fssl")
    write_dataset(path, [(natural_image(40, 48, seed=i), 0) for i in range(4)], mode="jpeg", num_workers=0,
                  progress=False)
    _set_jpeg_height(path, 2, 60000)
    reader = DatasetReader(path)
    assert jpeg.jpeg_shape(reader.encoded(2)) == (60000, 48)
    decoded = []
    real = jpeg.decode_jpeg
    monkeypatch.setattr(jpeg, "decode_jpeg", lambda data, **kw: decoded.append(1) or real(data, **kw))
    loader = Loader(reader, 4, [SMALL], num_workers=1, order="sequential")
    builder = BatchBuilder(reader, loader.plans, seed=0, dct_scale=True, batch_size=4)
    with pytest.raises(CorruptSampleError, match=r"header says 60000x48 but the index says 40x48") as info:
        builder.build(np.array([2]), 0, _outs(builder, 1, np.float32))
    assert info.value.index == 2 and "crafted.fssl" in str(info.value)
    assert decoded == []  # rejected before the decoder saw it
    with pytest.raises(CorruptSampleError, match="sample 2"):
        list(loader)
