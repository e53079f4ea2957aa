"""Loader: epochs, worker threads, prefetch slots, decode-once multi-view batches, lifecycle and errors.

Usage::

    loader = Loader("train.fssl", batch_size=256, views=presets.byol(224), device="cuda")
    for epoch in range(epochs):
        loader.set_epoch(epoch)                # optional, see "Epochs"
        for views, labels in loader:           # views: one [B, 3, H, W] tensor per view; labels: int64 [B]
            ...

What one iteration yields: ``(views, labels)``, both on the loader's device. ``indices`` (int64 [B], the
sample indices, on the CPU) is appended when ``return_indices=True``. ``params`` is appended when
``return_params=True``: a list with one float64 [B, P] array per view, its columns named by
``loader.param_names(view)``. So with both: ``views, labels, indices, params = batch``.

Epochs: the first ``iter()`` uses ``epoch`` (the constructor argument). Every later ``iter()`` uses the
previous iteration's epoch + 1. ``set_epoch(e)`` makes the next ``iter()`` use ``e`` (and later ones
e + 1, ...), so calling it every epoch, as with ``DistributedSampler``, gives the same result. The order
and every augmentation are functions of ``(seed, epoch)``, so an epoch never repeats the previous one's
augmentations. ``loader.epoch`` is the epoch of the latest iteration.

Threads: ``num_workers`` threads each build whole batches. For each sample they draw every view's
parameters, decode the sample ONCE, then run every view's compiled kernel. The batches go into
``batches_ahead + num_workers`` preallocated slots and are delivered in order. Starting a new iteration
stops the previous one. The threads also stop when the iterator is dropped (breaking out of a loop),
on ``close()`` (or leaving a ``with loader:`` block), on Ctrl-C while waiting, and on an error. A worker's
error, such as :class:`CorruptSampleError` naming the sample and file, is raised by ``next()`` when its
batch is due.

Sharding (``distributed=True``) and the orders are described in :mod:`fastssl_loader.order`.
Compilation: views with equal ops share one compiled plan per process (:func:`compiled_plan`).
``warmup()`` compiles before the first epoch and records the seconds in ``loader.stats["compile_s"]``.

DCT scaling (``dct_scale=True``): a JPEG sample is decoded at 1/s size (s in 1, 2, 4, 8). s is the largest
value for which every view's crop box, in stored pixels, is still at least s times that view's output size
in both dimensions. Every view therefore still downscales from the decoded image. Pixel effect: libjpeg's
DCT-domain reduction roughly box-averages s x s blocks, and the antialiased resize then covers the rest of
the factor. The result differs from a full decode followed by one antialiased resize by a few levels on
edges, but not in geometry. ``dct_scale=False`` always decodes at full size.

Validity: on CPU the returned float32/uint8 tensors share the slot's memory, so a batch stays valid until
the next batch is requested (or a new iteration starts). Clone to keep it. float16/bfloat16, channels_last
and CUDA tensors are new tensors owned by the user (see :mod:`fastssl_loader.device`).
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from . import jpeg
from .cpu import usable_cores
from .device import DeviceStage
from .errors import CorruptSampleError
from .format import STORAGE_JPEG
from .ops.base import Op
from .order import EpochOrder
from .plan import ViewPlan
from .reader import DatasetReader

_JOIN_TIMEOUT_S = 60.0
_POLL_S = 0.2
_PLANS: dict[tuple, ViewPlan] = {}
_PLANS_LOCK = threading.Lock()


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _view_lists(views: Any) -> list[list[Op]]:
    """``views`` as a list of op lists; a single op list is one view."""
    if not isinstance(views, (list, tuple)) or len(views) == 0:
        raise ValueError("views must be a non-empty list of views (each a list of ops), or one list of ops")
    if all(isinstance(op, Op) for op in views):
        return [list(views)]
    for i, view in enumerate(views):
        if not isinstance(view, (list, tuple)) or not view or not all(isinstance(op, Op) for op in view):
            raise ValueError(f"views[{i}] must be a non-empty list of ops, got {view!r}")
    return [list(view) for view in views]


def compiled_plan(ops: Sequence[Op], view_index: int) -> ViewPlan:
    """The process-wide ViewPlan for this view: equal op lists (same op types and attribute values) share
    one compiled plan, so a second Loader, or a preset built twice, compiles nothing.

    Ops are treated as immutable values. The cache holds one plan per distinct view for the process.
    """
    key = (int(view_index), tuple((type(op), tuple(sorted((k, repr(v)) for k, v in vars(op).items())))
                                  for op in ops))
    with _PLANS_LOCK:
        if key not in _PLANS:
            _PLANS[key] = ViewPlan(ops, view_index)
        return _PLANS[key]


def _rank_and_world(distributed: bool, rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): explicit values, else from the initialised torch.distributed group."""
    if not distributed:
        if rank not in (None, 0) or world_size not in (None, 1):
            raise ValueError("rank/world_size are only used with distributed=True")
        return 0, 1
    if rank is None or world_size is None:
        import torch.distributed as dist
        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError("distributed=True needs torch.distributed.init_process_group() first, "
                             "or explicit rank= and world_size=")
        rank = dist.get_rank() if rank is None else rank
        world_size = dist.get_world_size() if world_size is None else world_size
    world_size = _check_int("world_size", world_size, 1)
    rank = _check_int("rank", rank, 0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


class _WorkerBuffers:
    """One worker's reusable memory: parameter rows per view and a decode scratch that grows when needed."""

    def __init__(self, plans: Sequence[ViewPlan], batch_size: int) -> None:
        self.params = [np.zeros((batch_size, plan.num_params), dtype=np.float64) for plan in plans]
        self._scratch = np.empty(0, dtype=np.uint8)

    def scratch(self, nbytes: int) -> np.ndarray:
        if nbytes > len(self._scratch):
            self._scratch = np.empty(max(nbytes, 2 * len(self._scratch)), dtype=np.uint8)
        return self._scratch


class Loader:
    """Multi-view SSL batches from a converted dataset file; see the module docstring for the semantics."""

    def __init__(self, path_or_reader: str | os.PathLike | DatasetReader, batch_size: int, views: Any, *,
                 num_workers: int | None = None, order: str = "random", seed: int = 0, drop_last: bool = True,
                 distributed: bool = False, rank: int | None = None, world_size: int | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, batches_ahead: int = 3, dct_scale: bool = True,
                 return_indices: bool = False, return_params: bool = False, epoch: int = 0) -> None:
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = usable_cores() if num_workers is None else _check_int("num_workers", num_workers, 1)
        self.batches_ahead = _check_int("batches_ahead", batches_ahead, 1)
        self.seed = _check_int("seed", seed, 0)
        self._next_epoch = _check_int("epoch", epoch, 0)
        self.epoch = self._next_epoch
        self.rank, self.world_size = _rank_and_world(distributed, rank, world_size)
        self.dct_scale = bool(dct_scale)
        self.return_indices = bool(return_indices)
        self.return_params = bool(return_params)
        if isinstance(path_or_reader, DatasetReader):
            self.reader = path_or_reader
        elif isinstance(path_or_reader, (str, os.PathLike)):
            self.reader = DatasetReader(path_or_reader)
        else:
            raise TypeError(f"path_or_reader must be a path or a DatasetReader, got {type(path_or_reader)}")
        self.plans = [compiled_plan(ops, i) for i, ops in enumerate(_view_lists(views))]
        self._order = EpochOrder(len(self.reader), self.batch_size, order, self.seed, self.rank,
                                 self.world_size, bool(drop_last),
                                 offsets=self.reader.offsets if order == "quasi_random" else None)
        self._device = DeviceStage(device, dtype, [plan.normalize for plan in self.plans], channels_last)
        #: compile_s: warmup() seconds; batches: batches delivered; wait_s: seconds spent inside next()
        #: (waiting for workers plus the hand-over): near 0 when the loader keeps up with the consumer
        self.stats: dict[str, float] = {"compile_s": 0.0, "batches": 0, "wait_s": 0.0}
        self._slots: list[list[np.ndarray]] = []
        self._workers: list[_WorkerBuffers] = []
        self._active: weakref.ref | None = None
        self._warm = False

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return len(self._order)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run ``epoch`` (later ones continue from it)."""
        self._next_epoch = _check_int("epoch", epoch, 0)

    def param_names(self, view: int) -> list[str]:
        """Names of the columns of view ``view``'s parameter array (``return_params=True``)."""
        return list(self.plans[view].param_names)

    def warmup(self) -> float:
        """Compile every view's kernels on sample 0 (once per process); returns and records the seconds."""
        if not self._warm and len(self.reader):
            start = time.perf_counter()
            outs = [np.empty(3 * h * w, dtype=self._device.host_dtype)
                    for h, w in (plan.max_output_size for plan in self.plans)]
            self._build(_WorkerBuffers(self.plans, 1), outs, np.zeros(1, dtype=np.int64), self._next_epoch)
            self.stats["compile_s"] = time.perf_counter() - start
        self._warm = True
        return self.stats["compile_s"]

    def __iter__(self) -> Iterator[tuple]:
        self._stop_active()
        self.warmup()
        if not self._slots:
            sizes = [3 * h * w * self.batch_size for h, w in (plan.max_output_size for plan in self.plans)]
            self._slots = [[self._device.allocate(n) for n in sizes]
                           for _ in range(self.batches_ahead + self.num_workers)]
            self._workers = [_WorkerBuffers(self.plans, self.batch_size) for _ in range(self.num_workers)]
        self.epoch = self._next_epoch
        self._next_epoch = self.epoch + 1
        iterator = _EpochIterator(self, self._order.batches(self.epoch), self.epoch)
        self._active = weakref.ref(iterator)
        return iterator

    def close(self) -> None:
        """Stop the running iteration's threads (dropping the iterator does it too: a running iterator keeps
        its loader alive, and its own finaliser joins the threads)."""
        self._stop_active()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _stop_active(self) -> None:
        iterator = self._active() if self._active is not None else None
        if iterator is not None:
            iterator.close()
            if iterator.alive():
                raise RuntimeError(f"the previous iteration's workers did not stop within {_JOIN_TIMEOUT_S} s")
        self._active = None

    # ---- batch building (runs in worker threads) -------------------------------------------------------

    def _build(self, buffers: _WorkerBuffers, outs: Sequence[np.ndarray], ids: np.ndarray,
               epoch: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Fill ``outs`` (one flat host buffer per view) with the views of samples ``ids``.

        Returns the [n, 3, H, W] views of ``outs`` and the per-view parameter rows (views of ``buffers``).
        """
        reader, n = self.reader, len(ids)
        heights, widths = reader.heights[ids], reader.widths[ids]
        params = [p[:n] for p in buffers.params]
        for plan, p in zip(self.plans, params):
            plan.sample(ids, heights, widths, self.seed, epoch, p)
        src, offsets, src_h, src_w = self._decode(buffers, ids, heights, widths, params, epoch)
        views = []
        for plan, p, flat in zip(self.plans, params, outs):
            h, w = plan.output_size(epoch)
            out = flat[:n * 3 * h * w].reshape(n, 3, h, w)
            plan.apply(src, offsets, src_h, src_w, heights, widths, p, out, epoch)
            views.append(out)
        return views, params

    def _dct_scales(self, params: Sequence[np.ndarray], epoch: int) -> np.ndarray:
        """Per sample, the largest s in {1, 2, 4, 8} with every view's crop >= s x its output size."""
        ratio = None
        for plan, p in zip(self.plans, params):
            boxes = plan.crop_boxes(p)
            h, w = plan.output_size(epoch)
            r = np.minimum(boxes[:, 2] / h, boxes[:, 3] / w)
            ratio = r if ratio is None else np.minimum(ratio, r)
        return np.left_shift(1, np.clip(np.floor(np.log2(np.maximum(ratio, 1.0))), 0, 3).astype(np.int64))

    def _decode(self, buffers: _WorkerBuffers, ids: np.ndarray, heights: np.ndarray, widths: np.ndarray,
                params: Sequence[np.ndarray], epoch: int) -> tuple[np.ndarray, ...]:
        """(src, offsets, src_heights, src_widths) for plan.apply: each sample decoded once.

        An all-raw batch is read in place from the mapped file; otherwise every sample goes into the scratch.
        """
        reader = self.reader
        is_jpeg = reader.storage[ids] == STORAGE_JPEG
        if not is_jpeg.any():
            return reader.data, reader.offsets[ids], heights, widths
        scales = self._dct_scales(params, epoch) if self.dct_scale else np.ones(len(ids), dtype=np.int64)
        src_h, src_w = heights.copy(), widths.copy()
        for i in np.flatnonzero(is_jpeg):
            src_h[i], src_w[i] = jpeg.scaled_shape(heights[i], widths[i], int(scales[i]))
        nbytes = src_h * src_w * 3
        offsets = np.concatenate(([0], np.cumsum(nbytes)[:-1])).astype(np.int64)
        scratch = buffers.scratch(int(nbytes.sum()))
        for i, sample in enumerate(ids):
            start, size = int(reader.offsets[sample]), int(reader.sizes[sample])
            payload, dest = reader.data[start:start + size], scratch[offsets[i]:offsets[i] + nbytes[i]]
            if not is_jpeg[i]:
                dest[:] = payload
                continue
            try:
                image = jpeg.decode_jpeg(payload, scale=int(scales[i]), out=dest)
            except ValueError as exc:
                raise CorruptSampleError(int(sample), str(exc), str(reader.path)) from exc
            if image.shape != (src_h[i], src_w[i], 3):
                raise CorruptSampleError(int(sample), f"decoded shape {image.shape} but the index says "
                                                      f"{heights[i]}x{widths[i]} (scale 1/{scales[i]})",
                                         str(reader.path))
        src = scratch.view()
        src.flags.writeable = False  # the mapped file's Numba type too: one compiled kernel serves both paths
        return src, offsets, src_h, src_w


class _Run:
    """State shared by one iteration's worker threads and its consumer (never references the iterator)."""

    def __init__(self, loader: Loader, batches: list[np.ndarray], epoch: int) -> None:
        self.loader = loader
        self.batches = batches
        self.epoch = epoch
        self.num_slots = len(loader._slots)
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.next_batch = 0  # next batch to hand to a worker
        self.released = 0  # batches < released have given their slot back
        self.results: dict[int, Any] = {}

    def work(self, buffers: _WorkerBuffers) -> None:
        """Worker thread: claim batches in order, wait for their slot, build them, publish the result."""
        loader = self.loader
        while True:
            with self.cond:
                if self.stop.is_set() or self.next_batch >= len(self.batches):
                    return
                b = self.next_batch
                self.next_batch += 1
                while b - self.num_slots >= self.released and not self.stop.is_set():
                    self.cond.wait(_POLL_S)
                if self.stop.is_set():
                    return
            slot = b % self.num_slots
            ids = np.ascontiguousarray(self.batches[b], dtype=np.int64)
            try:
                loader._device.wait_slot(slot)
                views, params = loader._build(buffers, loader._slots[slot], ids, self.epoch)
                result: Any = (slot, views, ids, [p.copy() for p in params])
            except BaseException as exc:  # handed to the consumer, raised there
                result = exc
            with self.cond:
                self.results[b] = result
                if isinstance(result, BaseException):
                    self.next_batch = len(self.batches)  # claim no more batches: the epoch ends at b
                self.cond.notify_all()


class _EpochIterator:
    """One pass over one epoch: starts the workers, yields batches in order, stops the workers."""

    def __init__(self, loader: Loader, batches: list[np.ndarray], epoch: int) -> None:
        self._loader = loader
        self._run = _Run(loader, batches, epoch)
        self._position = 0
        self._threads = [threading.Thread(target=self._run.work, args=(buffers,), daemon=True,
                                          name=f"fastssl-loader-worker-{i}")
                         for i, buffers in enumerate(loader._workers[:max(1, min(len(batches),
                                                                                 loader.num_workers))])]
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> _EpochIterator:
        return self

    def __len__(self) -> int:
        return len(self._run.batches) - self._position

    def __next__(self) -> tuple:
        run, loader = self._run, self._loader
        if self._position >= len(run.batches) or run.stop.is_set():
            self.close()
            raise StopIteration
        start = time.perf_counter()
        try:
            result = self._wait_for_batch()
            if isinstance(result, BaseException):
                raise result
            slot, views, ids, params = result
            batch: tuple = (loader._device.deliver(slot, views),
                            loader._device.labels(torch.from_numpy(loader.reader.labels[ids])))
        except BaseException:  # a worker's error, Ctrl-C while waiting, a failed copy: stop the workers first
            self.close()
            raise
        if loader.return_indices:
            batch += (torch.from_numpy(ids),)
        if loader.return_params:
            batch += (params,)
        self._position += 1
        loader.stats["batches"] += 1
        loader.stats["wait_s"] += time.perf_counter() - start
        return batch

    def _wait_for_batch(self) -> Any:
        """Give the previous batch's slot back, then block until the current batch (or its error) is ready."""
        run = self._run
        with run.cond:
            run.released = self._position  # the previous batch's slot may now be refilled
            run.cond.notify_all()
            while self._position not in run.results:
                if not self.alive():
                    raise RuntimeError("loader workers stopped without producing batch "
                                       f"{self._position} of epoch {run.epoch}")
                run.cond.wait(_POLL_S)
            return run.results.pop(self._position)

    def alive(self) -> bool:
        """Whether any worker thread is still running."""
        return any(t.is_alive() for t in self._threads)

    def close(self) -> None:
        """Stop and join the workers (bounded wait); idempotent."""
        run = self._run
        run.stop.set()
        with run.cond:
            run.cond.notify_all()
        deadline = time.monotonic() + _JOIN_TIMEOUT_S
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        run.results.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
