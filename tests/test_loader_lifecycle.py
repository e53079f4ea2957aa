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

from fastssl_loader import DatasetReader, Loader, write_dataset
from fastssl_loader.builder import BatchBuilder
from fastssl_loader.errors import CorruptSampleError
from fastssl_loader.loader import _SlotRing
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


def _block_builds(monkeypatch) -> threading.Event:
    """Make every batch build wait until the returned event is set (the consumer then has to wait)."""
    release = threading.Event()
    real = BatchBuilder.build

    def blocked(self, *args, **kwargs):
        release.wait()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BatchBuilder, "build", blocked)
    return release


def test_ctrl_c_while_waiting_stops_the_threads(jpeg_file, monkeypatch):
    """SIGINT arrives (Python's default handler, via interrupt_main) exactly while next() waits for a batch
    that cannot be ready: every build is blocked until the interrupt has been sent."""
    loader = Loader(jpeg_file, 4, [SMALL], num_workers=2)
    loader.warmup()
    release = _block_builds(monkeypatch)
    iterator = iter(loader)
    cond = iterator._run.cond
    real_wait = cond.wait
    interrupted = []

    def wait(timeout=None):
        if threading.current_thread() is threading.main_thread() and not interrupted:
            interrupted.append(True)
            release.set()  # the workers may finish their batch now; the consumer must not take it
            _thread.interrupt_main()  # raised at the next bytecode boundary, still inside next()
        return real_wait(timeout)

    monkeypatch.setattr(cond, "wait", wait)
    with pytest.raises(KeyboardInterrupt):
        next(iterator)
    assert interrupted == [True]
    assert not _workers()  # next() stopped them before letting the interrupt through
    with pytest.raises(StopIteration):
        next(iterator)


@pytest.mark.parametrize("where", ["slot_ring", "device"])
def test_an_error_while_waiting_for_a_slot_reaches_the_consumer(jpeg_file, monkeypatch, where):
    """A failure before any batch is built (acquiring the slot, the device's copy-done wait) is raised by
    next(), not left to a consumer waiting forever."""
    loader = Loader(jpeg_file, 4, [SMALL], num_workers=2)

    def failing(*args):
        raise OSError("slot wait failed")

    if where == "slot_ring":
        monkeypatch.setattr(_SlotRing, "acquire", failing)
    else:
        monkeypatch.setattr(loader._device, "wait_slot", failing)
    with pytest.raises(OSError, match="slot wait failed"):
        next(iter(loader))
    assert not _workers()


def test_an_error_after_some_batches_arrives_in_order(jpeg_file, monkeypatch):
    """The slot wait of batch 5 fails: batches 0-4 are delivered, then next() raises."""
    loader = Loader(jpeg_file, 4, [SMALL], num_workers=2, order="sequential", batches_ahead=1)
    real = _SlotRing.acquire

    def failing_at_5(self, b):
        if b == 5:
            raise OSError("slot wait of batch 5 failed")
        return real(self, b)

    monkeypatch.setattr(_SlotRing, "acquire", failing_at_5)
    delivered = 0
    with pytest.raises(OSError, match="batch 5"):
        for _ in loader:
            delivered += 1
    assert delivered == 5
    assert not _workers()


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
