"""Datasets in several files: shards of a source read as one dataset give the one-file conversion's epochs."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fastssl_loader import CorruptSampleError, DatasetFormatError, Loader, write_dataset
from fastssl_loader.format import STORAGE_JPEG
from fastssl_loader.multi_reader import MultiDatasetReader, open_dataset, read_manifest, write_manifest
from fastssl_loader.order import ORDERS
from tests.conftest import natural_image
from fastssl_loader.reader import DatasetReader
from fastssl_loader.sources.imagefolder import list_samples
from tests.test_loader_resume import BIG, SMALL  # the same views: compiled once per test run

SHARDS = 3


@pytest.fixture(scope="module")
def source(shared_data, image_samples) -> list:
    """The first 48 CIFAR-10 test images (path, label) when the real data is present, else generated images."""
    cifar = shared_data / "cifar10" / "test"
    if cifar.is_dir():
        samples, _ = list_samples(cifar)
        return [samples[i] for i in np.linspace(0, len(samples) - 1, 48).astype(int)]  # every class
    return image_samples


@pytest.fixture(scope="module", params=["jpeg", "raw"])
def converted(request, source, tmp_path_factory) -> tuple[Path, list[Path], Path]:
    """(one-file conversion, its 3 shards, a manifest listing the shards) of ``source``."""
    folder = tmp_path_factory.mktemp(f"multi_{request.param}")
    options = dict(mode=request.param, num_workers=0, progress=False, description={"classes": ["a", "b"]})
    whole = folder / "whole.fssl"
    write_dataset(whole, source, **options)
    shards = [folder / "parts" / f"part-{k}.fssl" for k in range(SHARDS)]
    shards[0].parent.mkdir()
    for k, path in enumerate(shards):
        write_dataset(path, source, shard=(k, SHARDS), **options)
    manifest = folder / "train.fsslm"
    write_manifest(manifest, shards)
    return whole, shards, manifest


def _epoch(loader: Loader) -> list[tuple]:
    return [(ids.clone(), labels.clone(), [v.clone() for v in views]) for views, labels, ids in loader]


def _loader(dataset, order: str, rank: int = 0, world_size: int = 1) -> Loader:
    distributed = world_size > 1
    return Loader(dataset, 5, [BIG, SMALL], num_workers=2, order=order, seed=3, drop_last=False, epoch=1,
                  distributed=distributed, rank=rank if distributed else None,
                  world_size=world_size if distributed else None, return_indices=True)


def test_the_reader_contract_across_files(converted):
    whole, shards, _ = converted
    one, multi = DatasetReader(whole), MultiDatasetReader(shards)
    assert len(multi) == len(one) and multi.data is None
    for column in ("offsets", "sizes", "heights", "widths", "storage", "labels"):
        np.testing.assert_array_equal(getattr(multi, column), getattr(one, column), err_msg=column)
    for i in range(len(one)):
        assert multi.encoded(i) == one.encoded(i)
        np.testing.assert_array_equal(multi.image(i), one.image(i))
    np.testing.assert_array_equal(multi.image(-1), one.image(len(one) - 1))
    with pytest.raises(IndexError, match="out of range"):
        multi.payload(len(one))
    with pytest.raises(TypeError, match="must be an integer"):
        multi.image(1.5)
    assert multi.schema["num_samples"] == len(one) and multi.schema["files"] == [str(p) for p in shards]
    assert "shard" not in multi.schema and multi.readers[2].schema["shard"]["index"] == 2
    assert "part-1.fssl (sample 2 of that file)" in multi.describe(int(multi.starts[1]) + 2)
    clone = pickle.loads(pickle.dumps(multi))
    np.testing.assert_array_equal(clone.image(len(one) - 2), one.image(len(one) - 2))


@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("order", ORDERS)
def test_shards_give_the_one_file_epoch(converted, order, world_size):
    whole, shards, _ = converted
    for rank in range(world_size):
        expected = _epoch(_loader(whole, order, rank, world_size))
        got = _epoch(_loader([str(p) for p in shards], order, rank, world_size))
        assert len(got) == len(expected) > 1
        for (gi, gl, gv), (ei, el, ev) in zip(got, expected):
            assert torch.equal(gi, ei) and torch.equal(gl, el)
            assert all(torch.equal(a, b) for a, b in zip(gv, ev))


def test_a_manifest_is_the_list_of_its_files(converted):
    whole, shards, manifest = converted
    assert read_manifest(manifest) == [str(manifest.parent / "parts" / p.name) for p in shards]
    assert manifest.read_text().splitlines() == [f"parts/part-{k}.fssl" for k in range(SHARDS)]
    reader = open_dataset(manifest)
    assert isinstance(reader, MultiDatasetReader) and reader.path == str(manifest)
    assert isinstance(open_dataset([whole]), DatasetReader)
    expected = _epoch(_loader(whole, "random"))
    got = _epoch(_loader(manifest, "random"))
    assert all(torch.equal(g[0], e[0]) and all(torch.equal(a, b) for a, b in zip(g[2], e[2]))
               for g, e in zip(got, expected))


def test_files_that_do_not_belong_together_are_refused(converted, source, tmp_path):
    whole, shards, _ = converted
    other_classes = tmp_path / "other_classes.fssl"
    write_dataset(other_classes, source[:4], num_workers=0, progress=False, description={"classes": ["x", "y"]})
    with pytest.raises(DatasetFormatError, match=r"other_classes.fssl does not match .*different class names"):
        MultiDatasetReader([shards[0], other_classes])
    extra = tmp_path / "extra.fssl"
    write_dataset(extra, [(image, label, {"weight": 1.0}) for image, label in source[:4]], num_workers=0,
                  progress=False, extra_fields={"weight": "float32"}, description={"classes": ["a", "b"]})
    with pytest.raises(DatasetFormatError, match="different extra fields"):
        MultiDatasetReader([shards[0], extra])
    with pytest.raises(DatasetFormatError, match="are the same file"):
        MultiDatasetReader([shards[0], shards[1], shards[0]])
    copy = tmp_path / "copy.fssl"
    copy.write_bytes(shards[1].read_bytes())
    with pytest.raises(DatasetFormatError, match=r"are both shard 1/3 of the same source"):
        MultiDatasetReader([shards[1], copy])
    empty = tmp_path / "empty.fsslm"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(DatasetFormatError, match="names no dataset file"):
        Loader(empty, 2, [BIG, SMALL])
    missing = tmp_path / "missing.fsslm"
    missing.write_text("part-9.fssl\n")
    with pytest.raises(DatasetFormatError, match="part-9.fssl: cannot open"):
        Loader(missing, 2, [BIG, SMALL])
    with pytest.raises(TypeError, match="a dataset is a path"):
        Loader(42, 2, [BIG, SMALL])


def test_a_corrupt_sample_is_named_by_its_file(converted, tmp_path):
    whole, shards, _ = converted
    reader = DatasetReader(shards[1])
    if reader.storage[2] != STORAGE_JPEG:
        pytest.skip("stored raw pixels cannot be corrupt: any bytes are an image")
    broken = tmp_path / "part-1.fssl"
    data = bytearray(shards[1].read_bytes())
    start = int(reader.offsets[2])
    data[start:start + int(reader.sizes[2])] = bytes(int(reader.sizes[2]))  # the JPEG payload zeroed
    broken.write_bytes(bytes(data))
    multi = MultiDatasetReader([shards[0], broken, shards[2]])
    index = int(multi.starts[1]) + 2
    with pytest.raises(CorruptSampleError, match=rf"sample {index} in .*part-1.fssl \(sample 2 of that file\)"):
        multi.image(index)
    loader = Loader(multi, 5, [BIG, SMALL], num_workers=1, order="sequential", drop_last=False)
    with pytest.raises(CorruptSampleError, match=rf"sample {index} in .*part-1.fssl \(sample 2 of that file\)"):
        list(loader)


def test_prefetch_reaches_every_file(tmp_path):
    """MultiDatasetReader.prefetch hands each file its own share of the ids, in that file's numbering."""
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"f{k}.fssl")
        write_dataset(paths[-1], [(natural_image(20, 24, seed=10 * k + j), j) for j in range(4 + k)], mode="jpeg",
                      num_workers=0, progress=False)
    multi = MultiDatasetReader(paths)
    asked: list[tuple[int, list[int]]] = []
    for k, reader in enumerate(multi.readers):
        reader.prefetch = lambda ids, k=k: asked.append((k, ids.tolist()))
    multi.prefetch(np.array([12, 0, 5, 4, 9], dtype=np.int64))
    assert sorted(asked) == [(0, [0]), (1, [1, 0]), (2, [3, 0])]
