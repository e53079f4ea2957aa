"""How long does opening an ImageNet-sized dataset file take, and how much memory does its index take?

Builds (once) a file of ``--samples`` (default 1,281,167, ImageNet-1k train) tiny 8 x 8 raw images with
``write_dataset``, then times ``DatasetReader(path)`` (header + schema + index checksums + index validation),
and separately the first use of all six index columns (``offsets``, ``sizes``, ``heights``, ``widths``,
``storage``, ``labels``, built on first use since the reader stopped building them on open). Memory: peak
bytes allocated (tracemalloc; the memory map itself is not counted) during the open, and with the columns.
The first open of a process is reported apart: it loads the compiled index check from Numba's cache, and
Numba initialises itself (a cost a process using the Loader pays anyway).

``--rev A --rev B`` measures each git revision's ``fastssl_loader`` in its own process (see
:mod:`benches.revisions`), keeping the minimum of each figure over ``--rounds`` alternating rounds (WORKTREE =
the working tree, the default).

Run: ``python -m benches.open_time [--rev HEAD~3 --rev WORKTREE] [--file /tmp/imagenet-sized.fssl]
[--samples 1281167] [--repeats 9] [--rounds 3] [--out bench_results/open_time.json]``
"""
from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benches.report import machine_description, save_json
from benches.revisions import best_of_rounds, git_commit, parse_arguments, revision_parser, run_worker

IMAGENET_TRAIN = 1_281_167


def build(path: Path, samples: int) -> None:
    """Write ``samples`` 8 x 8 raw images (one shared pixel block, labels i % 1000) at ``path``."""
    from fastssl_loader import write_dataset
    from fastssl_loader.sources.numpy_arrays import ArraySamples
    images = np.broadcast_to(np.arange(192, dtype=np.uint8).reshape(1, 8, 8, 3), (samples, 8, 8, 3))
    write_dataset(path, ArraySamples(images, np.arange(samples) % 1000), mode="raw", num_workers=0)


def measure(path: Path, repeats: int) -> dict[str, float]:
    """Open times (ms) and peak allocated MB of the package on sys.path (run in a fresh process)."""
    from fastssl_loader import DatasetReader

    def open_once(columns: bool) -> float:
        start = time.perf_counter()
        reader = DatasetReader(path)
        if columns:
            for name in ("offsets", "sizes", "heights", "widths", "storage", "labels"):
                getattr(reader, name)
        return (time.perf_counter() - start) * 1e3

    def peak_mb(columns: bool) -> float:  # apart from the timed opens: tracemalloc slows Python down
        tracemalloc.start()
        open_once(columns)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak / 1e6

    first_ms = open_once(columns=False)
    opens = [open_once(columns=False) for _ in range(repeats)]
    with_columns = [open_once(columns=True) for _ in range(repeats)]
    return {"first_open_in_process_ms": first_ms, "open_ms_min": min(opens), "open_ms_median": float(np.median(opens)),
            "open_and_columns_ms_min": min(with_columns), "open_peak_mb": peak_mb(columns=False),
            "open_and_columns_peak_mb": peak_mb(columns=True)}


def main() -> None:
    parser = revision_parser(__doc__, out="bench_results/open_time.json", rounds=3)
    parser.add_argument("--file", default=None, help="dataset file to use (built there when missing, and kept). "
                                                     "Default: a temporary file")
    parser.add_argument("--samples", type=int, default=IMAGENET_TRAIN, help="samples of a newly built file")
    parser.add_argument("--repeats", type=int, default=9, help="timed opens per worker process")
    args = parse_arguments(parser, lambda args: measure(Path(args.file), args.repeats))
    revs = args.rev
    with tempfile.TemporaryDirectory(prefix="open_time_") as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "imagenet-sized.fssl"
        if not path.exists():
            print(f"building {path} ({args.samples:,} samples of 8x8 raw)", file=sys.stderr, flush=True)
            build(path, args.samples)
        worker_args = ["--file", str(path), "--repeats", str(args.repeats)]
        results = best_of_rounds(revs, args.rounds, lambda root: run_worker(__file__, root, worker_args))
        file_mb = path.stat().st_size / 1e6
    keys = list(results[revs[0]])
    print(f"\nopening a {file_mb:.0f} MB file (min over {args.rounds} rounds x {args.repeats} opens)")
    print(f"{'figure':<28}" + "".join(f"{rev[:14]:>16}" for rev in revs))
    for key in keys:
        print(f"{key:<28}" + "".join(f"{results[rev][key]:>16.1f}" for rev in revs))
    report = {"what": "DatasetReader open time (ms) and peak allocated MB (tracemalloc) on an ImageNet-sized file",
              "samples": args.samples, "file_mb": file_mb, "repeats": args.repeats, "rounds": args.rounds,
              "machine": machine_description(),
              "revisions": {rev: {"commit": git_commit(rev), "results": results[rev]} for rev in revs}}
    print(f"\nsaved {save_json(args.out, report)}")


if __name__ == "__main__":
    main()
