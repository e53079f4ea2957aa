"""Correctness of the CUDA path, checked against the CPU path batch by batch (used by ``benches.device_check``).

* :func:`gpu_matches_cpu`: for the same seed and epoch, every (dtype, channels_last) combination of the CUDA
  loader delivers the CPU loader's batches: uint8 exactly; float32 within 1e-5 (the GPU normalises the
  uint8 copy, the CPU path in the kernel); float16 / bfloat16 within the dtype's own tolerance, which is
  ``torch.testing.assert_close``'s default for it (atol 1e-5; rtol 1e-3 for float16, 1-2 units in the
  last place; 1.6e-2 for bfloat16, 2-4 units): both paths round a float32 value to the half type, and the
  two float32 values differ by about 1e-7 (computed in a different order), so they may round one unit apart.
* :func:`slot_reuse`: the pinned host slots are recycled many times while the consumer is slower than the
  loader (its stream is kept busy by ``torch.cuda._sleep`` or by a matmul loop before it reads each batch,
  so the host runs far ahead of the GPU) and while it is faster (it reads at once). Each batch is compared
  on the GPU, asynchronously, with its own CPU reference: a torn batch (slot refilled during its copy) or a
  stale one (an earlier batch's data) fails.
* :func:`shutdown`: breaking out mid-epoch, ``close()`` and dropping the loader stop every worker thread,
  and the CUDA tensors already delivered stay valid (compared again after the loader is gone and the
  freed GPU memory has been reused).

With ``device="cpu"`` (``--dry-run``) the same code compares the CPU loader with itself; CPU batches that
must outlive the next one are cloned, as the CPU batch contract requires.
"""
from __future__ import annotations

import gc
import threading
import time
from typing import Any, Callable

import torch

from fastssl_loader import Loader

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.uint8)
WORKER_THREAD_PREFIX = "fastssl-loader-worker"
_TOLERANCES = {torch.uint8: {"atol": 0.0, "rtol": 0.0}, torch.float32: {"atol": 1e-5, "rtol": 0.0},
               torch.float16: {"atol": 1e-5, "rtol": 1e-3}, torch.bfloat16: {"atol": 1e-5, "rtol": 1.6e-2}}


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """(atol, rtol) for comparing GPU and CPU batches of ``dtype`` (see the module docstring)."""
    return dict(_TOLERANCES[dtype])


def cpu_epoch(path: str, views: list, epoch: int, **kwargs: Any) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
    """One epoch of the CPU loader as (cloned views, indices) per batch: the reference."""
    loader = Loader(path, device="cpu", return_indices=True, **{**kwargs, "views": views})
    loader.set_epoch(epoch)
    try:
        return [([v.clone() for v in b[0]], b[2].clone()) for b in loader]
    finally:
        loader.close()


