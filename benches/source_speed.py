"""What does each dataset source cost? The same images as an image folder, a list file, WebDataset shards
and a Parquet file (Hugging Face layout), each indexed, read sample by sample and converted.

The images of ``--data`` (an ImageFolder or a flat folder of JPEGs; default ``../shared/data/imagenet-sample``)
are written once into the other layouts in a temporary folder (shards and Parquet row groups of 100).
Per source and round: ``index_s`` (building the samples), ``read_s`` (``samples[i]`` for every i: the bytes
the writer receives) and ``convert_s`` (``write_dataset`` in passthrough mode in this process, so the
source's cost is not hidden by worker processes). The image folder's samples are paths, so its file
reads happen inside ``convert_s`` (its ``read_s`` is near 0); the other sources read bytes in ``read_s``.
Rounds interleave the sources; the minimum is kept.
Prints a table and writes ``bench_results/source_speed.json``.

    python -m benches.source_speed [--data FOLDER] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from benches.report import machine_description, save_json
from fastssl_loader.sources.imagefolder import list_flat_samples, list_samples
from fastssl_loader import write_dataset
from fastssl_loader.sources.listfile import listfile_samples
from fastssl_loader.sources.webdataset import webdataset_samples

REPO = Path(__file__).resolve().parent.parent
GROUP = 100  # images per shard and per Parquet row group


def build_layouts(images: list[tuple[str, int]], folder: Path) -> dict[str, Callable[[], Any]]:
    """Write the images as a list file, shards and Parquet; return source name -> function making samples."""
    lines = [f"{path},{label}" for path, label in images]
    (folder / "list.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    for start in range(0, len(images), GROUP):
        with tarfile.open(folder / f"shard-{start // GROUP:06d}.tar", "w") as tar:
            for k, (path, label) in enumerate(images[start:start + GROUP], start):
                tar.add(path, arcname=f"{k:08d}.jpg")
                info = tarfile.TarInfo(f"{k:08d}.cls")
                info.size = len(str(label))
                tar.addfile(info, io.BytesIO(str(label).encode()))
    last = (len(images) - 1) // GROUP
    layouts = {"list file": lambda: listfile_samples(folder / "list.csv")[0],
               "webdataset": lambda: webdataset_samples(str(folder / f"shard-{{000000..{last:06d}}}.tar"))[0]}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return layouts
    from fastssl_loader.sources.huggingface import huggingface_samples
    table = pa.table({"image": [{"bytes": Path(p).read_bytes(), "path": Path(p).name} for p, _ in images],
                      "label": [label for _, label in images]})
    pq.write_table(table, folder / "train-00000-of-00001.parquet", row_group_size=GROUP)
    layouts["parquet"] = lambda: huggingface_samples(folder / "train-00000-of-00001.parquet")[0]
    return layouts


def measure(make: Callable[[], Any], out: Path) -> dict[str, float]:
    start = time.perf_counter()
    samples = make()
    index_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(len(samples)):
        samples[i]
    read_s = time.perf_counter() - start
    report = write_dataset(out, samples, mode="passthrough", num_workers=0, progress=False)
    out.unlink()
    return {"index_s": index_s, "read_s": read_s, "convert_s": report.seconds, "images": report.written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "imagenet-sample")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench_results" / "source_speed.json")
    args = parser.parse_args()
    flat = not any(p.is_dir() for p in args.data.iterdir())
    images = (list_flat_samples if flat else list_samples)(args.data)[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        layouts = {"image folder": lambda: images, **build_layouts(images, folder)}
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for name, make in layouts.items():
                result = measure(make, folder / "out.fssl")
                best[name] = {k: min(v, best.get(name, result)[k]) for k, v in result.items()}
    base = best["image folder"]["convert_s"]
    print(f"{len(images)} images from {args.data}, passthrough, in-process writer, min of {args.rounds} rounds")
    print(f"{'source':>12}  {'index s':>8}  {'read s':>7}  {'convert s':>9}  {'images/s':>8}  {'vs folder':>9}")
    for name, r in best.items():
        print(f"{name:>12}  {r['index_s']:8.3f}  {r['read_s']:7.3f}  {r['convert_s']:9.2f}  "
              f"{r['images'] / r['convert_s']:8.0f}  {base / r['convert_s']:9.2f}x")
    save_json(args.out, {"data": str(args.data), "images": len(images), "rounds": args.rounds, "results": best,
                         "machine": machine_description()})
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
