"""Images/s of the Loader on one file against the same source converted into several shard files.

    python -m benches.multi_file_speed --data ../shared/data/imagenet-sample --shards 4 --preset byol \\
        --size 224 --batch-size 64 --workers 2 --repeats 3

The folder's images are converted once, as JPEG at ``--quality`` and ``--max-resolution``, into one file and
into ``--shards`` files (``write_dataset(..., shard=(k, n))``, with a ``.fsslm`` manifest), cached in
``--work-dir``. Both loaders compile and run one untimed epoch, then their timed epochs alternate
(``--repeats`` each) so that a busy machine slows both alike; the medians, the best epochs and their ratios
are printed and written as JSON to ``--out``. The epochs hold the same batches (same order, same pixels), so
the ratio is the cost of reading from several files.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from pathlib import Path

import fastssl_loader as fsl
from benches.loader_speed import IMAGE_SUFFIXES, PRESETS, views_for
from benches.report import count_images, machine_description, save_json


def convert(data: Path, work_dir: Path, shards: int, quality: int, max_resolution: int) -> tuple[Path, Path]:
    """(one file, manifest of ``shards`` files) of the folder's images, converted once (cached)."""
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images under {data}")
    key = hashlib.sha1(f"{data.resolve()}|{len(files)}|{quality}|{max_resolution}".encode()).hexdigest()[:12]
    folder = work_dir / f"{data.name}-q{quality}-r{max_resolution}-{key}"
    whole, manifest = folder / "whole.fssl", folder / f"shards-{shards}.fsslm"
    folder.mkdir(parents=True, exist_ok=True)
    samples = [(str(f), 0) for f in files]
    options = dict(mode="jpeg", jpeg_quality=quality, max_resolution=max_resolution, progress=False)
    if not whole.exists():
        fsl.write_dataset(whole, samples, **options)
    if not manifest.exists():
        parts = [folder / f"part-{k}-of-{shards}.fssl" for k in range(shards)]
        for k, part in enumerate(parts):
            fsl.write_dataset(part, samples, shard=(k, shards), **options)
        fsl.write_manifest(manifest, parts)
    return whole, manifest


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a folder of images")
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--preset", choices=PRESETS, default="byol")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="default: usable cores")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per loader, alternating")
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--max-resolution", type=int, default=512)
    p.add_argument("--work-dir", type=Path, default=Path("~/.cache/fastssl_loader/multi_file_speed").expanduser())
    p.add_argument("--out", type=Path, default=Path("bench_results/multi_file_speed.json"))
    args = p.parse_args(argv)
    if args.shards < 2 or args.repeats < 1:
        p.error("--shards must be >= 2 and --repeats >= 1")
    whole, manifest = convert(args.data, args.work_dir, args.shards, args.quality, args.max_resolution)
    views = views_for(args.preset, args.size)
    loaders = {name: fsl.Loader(source, args.batch_size, views, num_workers=args.workers, seed=0)
               for name, source in (("one_file", whole), (f"{args.shards}_files", manifest))}
    seconds: dict[str, list[float]] = {name: [] for name in loaders}
    images = {name: count_images(loader, progress=False) for name, loader in loaders.items()}  # compile + warm
    for _ in range(args.repeats):
        for name, loader in loaders.items():
            start = time.perf_counter()
            if count_images(loader, progress=False) != images[name]:
                raise RuntimeError(f"{name}: an epoch delivered another number of images")
            seconds[name].append(time.perf_counter() - start)
    rates = {name: images[name] / statistics.median(s) for name, s in seconds.items()}
    best = {name: images[name] / min(s) for name, s in seconds.items()}
    (one, many), (best_one, best_many) = rates.values(), best.values()
    result = {"args": vars(args), "machine": machine_description(), "images_per_epoch": images,
              "epoch_seconds": seconds, "images_per_s_median": rates, "images_per_s_best": best,
              "ratio_files_over_one": many / one, "ratio_best_files_over_one": best_many / best_one}
    for name in rates:
        print(f"{name:>10}: {rates[name]:8.1f} images/s median, {best[name]:8.1f} best of {args.repeats} epochs")
    print(f"{args.shards} files / one file: {many / one:.3f} (medians), {best_many / best_one:.3f} (best epochs)")
    save_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
