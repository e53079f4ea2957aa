"""Does the format scale to ImageNet? Open time, index memory, epoch orders and loader speed on big files.

    python -m benches.scale --out bench_results/scale.json [--work-dir DIR] [--keep]

Two files are built in ``--work-dir`` (deleted at the end unless ``--keep``):

* ``imagenet-sized``: 1,281,167 samples (ImageNet-1k's train set) of tiny raw 8 x 8 images (a pool of
  distinct random images, labels i % 1000), so it is quick to write; it stresses the index, not the pixels.
* ``realistic``: 100,000 samples repeating the 1,000 photos of ``--photos`` (converted once: JPEG q90, long
  side at most 512; then passed through byte for byte, ``benches/repeat_data.py``).

Measured for each file: open time of ``DatasetReader`` (first open after dropping the file's pages from the
page cache, and a warm open; median of ``--repeats``), memory of the index (the arrays the reader keeps, and
the RSS growth of the open), the time to compute one epoch's batches with ``EpochOrder`` for ``random`` and
``quasi_random`` at world sizes 1 and 8 (rank 0), and the Loader's images/s over ``--batches`` batches
(after a warm-up round): 2 BYOL rung-1 views at 32 px on the tiny file, at 224 px on the realistic one.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

IMAGENET_TRAIN = 1_281_167
TINY_SIDE = 8


class TinyImages:
    """``n`` samples of tiny random RGB images drawn from a pool, labels ``i % 1000``."""

    def __init__(self, n: int, side: int = TINY_SIDE, pool: int = 1024, seed: int = 0) -> None:
        self.n = n
        self.pool = np.random.default_rng(seed).integers(0, 256, size=(pool, side, side, 3), dtype=np.uint8)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.pool[i % len(self.pool)], i % 1000


def drop_from_page_cache(path: str | os.PathLike) -> None:
    """Ask the kernel to evict the file's (clean) pages, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _median_time(fn: Callable[[], Any], repeats: int, before: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def open_and_index(path: str, repeats: int) -> dict[str, Any]:
    """Cold and warm open times, the index's memory, and the RSS growth of one open."""
    import psutil

    from fastssl_loader import DatasetReader

    cold = _median_time(lambda: DatasetReader(path), repeats, before=lambda: drop_from_page_cache(path))
    warm = _median_time(lambda: DatasetReader(path), repeats)
    rss = psutil.Process().memory_info().rss
    r = DatasetReader(path)
    rss_growth = psutil.Process().memory_info().rss - rss
    arrays = [r.index, r.offsets, r.sizes, r.heights, r.widths, r.storage, r.labels]
    return {"samples": len(r), "file_mib": os.path.getsize(path) / 2 ** 20, "open_cold_s": cold, "open_warm_s": warm,
            "index_mib": sum(a.nbytes for a in arrays) / 2 ** 20, "index_bytes_per_sample": r.index.itemsize,
            "open_rss_growth_mib": rss_growth / 2 ** 20}


def order_times(path: str, batch_size: int, repeats: int) -> list[dict[str, Any]]:
    """Seconds to compute one epoch's batches (rank 0), per order and world size."""
    from fastssl_loader import DatasetReader
    from fastssl_loader.order import EpochOrder

    r = DatasetReader(path)
    rows = []
    for order in ("random", "quasi_random"):
        for world in (1, 8):
            eo = EpochOrder(len(r), batch_size, order, seed=0, rank=0, world_size=world,
                            offsets=r.offsets if order == "quasi_random" else None)
            eo.batches(0)  # compiles the quasi_random kernel once
            epochs = iter(range(1, repeats + 1))
            seconds = _median_time(lambda: eo.batches(next(epochs)), repeats)
            rows.append({"order": order, "world_size": world, "batches_rank0": len(eo), "seconds": seconds})
    return rows