def _compare(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> dict[str, Any]:
    """Max abs difference, elements out of tolerance, and whether dtype / memory format / shape agree."""
    tol = tolerance(dtype)
    same_shape = tuple(got.shape) == tuple(want.shape)
    max_diff, bad = None, -1  # -1: not comparable
    if same_shape and got.numel():
        g, w = got.detach().double(), want.to(got.device).double()  # compared where the batch is
        diff = (g - w).abs()
        max_diff, bad = float(diff.max()), int((diff > tol["atol"] + tol["rtol"] * w.abs()).sum())
    return {"max_abs_diff": max_diff, "bad": bad, "same_dtype": got.dtype == want.dtype, "same_shape": same_shape,
            "same_layout": got.is_contiguous(memory_format=torch.channels_last) == want.is_contiguous(
                memory_format=torch.channels_last)}


def gpu_matches_cpu(path: str, views: list, device: str, *, batch_size: int, num_workers: int,
                    seed: int = 3, epoch: int = 1) -> dict[str, Any]:
    """Every dtype x channels_last combination: device batches == CPU batches (see the module docstring)."""
    common = dict(batch_size=batch_size, num_workers=num_workers, seed=seed, batches_ahead=2)
    combos = []
    for dtype in DTYPES:
        for channels_last in (False, True):
            kwargs = dict(common, dtype=dtype, channels_last=channels_last)
            reference = cpu_epoch(path, views, epoch, **kwargs)
            loader = Loader(path, views=views, device=device, return_indices=True, **kwargs)
            loader.set_epoch(epoch)
            worst: dict[str, Any] = {"max_abs_diff": 0.0, "bad": 0, "same_dtype": True, "same_shape": True,
                                     "same_layout": True, "on_device": True}
            batches = 0
            same_indices = True
            for (want_views, want_idx), (got_views, _labels, got_idx) in zip(reference, loader):
                batches += 1
                same_indices &= torch.equal(got_idx, want_idx)
                worst["on_device"] &= all(v.device.type == device for v in got_views)
                for got, want in zip(got_views, want_views):
                    c = _compare(got, want, dtype)
                    worst["max_abs_diff"] = max(worst["max_abs_diff"], c["max_abs_diff"] or 0.0)
                    worst["bad"] = worst["bad"] + c["bad"] if c["bad"] >= 0 and worst["bad"] >= 0 else -1
                    for key in ("same_dtype", "same_shape", "same_layout"):
                        worst[key] &= c[key]
            loader.close()
            passed = (batches == len(reference) > 0 and same_indices and worst["bad"] == 0 and worst["on_device"]
                      and worst["same_dtype"] and worst["same_shape"] and worst["same_layout"])
            combos.append({"dtype": str(dtype), "channels_last": channels_last, "batches": batches,
                           "reference_batches": len(reference), "same_indices": same_indices,
                           "tolerance": tolerance(dtype), **worst, "passed": passed})
    return {"device": device, "batch_size": batch_size, "num_workers": num_workers, "seed": seed, "epoch": epoch,
            "combinations": combos, "passed": all(c["passed"] for c in combos)}


def _slow_consumer(device: str, kind: str, matmul_side: int) -> Callable[[], None]:
    """Work queued on the consumer's stream before it reads a batch: GPU sleep or a matmul loop."""
    if kind == "sleep" and device == "cuda" and hasattr(torch.cuda, "_sleep"):
        cycles = int(20e-3 * 1.5e9)  # about 20 ms at 1.5 GHz
        return lambda: torch.cuda._sleep(cycles)
    a = torch.randn(matmul_side, matmul_side, device=device)

    def matmuls() -> None:
        x = a
        for _ in range(8):
            x = torch.tanh(x @ a)

    return matmuls


def slot_reuse(path: str, views: list, device: str, *, batch_size: int, num_workers: int, epochs: int = 2,
               matmul_side: int = 4096) -> dict[str, Any]:
    """uint8 batches compared with the CPU reference under slower and faster consumers."""
    kwargs = dict(batch_size=batch_size, num_workers=num_workers, seed=5, batches_ahead=1, dtype=torch.uint8)
    reference = cpu_epoch(path, views, 0, **kwargs)
    ref_dev = [[v.to(device) for v in vs] for vs, _ in reference]
    cuda = device == "cuda"
    runs = []
    for consumer in ("slower-sleep", "slower-matmul", "faster"):
        slow = None if consumer == "faster" else _slow_consumer(device, consumer.split("-")[1], matmul_side)
        loader = Loader(path, views=views, device=device, return_indices=True, **kwargs)
        mismatches: list[torch.Tensor] = []
        index_errors = 0
        start = time.perf_counter()
        consumer_events = []
        for _ in range(epochs):
            loader.set_epoch(0)
            for b, (got_views, _labels, got_idx) in enumerate(loader):
                index_errors += int(not torch.equal(got_idx, reference[b][1]))
                if slow is not None:
                    if cuda:
                        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        begin.record()
                    slow()
                    if cuda:
                        end.record()
                        consumer_events.append((begin, end))
                # queued after the slow work: read on the GPU timeline long after the host moved on
                mismatches.append(sum((g != w).sum() for g, w in zip(got_views, ref_dev[b])))
        host_s = time.perf_counter() - start
        sync_start = time.perf_counter()
        if cuda:
            torch.cuda.synchronize()
        sync_s = time.perf_counter() - sync_start
        loader.close()
        per_batch = [int(m) for m in mismatches]
        batches = len(per_batch)
        bad = [i for i, m in enumerate(per_batch) if m]
        gpu_busy_s = sum(b.elapsed_time(e) for b, e in consumer_events) / 1e3 if consumer_events else None
        runs.append({"consumer": consumer, "batches": batches, "expected_batches": epochs * len(reference),
                     "slots": kwargs["batches_ahead"] + num_workers, "bad_batches": bad,
                     "mismatched_elements": sum(per_batch), "index_errors": index_errors,
                     "host_loop_s": host_s, "final_sync_s": sync_s, "consumer_gpu_busy_s": gpu_busy_s,
                     "passed": not bad and index_errors == 0 and batches == epochs * len(reference)})
    return {"device": device, "batch_size": batch_size, "num_workers": num_workers, "epochs": epochs,
            "note": "final_sync_s > 0 on CUDA shows the GPU consumer lagged the host loop (slower consumer)",
            "runs": runs, "passed": all(r["passed"] for r in runs)}


def _worker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(WORKER_THREAD_PREFIX) and t.is_alive()]


