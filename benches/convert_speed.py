"""How fast is conversion, how big are the files, and how fast is random access to stored samples?

For each dataset (cifar10/train as an ImageFolder, imagenet-sample as a flat folder) and each storage mode
(raw, jpeg at q90 with max_resolution 512, passthrough, auto) this converts the dataset with
``write_dataset`` and records images/s, seconds and file size; then it reads ``reader.encoded(i)`` over a
random permutation of the file (page cache warm: the file was just written) and records reads/s and MB/s.
Output files go to a temporary folder and are deleted. Prints a table and writes JSON to
``bench_results/convert_speed.json``.

    python -m benches.convert_speed [--limit N] [--workers N] [--modes raw auto ...]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benches.report import machine_description, save_json
from fastssl_loader import DatasetReader, write_dataset
from fastssl_loader.sources.imagefolder import list_flat_samples, list_samples

REPO = Path(__file__).resolve().parent.parent
MODES = {"raw": {}, "jpeg": {"jpeg_quality": 90, "max_resolution": 512}, "passthrough": {}, "auto": {}}


def random_access(path: Path, seed: int = 0, min_seconds: float = 1.0) -> dict[str, float]:
    """reads/s and MB/s of ``encoded(i)`` over random permutations, repeated for at least ``min_seconds``."""
    reader = DatasetReader(path)
    order = np.random.default_rng(seed).permutation(len(reader))
    reads = nbytes = 0
    start = time.perf_counter()
    while True:
        for i in order:
            nbytes += len(reader.encoded(i))
        reads += len(order)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return {"reads_per_s": reads / elapsed, "mb_per_s": nbytes / elapsed / 1e6, "reads": reads}


def measure(name: str, samples: list, mode: str, workers: int | None, folder: Path) -> dict[str, Any]:
    path = folder / f"{name}-{mode}.fssl"
    report = write_dataset(path, samples, mode=mode, num_workers=workers, progress=False, **MODES[mode])
    result = {"dataset": name, "mode": mode, "settings": MODES[mode], "images": report.written,
              "seconds": report.seconds, "images_per_s": report.images_per_second, "bytes": report.bytes,
              "bytes_per_image": report.bytes / report.written, "storage_counts": report.storage_counts,
              **random_access(path)}
    path.unlink()
    return result


def format_rows(rows: list[dict[str, Any]]) -> str:
    header = ["dataset", "mode", "images", "convert img/s", "seconds", "file MB", "KB/img", "reads/s", "read MB/s"]
    lines = [header] + [[r["dataset"], r["mode"], str(r["images"]), f"{r['images_per_s']:,.0f}",
                         f"{r['seconds']:.1f}", f"{r['bytes'] / 1e6:,.1f}", f"{r['bytes_per_image'] / 1e3:.1f}",
                         f"{r['reads_per_s']:,.0f}", f"{r['mb_per_s']:,.0f}"] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data folder")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N images per dataset")
    parser.add_argument("--workers", type=int, default=None, help="writer processes (default: one per CPU)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--out", type=Path, default=REPO / "bench_results" / "convert_speed.json")
    args = parser.parse_args()

    datasets = {}
    if (args.data / "cifar10" / "train").is_dir():
        datasets["cifar10-train"] = list_samples(args.data / "cifar10" / "train")[0]
    if (args.data / "imagenet-sample").is_dir():
        datasets["imagenet-sample"] = list_flat_samples(args.data / "imagenet-sample")[0]
    if not datasets:
        raise SystemExit(f"no dataset found under {args.data}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, samples in datasets.items():
            for mode in args.modes:
                rows.append(measure(name, samples[: args.limit], mode, args.workers, Path(folder)))
                print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    print(format_rows(rows))
    save_json(args.out, {"results": rows, "machine": machine_description(),
                         "note": "random access reads a just-written file (warm page cache)"})
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
