"""Loader into the GPU: images/s of our Loader and of torchvision's DataLoader, per worker count (``device_check``).

Both deliver two views per image on the device: our Loader with ``device="cuda"`` (uint8 copied on a side
stream, normalised on the GPU); torchvision's DataLoader (``fastssl_loader.reference``'s mapping and
dataset: the same augmentations, the same stored JPEG files) with ``pin_memory=True`` and a
``.to(device, non_blocking=True)`` per view, as training code does. Same batch size and worker count.

How one figure is measured (:func:`measure_stream`), inside ONE epoch so that no epoch boundary is counted:
the first ``workers`` batches are the warm-up round (every worker builds its first batch at the same time;
worker start-up and page cache), then batches are counted until ``cap_s`` seconds have passed or the last
round of the epoch begins; the device is synchronised at both ends. images/s = counted images / seconds.
"""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from benches.ladder import byol_rung


def _synchronize(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device == "cuda" else (lambda: None)


def measure_stream(batches: Iterable[Any], consume: Callable[[Any], int], *, warm_batches: int, cap_s: float,
                   max_batches: int, device: str) -> dict[str, Any]:
    """images/s of ``batches`` after ``warm_batches``, for at most ``cap_s`` s or ``max_batches`` batches."""
    sync = _synchronize(device)
    start = time.perf_counter()
    first_batch_s = mark = None
    n = images = 0
    for batch in batches:
        counted = consume(batch)
        n += 1
        now = time.perf_counter()
        if first_batch_s is None:
            first_batch_s = now - start
        if n == warm_batches:
            sync()
            mark = time.perf_counter()
        elif mark is not None:
            images += counted
            if now - mark >= cap_s or n >= max_batches:
                break
    sync()
    seconds = time.perf_counter() - mark if mark is not None else None
    return {"first_batch_s": first_batch_s, "warm_batches": warm_batches, "measured_batches": max(0, n - warm_batches),
            "images": images, "seconds": seconds,
            "images_per_s": images / seconds if images and seconds else None}


def fastssl_rate(path: str, views: list, device: str, workers: int, batch_size: int,
                 cap_s: float) -> dict[str, Any]:
    """One figure for our Loader (float32 normalised views on ``device``)."""
    from fastssl_loader import Loader

    loader = Loader(path, batch_size, views, num_workers=workers, order="random", seed=0, drop_last=True,
                    device=device)
    try:
        compile_s = loader.warmup()
        result = measure_stream(iter(loader), lambda b: int(b[0][0].shape[0]), warm_batches=workers,
                                cap_s=cap_s, max_batches=len(loader) - workers, device=device)
    finally:
        loader.close()
    return {**result, "compile_s": compile_s}


def torchvision_rate(files: Sequence[str], labels: Sequence[int], rung: int, size: int, device: str,
                     workers: int, batch_size: int, cap_s: float, variant: str, blur: str) -> dict[str, Any]:
    """One figure for torchvision's DataLoader (pinned float32 views copied to ``device``)."""
    from benches.torchvision_baseline import api_of, build_transform
    from fastssl_loader.reference import MultiViewDataset

    transforms = [build_transform(view, variant, blur) for view in byol_rung(rung, size)]
    items = [(str(f), int(y)) for f, y in zip(files, labels)]
    loader = torch.utils.data.DataLoader(
        MultiViewDataset(items, transforms, api_of(variant)), batch_size=batch_size, shuffle=True,
        num_workers=workers, pin_memory=device == "cuda", drop_last=True,
        generator=torch.Generator().manual_seed(0))

    def consume(batch: Any) -> int:
        views = [v.to(device, non_blocking=True) for v in batch[0]]
        return int(views[0].shape[0])

    iterator = iter(loader)
    try:
        return measure_stream(iterator, consume, warm_batches=workers, cap_s=cap_s,
                              max_batches=len(loader) - workers, device=device)
    finally:
        del iterator  # shuts the worker processes down
        gc.collect()


def extract_jpegs(path: str, folder: Path) -> tuple[list[str], list[int]]:
    """Write every stored JPEG payload of a converted file as a .jpg file (what torchvision reads)."""
    from fastssl_loader.format import STORAGE_JPEG
    from fastssl_loader.reader import DatasetReader

    r = DatasetReader(path)
    folder.mkdir(parents=True, exist_ok=True)
    files, labels = [], []
    for i in range(len(r)):
        if r.storage[i] != STORAGE_JPEG:
            continue
        f = folder / f"{i:06d}.jpg"
        f.write_bytes(r.encoded(i))
        files.append(str(f))
        labels.append(int(r.labels[i]))
    if not files:
        raise ValueError(f"{path} holds no JPEG samples for torchvision to read")
    return files, labels


def decode_limit(path: str, threads: int, images_one: int, images_all: int, passes: int) -> dict[str, Any]:
    """JPEG decode alone (``benches.decode_limit``) on 1 and ``threads`` threads, full size and DCT 1/2."""
    from benches.decode_limit import decode_rate, stored_jpegs

    payloads = stored_jpegs(path)
    rates = [decode_rate(payloads[:images_one], 1, 1, passes)]
    for scale in (1, 2):
        rates.append(decode_rate(payloads[:images_all], threads, scale, passes))
    return {"file": path, "threads": threads, "rates": rates}


def loader_speed(speed_file: str, photos_file: str, work: Path, *, size: int, rungs: Sequence[int],
                 workers: Sequence[int], batch_size: int, device: str, fastssl_cap_s: float, torchvision_cap_s: float,
                 deadline: float, variant: str = "v2-tensor", blur: str = "pil") -> dict[str, Any]:
    """Every (rung, workers) figure for both loaders, most informative first, until ``deadline``.

    torchvision reads the distinct photos of ``photos_file`` as files, listed as many times as ``speed_file``
    repeats them, so both loaders see the same stored JPEGs and the same epoch length.
    """
    from fastssl_loader.reader import DatasetReader

    distinct, labels = extract_jpegs(photos_file, work / "jpegs")
    n = len(DatasetReader(speed_file))
    files = [distinct[i % len(distinct)] for i in range(n)]
    file_labels = [labels[i % len(labels)] for i in range(n)]
    order = sorted(workers, key=lambda w: (w != max(workers), w != min(workers), -w))  # max, min, then the rest
    figures, skipped = [], []
    for rung in rungs:
        views = byol_rung(rung, size)
        for w in order:
            for name in ("fastssl", "torchvision"):
                cap = fastssl_cap_s if name == "fastssl" else torchvision_cap_s
                if time.monotonic() + 3 * cap > deadline:
                    skipped.append({"loader": name, "rung": rung, "workers": w, "reason": "time budget"})
                    continue
                start = time.perf_counter()
                try:
                    if name == "fastssl":
                        r = fastssl_rate(speed_file, views, device, w, batch_size, cap)
                    else:
                        r = torchvision_rate(files, file_labels, rung, size, device, w, batch_size, cap, variant, blur)
                    r["status"] = "ok" if r["images_per_s"] else "no measured batches"
                except Exception as exc:  # noqa: BLE001 - one failed figure must not stop the others
                    r = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                figures.append({"loader": name, "rung": rung, "workers": w, **r,
                                "wall_s": time.perf_counter() - start})
    table = []
    for rung in rungs:
        for w in sorted(workers):
            row = {"rung": rung, "workers": w}
            for f in figures:
                if f["rung"] == rung and f["workers"] == w:
                    row[f["loader"]] = f.get("images_per_s")
            if row.get("fastssl") and row.get("torchvision"):
                row["speedup"] = row["fastssl"] / row["torchvision"]
            table.append(row)
    return {"device": device, "size": size, "batch_size": batch_size, "views": "2 BYOL views (ladder rungs)",
            "torchvision": {"variant": variant, "blur": blur, "pin_memory": device == "cuda"},
            "images_per_epoch": n, "distinct_images": len(distinct), "usable_cores": len(os.sched_getaffinity(0)),
            "figures": figures, "skipped": skipped, "table": table,
            "passed": all(f["status"] == "ok" for f in figures) if figures else None}
