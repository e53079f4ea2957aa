"""The limit: JPEG decode alone (our ``jpeg.decode_jpeg``, libjpeg-turbo via simplejpeg) on the stored files.

No loader does better than decoding each stored JPEG once, so this rate, per core and on all cores (threads;
the decoder releases the GIL), at full size and at DCT scale 1/2, is the ceiling the ladder is compared to.
Each figure is the median of ``passes`` passes over the files after one warm-up pass.
"""
from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np


def stored_jpegs(path: str) -> list[memoryview]:
    """Zero-copy views of every JPEG payload of a converted file (raw samples are skipped)."""
    from fastssl_loader.format import STORAGE_JPEG
    from fastssl_loader.reader import DatasetReader

    r = DatasetReader(path)
    return [memoryview(r.data[o:o + s]) for o, s, st in zip(r.offsets, r.sizes, r.storage) if st == STORAGE_JPEG]


def _decode_share(payloads: Sequence[Any], scale: int, nbytes: int) -> None:
    from fastssl_loader.jpeg import decode_jpeg

    out = np.empty(nbytes, np.uint8)  # one reused output buffer per thread, as a loader would
    for data in payloads:
        decode_jpeg(data, scale=scale, out=out)


def decode_rate(payloads: Sequence[Any], threads: int, scale: int = 1, passes: int = 3) -> dict[str, Any]:
    """Images/s decoding every payload with ``threads`` threads (each an interleaved share) at 1/``scale``."""
    if not payloads:
        raise ValueError("decode_rate needs at least one JPEG payload (is the dataset stored as raw?)")
    if threads < 1 or passes < 1:
        raise ValueError(f"threads and passes must be >= 1, got {threads}, {passes}")
    from fastssl_loader.jpeg import jpeg_shape, scaled_shape

    nbytes = max(3 * int(np.prod(scaled_shape(*jpeg_shape(p), scale))) for p in payloads)
    shares = [payloads[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        def one_pass() -> float:
            start = time.perf_counter()
            list(pool.map(_decode_share, shares, [scale] * threads, [nbytes] * threads))
            return time.perf_counter() - start

        one_pass()  # warm-up: page cache, buffers, thread start
        times = [one_pass() for _ in range(passes)]
    rates = [len(payloads) / t for t in times]
    return {"threads": threads, "scale": scale, "images": len(payloads), "images_per_s": statistics.median(rates),
            "images_per_s_min": min(rates), "images_per_s_max": max(rates)}


def decode_limits(path: str, threads: int, passes: int = 3, scales: Sequence[int] = (1, 2)) -> dict[str, Any]:
    """Per-core (1 thread) and all-core (``threads``) decode rates of a converted file's JPEGs, per scale."""
    payloads = stored_jpegs(path)
    pixels = None
    if payloads:
        from fastssl_loader.jpeg import jpeg_shape

        pixels = float(np.mean([np.prod(jpeg_shape(p)) for p in payloads]))
    results = {"file": str(path), "jpeg_images": len(payloads), "mean_megapixels": pixels and pixels / 1e6,
               "bytes_per_pixel": pixels and float(np.mean([len(p) for p in payloads]) / pixels), "rates": []}
    for scale in scales:
        for n in sorted({1, threads}):
            results["rates"].append(decode_rate(payloads, n, scale, passes))
    return results


def limit_rate(limits: dict[str, Any], threads: int, scale: int = 1) -> float | None:
    """The all-core full-size (or ``scale``) decode rate from :func:`decode_limits`, or None."""
    for r in limits.get("rates", []):
        if r["threads"] == threads and r["scale"] == scale:
            return r["images_per_s"]
    return None
