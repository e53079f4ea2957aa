"""Loader lifecycle: threads stop on break / new iteration / close / delete / Ctrl-C, nothing leaks over many
cycles, and worker errors (a corrupt JPEG) surface in the consumer promptly, naming the sample."""
from __future__ import annotations

import _thread
import gc
import threading
import time
import weakref

import numpy as np
import psutil
import pytest

from fastssl_loader import DatasetReader, Loader, jpeg, write_dataset
from fastssl_loader.errors import CorruptSampleError
from fastssl_loader.ops import Normalize, RandomHorizontalFlip, RandomResizedCrop
from tests.conftest import natural_image

# the same views as tests/test_loader.py, so a full test run compiles them once
BIG = [RandomResizedCrop(32), RandomHorizontalFlip(), Normalize((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))]
SMALL = [RandomResizedCrop(16, scale=(0.05, 0.4)), RandomHorizontalFlip()]
N = 40


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fastssl-loader-worker")]


@pytest.fixture(scope="module")
def jpeg_file(tmp_path_factory) -> str:
    rng = np.random.default_rng(1)
    images = [natural_image(int(rng.integers(40, 90)), int(rng.integers(40, 90)), seed=i) for i in range(N)]
    path = str(tmp_path_factory.mktemp("lifecycle") / "data.fssl")
    write_dataset(path, [(img, i % 5) for i, img in enumerate(images)], mode="jpeg", num_workers=0,
                  progress=False)
    return path


@pytest.fixture(autouse=True)
def no_leftover_workers():
    assert not _workers()
    yield
    gc.collect()
    assert not _workers(), "a test left loader threads running"


def test_break_stops_the_threads(jpeg_file):
    loader = Loader(jpeg_file, 4, [SMALL], num_workers=2)
    for _ in loader:
        assert len(_workers()) == 2
        break
    assert not _workers()  # the abandoned iterator was collected and joined its threads


def test_new_iteration_stops_the_previous_one(jpeg_file):
    loader = Loader(jpeg_file, 4, [SMALL], num_workers=2)
    first = iter(loader)
    next(first)
    second = iter(loader)
    assert len(_workers()) == 2  # only the new iteration's workers
    with pytest.raises(StopIteration):
        next(first)
    assert sum(1 for _ in second) == len(loader)
    del first, second


def test_close_context_manager_and_delete(jpeg_file):
    with Loader(jpeg_file, 4, [SMALL], num_workers=2) as loader:
        iterator = iter(loader)
        next(iterator)
    assert not _workers()  # __exit__ closed the running iteration
    iterator = iter(loader)
    next(iterator)
    ref = weakref.ref(loader)
    del loader  # the running iterator keeps the loader alive ...
    assert ref() is not None and len(_workers()) == 2
    del iterator  # ... and dropping it stops everything
    gc.collect()
    assert ref() is None and not _workers()


@pytest.mark.slow
def test_repeated_create_iterate_break_cycles_leak_nothing(jpeg_file):
    process = psutil.Process()
    baseline_threads = threading.active_count()
    refs, rss = [], []
    for cycle in range(20):
        loader = Loader(jpeg_file, 32, [BIG, SMALL], num_workers=2)
        for k, _ in enumerate(loader):
            if k == 1:
                break
        refs.append(weakref.ref(loader))
        del loader
        gc.collect()
        assert threading.active_count() == baseline_threads, f"threads leaked in cycle {cycle}"
        rss.append(process.memory_info().rss)
    assert all(r() is None for r in refs), "loaders were not freed"
    # each loader holds ~2 MB of slots; 15 leaked loaders would add ~30 MB
    assert rss[-1] - rss[4] < 20e6, f"RSS grew by {(rss[-1] - rss[4]) / 1e6:.1f} MB over 15 cycles"


def test_ctrl_c_while_waiting_stops_the_threads(jpeg_file, monkeypatch):
    loader = Loader(jpeg_file, 4, [SMALL], num_workers=2)
    loader.warmup()
    real = jpeg.decode_jpeg

    def slow(*args, **kwargs):
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(jpeg, "decode_jpeg", slow)
    iterator = iter(loader)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        next(iterator)
    assert time.monotonic() - start < 5.0
    timer.join()
    assert not _workers()  # next() stopped them before letting the interrupt through
    with pytest.raises(StopIteration):
        next(iterator)


def test_a_failed_hand_over_stops_the_threads(jpeg_file, monkeypatch):
    loader = Loader(jpeg_file, 4, [SMALL], num_workers=2)
    iterator = iter(loader)
    next(iterator)

    def failing(*args):
        raise MemoryError("no room for the copy")

    monkeypatch.setattr(loader._device, "deliver", failing)
    with pytest.raises(MemoryError, match="no room"):
        next(iterator)
    assert not _workers()
    with pytest.raises(StopIteration):
        next(iterator)


def _corrupt(path: str, sample: int) -> None:
    """Overwrite one sample's JPEG payload (after its SOI marker) with garbage, in place."""
    reader = DatasetReader(path)
    offset, size = int(reader.offsets[sample]), int(reader.sizes[sample])
    del reader
    with open(path, "r+b") as f:
        f.seek(offset + 2)
        f.write(bytes(range(7, 7 + 50)) * ((size - 2) // 50) + b"\0" * ((size - 2) % 50))


@pytest.mark.parametrize("workers", [1, 2])
def test_corrupt_sample_surfaces_in_the_consumer(jpeg_file, tmp_path, workers):
    path = tmp_path / "corrupt.fssl"
    path.write_bytes(open(jpeg_file, "rb").read())
    bad = 21
    _corrupt(str(path), bad)
    loader = Loader(str(path), 4, [SMALL], num_workers=workers, order="sequential", return_indices=True)
    delivered = []
    start = time.monotonic()
    with pytest.raises(CorruptSampleError, match="corrupt.fssl") as info:
        for _, _, idx in loader:
            delivered.extend(idx.tolist())
    assert time.monotonic() - start < 30.0
    assert info.value.index == bad
    assert f"sample {bad}" in str(info.value)
    assert delivered == list(range(20))  # every batch before the bad one arrived, in order
    assert not _workers()
    good = Loader(jpeg_file, 4, [SMALL], num_workers=workers, order="sequential")
    assert sum(1 for _ in good) == len(good)  # the error did not poison other loaders


def test_an_empty_epoch_yields_nothing(jpeg_file):
    loader = Loader(jpeg_file, N + 1, [SMALL], num_workers=2)
    assert len(loader) == 0
    assert list(loader) == []
