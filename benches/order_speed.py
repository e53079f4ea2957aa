"""How long does one epoch's quasi_random order take at ImageNet scale, now and with the first implementation?

The first implementation (np.unique + np.lexsort) is kept in tests/test_order.py as the oracle of the order's
reproducibility contract; this script times it and :func:`fastssl_loader.order.epoch_permutation` alternately
on the offsets of benches/scale.py's ``imagenet-sized`` file (1,281,167 raw 8 x 8 samples back to back), checks
they give the same permutation, and times the ``random`` order for reference. Prints medians; saves JSON.

    python -m benches.order_speed [--samples N] [--sample-bytes B] [--epochs E] [--out bench_results/order_speed.json]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benches.report import machine_description, save_json
from fastssl_loader.format import HEADER_SIZE
from fastssl_loader.order import DEFAULT_ACTIVE_CHUNKS, DEFAULT_CHUNK_BYTES, epoch_permutation
from tests.test_order import _quasi_random_oracle


def _timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(samples: int, sample_bytes: int, epochs: int) -> dict[str, Any]:
    offsets = HEADER_SIZE + sample_bytes * np.arange(samples, dtype=np.int64)
    epoch_permutation(samples, "quasi_random", 0, 0, offsets=offsets)  # compiles the kernels
    seconds: dict[str, list[float]] = {"quasi_random_first": [], "quasi_random": [], "random": []}
    for epoch in range(1, epochs + 1):
        first_s, first = _timed(lambda: _quasi_random_oracle(samples, 0, epoch, offsets, DEFAULT_CHUNK_BYTES,
                                                             DEFAULT_ACTIVE_CHUNKS))
        now_s, now = _timed(lambda: epoch_permutation(samples, "quasi_random", 0, epoch, offsets=offsets))
        if not np.array_equal(first, now):
            raise SystemExit(f"epoch {epoch}: the quasi_random order differs from the first implementation's")
        seconds["quasi_random_first"].append(first_s)
        seconds["quasi_random"].append(now_s)
        seconds["random"].append(_timed(lambda: epoch_permutation(samples, "random", 0, epoch))[0])
    return {"samples": samples, "sample_bytes": sample_bytes, "epochs": epochs, "seconds": seconds,
            "median_s": {k: statistics.median(v) for k, v in seconds.items()},
            "speedup": statistics.median(seconds["quasi_random_first"]) / statistics.median(seconds["quasi_random"])}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=1_281_167)
    p.add_argument("--sample-bytes", type=int, default=8 * 8 * 3)
    p.add_argument("--epochs", type=int, default=5, help="timed epochs (median reported)")
    p.add_argument("--out", type=Path, default=Path("bench_results/order_speed.json"))
    args = p.parse_args(argv)
    result = measure(args.samples, args.sample_bytes, args.epochs)
    m = result["median_s"]
    print(f"{args.samples:,} samples: quasi_random {m['quasi_random'] * 1e3:.0f} ms (first implementation "
          f"{m['quasi_random_first'] * 1e3:.0f} ms, {result['speedup']:.1f}x), random {m['random'] * 1e3:.0f} ms; "
          "same permutations")
    save_json(args.out, {**result, "machine": machine_description()})
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
