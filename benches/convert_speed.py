"""How fast is conversion, how big are the files, and how fast is random access to stored samples?

For each dataset (cifar10/train as an ImageFolder, imagenet-sample as a flat folder) and each storage setting
(raw, raw with max_resolution 512, jpeg at q90 with max_resolution 512, passthrough, auto) this converts the
dataset with ``write_dataset`` and records images/s, seconds and file size; then it reads ``reader.encoded(i)`` over a
random permutation of the file (page cache warm: the file was just written) and records reads/s and MB/s.
Output files go to a temporary folder and are deleted. Prints a table and writes JSON to
``bench_results/convert_speed.json``.

With ``--ffcv-python PATH`` (an interpreter with ffcv 1.0.2, see benches/ffcv_baseline.py) each conversion is
followed by FFCV's ``DatasetWriter`` on the same files with the same number of workers (benches/ffcv_writer.py),
in the matching setting of ``FFCV_MATCH``; ``--repeats`` alternates the two and reports the median of each.

    python -m benches.convert_speed [--datasets imagenet-sample] [--limit N] [--workers N] [--modes raw auto ...]
        [--ffcv-python /work/ffcv-venv/bin/python --repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benches.report import machine_description, save_json
from fastssl_loader import DatasetReader, write_dataset
from fastssl_loader.cpu import usable_cores
from fastssl_loader.sources.imagefolder import list_flat_samples, list_samples

REPO = Path(__file__).resolve().parent.parent
MODES = {"raw": {"mode": "raw"}, "raw-512": {"mode": "raw", "max_resolution": 512},
         "jpeg": {"mode": "jpeg", "jpeg_quality": 90, "max_resolution": 512}, "passthrough": {"mode": "passthrough"},
         "auto": {"mode": "auto"}}
# FFCV's RGBImageField (write_mode, max_resolution) for each setting. FFCV cannot keep a source JPEG's bytes: it
# decodes and re-encodes every image, so passthrough is matched with its JPEG writer at source size. Raw at
# source size has no match: FFCV 1.0.2's writer hangs on a sample larger than its 8 MiB page (one photo of
# imagenet-sample is 11.5 MB raw).
FFCV_MATCH = {"raw-512": ("raw", 512), "jpeg": ("jpg", 512), "passthrough": ("jpg", None)}


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


def measure(name: str, samples: list, mode: str, workers: int | None, folder: Path, repeats: int = 1,
            ffcv_python: str | None = None) -> dict[str, Any]:
    """Convert ``samples`` ``repeats`` times (alternating with FFCV's writer when ``ffcv_python`` is given)."""
    path = folder / f"{name}-{mode}.fssl"
    seconds, ffcv_runs = [], []
    for _ in range(repeats):
        path.unlink(missing_ok=True)
        report = write_dataset(path, samples, num_workers=workers, progress=False, **MODES[mode])
        seconds.append(report.seconds)
        if ffcv_python is not None and mode in FFCV_MATCH:
            ffcv_runs.append(ffcv_write(ffcv_python, samples, mode, workers, folder))
    result = {"dataset": name, "mode": mode, "settings": MODES[mode], "images": report.written,
              "seconds": statistics.median(seconds), "seconds_runs": seconds,
              "images_per_s": report.written / statistics.median(seconds), "bytes": report.bytes,
              "bytes_per_image": report.bytes / report.written, "storage_counts": report.storage_counts,
              **random_access(path)}
    if ffcv_runs:
        ffcv_seconds = [r["seconds"] for r in ffcv_runs]
        result["ffcv"] = {**{k: ffcv_runs[0][k] for k in ("ffcv_version", "write_mode", "max_resolution",
                                                           "jpeg_quality", "images", "bytes")},
                          "seconds": statistics.median(ffcv_seconds), "seconds_runs": ffcv_seconds,
                          "images_per_s": ffcv_runs[0]["images"] / statistics.median(ffcv_seconds)}
    path.unlink()
    return result


def ffcv_write(python: str, samples: list, mode: str, workers: int | None, folder: Path) -> dict[str, Any]:
    """One run of FFCV's DatasetWriter (benches/ffcv_writer.py in ``python``) in the setting matching ``mode``."""
    items = [(str(image), int(label)) for image, label in samples]
    if not all(Path(image).is_file() for image, _ in items):
        raise SystemExit("the FFCV comparison needs samples that are image files")
    listing, out = folder / "ffcv_files.tsv", folder / "ffcv_writer.json"
    listing.write_text("".join(f"{image}\t{label}\n" for image, label in items))
    write_mode, max_resolution = FFCV_MATCH[mode]
    args = ["--files", str(listing), "--write-mode", write_mode, "--jpeg-quality", "90", "--out", str(out),
            "--workers", str(workers or usable_cores())]
    if max_resolution is not None:
        args += ["--max-resolution", str(max_resolution)]
    proc = subprocess.run([python, "-m", "benches.ffcv_writer", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"FFCV's writer failed in {python} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def format_rows(rows: list[dict[str, Any]]) -> str:
    header = ["dataset", "mode", "images", "convert img/s", "seconds", "file MB", "KB/img", "reads/s", "read MB/s",
              "FFCV setting", "FFCV img/s", "FFCV MB"]
    lines = [header] + [[r["dataset"], r["mode"], str(r["images"]), f"{r['images_per_s']:,.0f}",
                         f"{r['seconds']:.1f}", f"{r['bytes'] / 1e6:,.1f}", f"{r['bytes_per_image'] / 1e3:.1f}",
                         f"{r['reads_per_s']:,.0f}", f"{r['mb_per_s']:,.0f}", *_ffcv_cells(r.get("ffcv"))]
                        for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


def _ffcv_cells(ffcv: dict[str, Any] | None) -> list[str]:
    if ffcv is None:
        return ["-", "-", "-"]
    return [f"{ffcv['write_mode']} max {ffcv['max_resolution']}", f"{ffcv['images_per_s']:,.0f}",
            f"{ffcv['bytes'] / 1e6:,.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FASTSSL_SHARED_DATA", REPO.parent / "shared"
                                                                         / "data")), help="shared data folder")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N images per dataset")
    parser.add_argument("--workers", type=int, default=None, help="writer processes (default: one per CPU)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--datasets", nargs="+", choices=["cifar10-train", "imagenet-sample"],
                        default=["cifar10-train", "imagenet-sample"])
    parser.add_argument("--repeats", type=int, default=1, help="conversions per mode (median reported)")
    parser.add_argument("--ffcv-python", default=None, help="interpreter with ffcv 1.0.2: compare its writer")
    parser.add_argument("--out", type=Path, default=REPO / "bench_results" / "convert_speed.json")
    args = parser.parse_args()

    datasets = {}
    if "cifar10-train" in args.datasets and (args.data / "cifar10" / "train").is_dir():
        datasets["cifar10-train"] = list_samples(args.data / "cifar10" / "train")[0]
    if "imagenet-sample" in args.datasets and (args.data / "imagenet-sample").is_dir():
        datasets["imagenet-sample"] = list_flat_samples(args.data / "imagenet-sample")[0]
    if not datasets:
        raise SystemExit(f"no dataset found under {args.data}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, samples in datasets.items():
            for mode in args.modes:
                rows.append(measure(name, samples[: args.limit], mode, args.workers, Path(folder), args.repeats,
                                    args.ffcv_python))
                print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    print(format_rows(rows))
    save_json(args.out, {"results": rows, "machine": machine_description(), "workers": args.workers,
                         "repeats": args.repeats, "ffcv_match": FFCV_MATCH,
                         "note": "random access reads a just-written file (warm page cache)"})
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
