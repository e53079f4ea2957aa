"""Images/s of the Loader for one preset on one converted file, with DCT-scaled decode on and off.

    python -m benches.loader_speed --data ../shared/data/imagenet-sample --preset byol --size 224 \\
        --batch-size 64 --workers 2

``--data`` is a converted ``.fssl`` file, or a folder of images. A folder is converted once, as JPEG at
``--quality`` and ``--max-resolution``, into ``--work-dir`` (all labels 0). Compile time is reported
separately (``loader.warmup()``). Then one untimed warm-up epoch runs, then ``--epochs`` timed ones. The
result is printed and written as JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
from pathlib import Path
from typing import Any

import fastssl_loader as fsl
from benches.report import count_images, machine_description, measure_epochs, save_json

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
PRESETS = ("simclr", "byol", "vicreg", "barlow", "dino", "sslight")


def converted(data: Path, work_dir: Path, quality: int, max_resolution: int) -> tuple[Path, float | None]:
    """``data`` if it is a dataset file; else the folder's images converted once (cached by folder and settings)."""
    if data.is_file():
        return data, None
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images under {data}")
    key = hashlib.sha1(f"{data.resolve()}|{len(files)}|{quality}|{max_resolution}".encode()).hexdigest()[:12]
    path = work_dir / f"{data.name}-q{quality}-r{max_resolution}-{key}.fssl"
    if path.exists():
        return path, None
    work_dir.mkdir(parents=True, exist_ok=True)
    report = fsl.write_dataset(path, [(str(f), 0) for f in files], mode="jpeg", jpeg_quality=quality,
                               max_resolution=max_resolution, progress=False)
    return path, report.seconds


def views_for(preset: str, size: int) -> list[list[Any]]:
    """The preset's views at ``size`` (DINO/SSLight: ``size`` is the global crop size)."""
    make = getattr(fsl.presets, preset)
    return make(global_size=size) if preset in ("dino", "sslight") else make(size)


def measure(path: Path, views: list[list[Any]], args: argparse.Namespace, dct_scale: bool) -> dict[str, Any]:
    """Compile seconds, then images/s over timed epochs, for one loader configuration."""
    loader = fsl.Loader(str(path), args.batch_size, views, num_workers=args.workers, order="random",
                        drop_last=False, dct_scale=dct_scale)
    try:
        compile_s = loader.warmup()
        warmup_s, times, images, rss_mb = measure_epochs(lambda: count_images(loader, progress=False), args.epochs)
    finally:
        loader.close()
    rates = [images / t for t in times]
    return {"dct_scale": dct_scale, "images_per_epoch": images, "epoch_s": times,
            "images_per_s": statistics.median(rates), "images_per_s_range": [min(rates), max(rates)],
            "compile_s": compile_s, "warmup_epoch_s": warmup_s, "peak_rss_mb": rss_mb}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a .fssl file or a folder of images")
    p.add_argument("--preset", choices=PRESETS, default="byol")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="default: usable cores")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    p.add_argument("--dct", choices=("both", "on", "off"), default="both")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--max-resolution", type=int, default=512)
    p.add_argument("--work-dir", type=Path, default=Path("~/.cache/fastssl_loader/loader_speed").expanduser())
    p.add_argument("--out", type=Path, default=Path("bench_results/loader_speed.json"))
    args = p.parse_args(argv)

    path, convert_s = converted(args.data, args.work_dir, args.quality, args.max_resolution)
    views = views_for(args.preset, args.size)
    settings = {"both": (True, False), "on": (True,), "off": (False,)}[args.dct]
    runs = [measure(path, views, args, dct) for dct in settings]
    for run in runs:
        print(f"{args.preset}@{args.size} batch {args.batch_size} workers {args.workers or 'all'} "
              f"dct_scale={run['dct_scale']}: {run['images_per_s']:.1f} images/s "
              f"(range {run['images_per_s_range'][0]:.1f}-{run['images_per_s_range'][1]:.1f}; "
              f"compile {run['compile_s']:.1f} s)")
    doc = {"data": str(args.data), "file": str(path), "convert_s": convert_s, "preset": args.preset,
           "size": args.size, "batch_size": args.batch_size, "workers": args.workers, "epochs": args.epochs,
           "runs": runs, "machine": machine_description()}
    save_json(args.out, doc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
