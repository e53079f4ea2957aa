"""Loader: epochs, worker threads, prefetch slots, decode-once multi-view batches, lifecycle and errors.

Usage::

    loader = Loader("train.fssl", batch_size=256, views=presets.byol(224), device="cuda")
    # a dataset in several files: a list of .fssl paths, or a .fsslm manifest (see fastssl_loader.multi_reader)
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

Threads: the call path is ``Loader.__iter__`` -> :class:`_EpochIterator` (consumer) -> ``num_workers``
threads running :meth:`_Run.work` -> each its own :class:`~fastssl_loader.builder.BatchBuilder` (decode once,
every view, DCT scale) -> the views' compiled plans -> :class:`~fastssl_loader.device.DeviceStage`. Batches go
into ``batches_ahead + num_workers`` preallocated slots (:class:`_SlotRing` says who may reuse a slot, and
when) and are delivered in order. Starting a new iteration stops the previous one. The threads also stop
when the iterator is dropped (breaking out of a loop), on ``close()`` (or leaving a ``with loader:`` block),
on Ctrl-C while waiting, and on an error. Any exception in a worker (while waiting for a slot, decoding,
rendering), such as :class:`CorruptSampleError` naming the sample and file, is raised by ``next()`` when the
batch it was working on, or the first batch nobody claimed, is due.

Resuming: ``state = loader.state_dict()`` between batches, then ``loader.load_state_dict(state)`` on a
loader with the same settings: its next ``iter()`` yields the rest of that epoch exactly as the uninterrupted
run would have (``torchdata``'s ``StatefulDataLoader`` convention). ``set_epoch`` of the restored epoch keeps
that position (Lightning calls it after ``load_state_dict``); another epoch starts from its first batch.

Sharding (``distributed=True``) and the orders are described in :mod:`fastssl_loader.order`.
Compilation: views with equal ops share one compiled plan per process (:func:`~fastssl_loader.plan.compiled_plan`).
``warmup()`` compiles before the first epoch and records the seconds in ``loader.stats["compile_s"]``.
Decoding: ``dct_scale`` (decode at 1/2, 1/4, 1/8 when every view allows), ``region_decode`` (decode only the
union of each sample's crop boxes; used when the optional ``turbojpeg`` wheel, extra ``[turbo]``, is installed
and every view is a RandomResizedCrop; the pixels are identical to a full decode's) and ``jpeg_fast_idct``
(opt-in: libjpeg-turbo's fast IDCT, a few percent faster, pixels differ by about 1 level on average, max about
10 on q90 files, at DCT scales 1 and 1/2 only) are described in :mod:`fastssl_loader.builder`.
``loader.decoder`` says which decoder runs: ``"turbojpeg-region"`` or ``"simplejpeg"`` (whole image).

Validity: on CPU the returned float32/uint8 tensors share the slot's memory, so a batch stays valid until
the next batch is requested (or a new iteration starts). Clone to keep it. float16/bfloat16, channels_last
and CUDA tensors are new tensors owned by the user (see :mod:`fastssl_loader.device`).
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .builder import BatchBuilder, BuiltBatch, jpeg_decoder
from .cpu import usable_cores
from .device import DeviceStage
from .ops.base import Op
from .order import EpochOrder
from .plan import ViewPlan, compiled_plan, ops_key
from .multi_reader import MultiDatasetReader, open_dataset
from .reader import DatasetReader

_JOIN_TIMEOUT_S = 60.0
_POLL_S = 0.2


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


def _plan_of_view(index: int, ops: list[Op]) -> ViewPlan:
    """The shared compiled plan of ``views[index]``; an invalid view's error names its index."""
    try:
        return compiled_plan(ops)
    except ValueError as exc:
        raise ValueError(f"views[{index}]: {exc}") from exc
    except TypeError as exc:
        raise TypeError(f"views[{index}]: {exc}") from exc


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