def loader_rate(path: str, size: int, batch_size: int, workers: int, batches: int) -> dict[str, Any]:
    """Images/s of the Loader (2 BYOL rung-1 views at ``size``) over ``batches`` batches after a warm-up round."""
    from benches.device_speed import measure_stream
    from benches.ladder import byol_rung
    from fastssl_loader import Loader

    loader = Loader(path, batch_size, byol_rung(1, size), num_workers=workers, order="random")
    try:
        compile_s = loader.warmup()
        result = measure_stream(iter(loader), lambda b: int(b[0][0].shape[0]), warm_batches=workers,
                                cap_s=float("inf"), max_batches=workers + batches, device="cpu")
    finally:
        loader.close()
    return {"size": size, "batch_size": batch_size, "workers": workers, "compile_s": compile_s, **result}


def build_files(work: Path, photos: Path, tiny_samples: int, real_samples: int) -> dict[str, dict[str, Any]]:
    """Write the two files (see the module docstring); returns their paths and write reports."""
    from benches.repeat_data import write_repeated
    from fastssl_loader import write_dataset

    files = {}
    start = time.perf_counter()
    tiny = write_dataset(work / "imagenet-sized.fssl", TinyImages(tiny_samples), mode="raw", num_workers=0,
                         progress=False)
    files["imagenet-sized"] = {"path": tiny.path, "write_s": time.perf_counter() - start}
    sources = sorted(p for p in photos.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not sources:
        raise SystemExit(f"no JPEG photos under {photos}")
    converted = write_dataset(work / "photos.fssl", [(str(p), i) for i, p in enumerate(sources)], mode="jpeg",
                              jpeg_quality=90, max_resolution=512, progress=False)
    start = time.perf_counter()
    real = write_repeated(converted.path, work / "realistic.fssl", real_samples)
    files["realistic"] = {"path": real.path, "write_s": time.perf_counter() - start,
                          "distinct_photos": converted.written, "convert_photos_s": converted.seconds}
    return files


def main(argv: list[str] | None = None) -> None:
    from benches.report import machine_description, save_json

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("bench_results/scale.json"))
    p.add_argument("--work-dir", type=Path, default=None, help="where the big files go (default: a temp dir)")
    p.add_argument("--photos", type=Path, default=Path(os.environ.get(
        "FASTSSL_SHARED_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data")) / "imagenet-sample")
    p.add_argument("--tiny-samples", type=int, default=IMAGENET_TRAIN)
    p.add_argument("--real-samples", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=None, help="loader threads (default: usable cores)")
    p.add_argument("--batches", type=int, default=40, help="measured loader batches per file")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each open / order timing (median)")
    p.add_argument("--keep", action="store_true", help="keep the big files")
    args = p.parse_args(argv)

    from fastssl_loader.loader import usable_cores

    workers = args.workers or usable_cores()
    work = Path(tempfile.mkdtemp(prefix="fsl-scale-", dir=args.work_dir))
    try:
        files = build_files(work, args.photos, args.tiny_samples, args.real_samples)
        results = {}
        for name, info in files.items():
            path = info["path"]
            size = 32 if name == "imagenet-sized" else 224
            results[name] = {**info, **open_and_index(path, args.repeats),
                             "orders": order_times(path, args.batch_size, args.repeats),
                             "loader": loader_rate(path, size, args.batch_size, workers, args.batches)}
            r = results[name]
            print(f"{name}: {r['samples']:,} samples, {r['file_mib']:,.0f} MiB; open cold {r['open_cold_s'] * 1e3:.1f} ms"
                  f" / warm {r['open_warm_s'] * 1e3:.1f} ms; index {r['index_mib']:.1f} MiB; loader "
                  f"{r['loader']['images_per_s']:,.0f} images/s")
            for o in r["orders"]:
                print(f"  order {o['order']:12s} world {o['world_size']}: {o['seconds'] * 1e3:8.1f} ms per epoch")
        doc = {"files": results, "batch_size": args.batch_size, "workers": workers, "kept": args.keep,
               "work_dir": str(work), "machine": machine_description()}
        save_json(args.out, doc)
        print(f"wrote {args.out}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
