"""FFCV 1.0.2's ``DatasetWriter`` on given source files: seconds and images/s per write mode.

Runs in FFCV's own interpreter (it is never a dependency of this project; see benches/ffcv_baseline.py for the
venv): ``benches/convert_speed.py --ffcv-python PATH`` calls ``python -m benches.ffcv_writer ...`` there and reads
the JSON back. Each source image is decoded with Pillow to an RGB array in FFCV's worker processes (what FFCV's
own ImageNet example does, through torchvision's ImageFolder), then stored by ``RGBImageField(write_mode=...,
max_resolution=..., jpeg_quality=...)``. The time covers the whole ``from_indexed_dataset`` call, worker start-up
included, as fastssl_loader's ``WriteReport.seconds`` does.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from benches.ffcv_baseline import _Images


def write_once(files: Sequence[str], labels: Sequence[int], folder: Path, workers: int, write_mode: str,
               max_resolution: int | None, quality: int) -> dict[str, Any]:
    """Write one .beton of ``files`` with one RGBImageField setting; its time, size and image count."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    path = folder / f"ffcv-{write_mode}-{max_resolution}.beton"
    start = time.perf_counter()
    writer = DatasetWriter(str(path), {
        "image": RGBImageField(write_mode=write_mode, max_resolution=max_resolution, jpeg_quality=quality),
        "label": IntField()}, num_workers=workers)
    writer.from_indexed_dataset(_Images(files, labels))
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    path.unlink()
    return {"write_mode": write_mode, "max_resolution": max_resolution, "jpeg_quality": quality,
            "images": len(files), "seconds": seconds, "images_per_s": len(files) / seconds, "bytes": size}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", required=True, type=Path, help="TSV of 'path<TAB>label' lines")
    p.add_argument("--write-mode", required=True, choices=["raw", "jpg", "smart", "proportion"])
    p.add_argument("--max-resolution", type=int, default=None)
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True, type=Path, help="JSON file for the result")
    a = p.parse_args(argv)
    rows = [line.split("\t") for line in a.files.read_text().splitlines() if line]
    import importlib.metadata as md

    with tempfile.TemporaryDirectory(prefix="ffcv-writer-") as folder:
        result = write_once([r[0] for r in rows], [int(r[1]) for r in rows], Path(folder), a.workers,
                            a.write_mode, a.max_resolution, a.jpeg_quality)
    a.out.write_text(json.dumps({"ffcv_version": md.version("ffcv"), **result}))


if __name__ == "__main__":
    main()