class Loader:
    """Multi-view SSL batches from a converted dataset file; see the module docstring for the semantics."""

    def __init__(self, path_or_reader: str | os.PathLike | Sequence[str | os.PathLike] | DatasetReader |
                 MultiDatasetReader, batch_size: int, views: Any, *,
                 num_workers: int | None = None, order: str = "random", seed: int = 0, drop_last: bool = True,
                 distributed: bool = False, rank: int | None = None, world_size: int | None = None,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, batches_ahead: int = 3, dct_scale: bool = True,
                 region_decode: bool = True, jpeg_fast_idct: bool = False,
                 return_indices: bool = False, return_params: bool = False, epoch: int = 0) -> None:
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.num_workers = usable_cores() if num_workers is None else _check_int("num_workers", num_workers, 1)
        self.batches_ahead = _check_int("batches_ahead", batches_ahead, 1)
        self.seed = _check_int("seed", seed, 0)
        self._next_epoch = _check_int("epoch", epoch, 0)
        self.epoch = self._next_epoch
        self.rank, self.world_size = _rank_and_world(distributed, rank, world_size)
        self.dct_scale = bool(dct_scale)
        self.region_decode = bool(region_decode)
        self.jpeg_fast_idct = bool(jpeg_fast_idct)
        self.return_indices = bool(return_indices)
        self.return_params = bool(return_params)
        self.reader = open_dataset(path_or_reader)
        self.plans: list[ViewPlan] = [_plan_of_view(i, ops) for i, ops in enumerate(_view_lists(views))]
        #: how JPEG samples are decoded: "turbojpeg-region" (only the crop boxes' union) or "simplejpeg"
        self.decoder = jpeg_decoder(self.plans, self.region_decode)
        self.order = order
        self.drop_last = bool(drop_last)
        self._resume_at = 0  # batches of the next iteration's epoch to skip (load_state_dict)
        self._order = EpochOrder(len(self.reader), self.batch_size, order, self.seed, self.rank,
                                 self.world_size, bool(drop_last),
                                 offsets=self.reader.offsets if order == "quasi_random" else None)
        self._device = DeviceStage(device, dtype, [plan.normalize for plan in self.plans], channels_last)
        #: compile_s: warmup() seconds; batches: batches delivered; wait_s: seconds spent inside next()
        #: (waiting for workers plus the hand-over): near 0 when the loader keeps up with the consumer
        self.stats: dict[str, float] = {"compile_s": 0.0, "batches": 0, "wait_s": 0.0}
        self._slots: list[list[np.ndarray]] = []  # allocated on the first iteration
        self._builders: list[BatchBuilder] = []  # one per worker thread
        self._active: weakref.ref | None = None
        self._warm = False

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return len(self._order)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run ``epoch`` (later ones continue from it): from its start, or, when
        ``epoch`` is the one a :meth:`load_state_dict` restored, from the restored position (Lightning and
        ``DistributedSampler``-style loops call ``set_epoch(e)`` after loading the state of epoch e)."""
        epoch = _check_int("epoch", epoch, 0)
        if epoch != self._next_epoch:
            self._resume_at = 0
        self._next_epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands, to resume exactly there (torchdata ``StatefulDataLoader`` convention).

        ``epoch`` and ``position`` (batches already yielded in it) say what the next ``iter()`` after
        :meth:`load_state_dict` continues with; the other entries are settings a resumed loader must share.
        """
        iterator = self._active() if self._active is not None else None
        if iterator is not None and iterator.position < len(self):
            epoch, position = self.epoch, iterator.position
        else:
            epoch, position = self._next_epoch, self._resume_at
        return {"epoch": epoch, "position": position, **self._settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next ``iter()`` continue ``state["epoch"]`` after its first ``state["position"]`` batches,
        yielding exactly the batches an uninterrupted run would have; later iterations continue with the next
        epochs as usual. A state from a loader with other settings is a ValueError naming them."""
        missing = {"epoch", "position", *self._settings()} - set(state)
        if missing:
            raise ValueError(f"load_state_dict: state lacks {sorted(missing)}")
        differ = [f"{k}: state {state[k]!r}, loader {v!r}" for k, v in self._settings().items() if state[k] != v]
        if differ:
            raise ValueError("load_state_dict: the state comes from a loader with other settings (" +
                             "; ".join(differ) + ")")
        epoch = _check_int("epoch", state["epoch"], 0)
        position = _check_int("position", state["position"], 0)
        if position > len(self):
            raise ValueError(f"load_state_dict: position {position} is past the epoch's {len(self)} batches")
        self._stop_active()
        self._next_epoch, self._resume_at = epoch, position

    def _settings(self) -> dict[str, Any]:
        """What must match between a saved state and the loader that resumes it."""
        views = hashlib.sha256(repr([ops_key(plan.ops) for plan in self.plans]).encode()).hexdigest()[:16]
        return {"seed": self.seed, "dataset_length": len(self.reader), "batch_size": self.batch_size,
                "order": self.order, "world_size": self.world_size, "rank": self.rank, "drop_last": self.drop_last,
                "views": views, "dct_scale": self.dct_scale, "jpeg_fast_idct": self.jpeg_fast_idct}

    def param_names(self, view: int) -> list[str]:
        """Names of the columns of view ``view``'s parameter array (``return_params=True``)."""
        return list(self.plans[view].param_names)

    def warmup(self) -> float:
        """Compile every view's kernels on sample 0 (once per process); returns and records the seconds."""
        if not self._warm and len(self.reader):
            start = time.perf_counter()
            outs = [np.empty(3 * h * w, dtype=self._device.host_dtype)
                    for h, w in (plan.max_output_size for plan in self.plans)]
            self._builder(1).build(np.zeros(1, dtype=np.int64), self._next_epoch, outs)
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
            self._builders = [self._builder(self.batch_size) for _ in range(self.num_workers)]
        self.epoch = self._next_epoch
        self._next_epoch = self.epoch + 1
        start, self._resume_at = self._resume_at, 0
        batches = self._order.batches(self.epoch)
        iterator = _EpochIterator(self, _Run(batches[start:], self.epoch, self._slots, self._device),
                                  self._builders, start)
        self._active = weakref.ref(iterator)
        return iterator

    def _builder(self, batch_size: int) -> BatchBuilder:
        return BatchBuilder(self.reader, self.plans, seed=self.seed, dct_scale=self.dct_scale, batch_size=batch_size,
                            region_decode=self.region_decode, fast_idct=self.jpeg_fast_idct)

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


class _SlotRing:
    """Ownership of the loader's batch slots, in one place.

    Batch b of an epoch is built into slot ``b % num_slots``. The consumer owns the slot of the batch it last
    returned (its CPU tensors share the slot's memory) until it asks for the next batch: only then does it
    release every batch before its position. So a worker may start writing batch b into its slot when (1) batch
    ``b - num_slots``, the slot's previous tenant, has been released by the consumer, and (2) the device copy
    out of that slot has finished: on CUDA, ``DeviceStage.deliver`` records an event after the
    non-blocking copy and :meth:`DeviceStage.wait_slot` blocks on it (FFCV issue #198: a pinned slot refilled
    while its copy still ran). :meth:`acquire` does both, in that order; nothing else touches slot reuse.
    """

    def __init__(self, slots: list[list[np.ndarray]], device: DeviceStage, cond: threading.Condition,
                 stop: threading.Event) -> None:
        self.slots = slots
        self.device = device
        self._cond = cond
        self._stop = stop
        self._released = 0  # batches < _released have given their slot back

    def acquire(self, b: int) -> list[np.ndarray] | None:
        """Block until batch ``b`` may write its slot; the slot's buffers, or None when the run stopped."""
        with self._cond:
            while b - len(self.slots) >= self._released and not self._stop.is_set():
                self._cond.wait(_POLL_S)
            if self._stop.is_set():
                return None
        self.device.wait_slot(self.index(b))
        return self.slots[self.index(b)]

    def index(self, b: int) -> int:
        """The slot batch ``b`` is built into (the consumer hands it to the device with it)."""
        return b % len(self.slots)

    def release_before(self, b: int) -> None:
        """The consumer is done with every batch before ``b`` (call with the condition held)."""
        self._released = b
        self._cond.notify_all()


class _Run:
    """One iteration's shared state: the batches to build, the slots, the results handed to the consumer.

    Never references the iterator or the loader, so dropping the iterator stops the run.
    """

    def __init__(self, batches: list[np.ndarray], epoch: int, slots: list[list[np.ndarray]],
                 device: DeviceStage) -> None:
        self.batches = batches
        self.epoch = epoch
        self.device = device
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.slots = _SlotRing(slots, device, self.cond, self.stop)
        self.next_batch = 0  # next batch to hand to a worker
        self.results: dict[int, BuiltBatch | BaseException] = {}

    def work(self, builder: BatchBuilder) -> None:
        """Worker thread: claim batches in order, acquire their slot, build them, publish them.

        Any exception, wherever it happens, is published in place of the batch being worked on (or, before a
        claim, of the first unclaimed batch) and ends the claiming: the consumer raises it when that batch is due.
        """
        b = None
        try:
            while (b := self._claim()) is not None:
                outs = self.slots.acquire(b)
                if outs is None:
                    return
                self._publish(b, builder.build(self.batches[b], self.epoch, outs))
                b = None
        except BaseException as exc:  # handed to the consumer, raised there
            with self.cond:
                self._publish(self.next_batch if b is None else b, exc)

    def _claim(self) -> int | None:
        """The next batch to build, or None when the run is stopped or every batch is claimed."""
        with self.cond:
            if self.stop.is_set() or self.next_batch >= len(self.batches):
                return None
            self.next_batch += 1
            return self.next_batch - 1

    def _publish(self, b: int, result: BuiltBatch | BaseException) -> None:
        with self.cond:
            self.results[b] = result
            if isinstance(result, BaseException):
                self.next_batch = len(self.batches)  # claim no more batches: the epoch ends at b
            self.cond.notify_all()


class _EpochIterator:
    """One pass over one epoch: starts the workers, yields batches in order, stops the workers."""

    def __init__(self, loader: Loader, run: _Run, builders: list[BatchBuilder], start: int) -> None:
        self._loader = loader  # keeps the loader (reader, slots) alive while the iteration runs
        self._run = run
        self._start = start  # batches of the epoch skipped by a resumed iteration
        self._device = run.device
        self._position = 0
        self._threads = [threading.Thread(target=run.work, args=(builder,), daemon=True,
                                          name=f"fastssl-loader-worker-{i}")
                         for i, builder in enumerate(builders[:max(1, min(len(run.batches), len(builders)))])]
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> _EpochIterator:
        return self

    def __len__(self) -> int:
        return len(self._run.batches) - self._position

    @property
    def position(self) -> int:
        """Batches of the epoch already yielded (including those a resumed iteration skipped)."""
        return self._start + self._position

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
            views = self._device.deliver(run.slots.index(self._position), result.views)
            batch: tuple = (views, self._device.labels(torch.from_numpy(result.labels)))
        except BaseException:  # a worker's error, Ctrl-C while waiting, a failed copy: stop the workers first
            self.close()
            raise
        if loader.return_indices:
            batch += (torch.from_numpy(result.ids),)
        if loader.return_params:
            batch += (result.params,)
        self._position += 1
        loader.stats["batches"] += 1
        loader.stats["wait_s"] += time.perf_counter() - start
        return batch

    def _wait_for_batch(self) -> BuiltBatch | BaseException:
        """Give the previous batch's slot back, then block until the current batch (or its error) is ready."""
        run = self._run
        with run.cond:
            run.slots.release_before(self._position)  # the previous batch's slot may now be refilled
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