def shutdown(path: str, views: list, device: str, *, batch_size: int, num_workers: int,
             keep_batches: int = 3) -> dict[str, Any]:
    """Break mid-epoch holding delivered tensors; close / drop the loader; the tensors must stay valid."""
    kwargs = dict(batch_size=batch_size, num_workers=num_workers, seed=7, batches_ahead=2, dtype=torch.uint8)
    reference = cpu_epoch(path, views, 0, **kwargs)
    keep_batches = min(keep_batches, max(1, len(reference) - 1))
    cuda = device == "cuda"
    own = (lambda t: t) if cuda else (lambda t: t.clone())  # CPU batches live until the next one
    results: dict[str, Any] = {"device": device, "threads_before": _worker_threads(), "cases": []}

    def matches(kept: list[list[torch.Tensor]]) -> bool:
        return all(torch.equal(g.cpu(), w) for b, vs in enumerate(kept) for g, w in zip(vs, reference[b][0]))

    for how in ("close", "drop-iterator", "delete-loader"):
        loader = Loader(path, views=views, device=device, **kwargs)
        kept: list[list[torch.Tensor]] = []
        iterator = iter(loader)
        for views_b, _labels in iterator:
            kept.append([own(v) for v in views_b])
            if len(kept) == keep_batches:
                break
        mid_epoch = len(kept) < len(reference)
        if how == "close":
            loader.close()
        elif how == "drop-iterator":
            del iterator
            gc.collect()
        else:
            del iterator, loader
            gc.collect()
        alive = _worker_threads()
        valid_now = matches(kept)
        if cuda:  # reuse the freed memory, then look again
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.full((64, 2 ** 20), 255, dtype=torch.uint8, device=device)  # written over freed blocks, freed
        valid_later = matches(kept)
        restart_ok = None
        if how != "delete-loader":  # the same loader can run a whole new epoch afterwards
            restart_ok = sum(1 for _ in loader) == len(reference)
            loader.close()
            del loader
        gc.collect()
        results["cases"].append({"how": how, "kept_batches": len(kept), "mid_epoch": mid_epoch,
                                 "worker_threads_alive": alive, "tensors_valid": valid_now,
                                 "tensors_valid_after_memory_reuse": valid_later, "new_epoch_ok": restart_ok,
                                 "passed": (mid_epoch and not alive and valid_now and valid_later
                                            and restart_ok in (None, True))})
    results["threads_after"] = _worker_threads()
    results["passed"] = all(c["passed"] for c in results["cases"]) and not results["threads_after"]
    return results
