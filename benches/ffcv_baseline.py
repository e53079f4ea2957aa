"""FFCV 1.0.2 on the same images, where it is importable: never a dependency of this project.

FFCV stores the images itself (``RGBImageField(write_mode='jpg', max_resolution=512, jpeg_quality=90)``, the same
settings as our JPEG storage) and loads them with its ``RandomResizedCropRGBImageDecoder`` + flip +
``NormalizeImage`` (float32 NCHW, like our output). One view is one pipeline; two views are two pipelines of the
same field (``PipelineSpec('image', decoder=...)``), the FFCV-SSL setup, which decodes every image twice.

FFCV pins packages (opencv-python, ...) that clash with this project's, so it is best installed in its own
virtual environment that sees the system packages::

    apt-get install -y libturbojpeg0-dev libopencv-dev pkg-config
    python -m venv --system-site-packages /tmp/ffcv-venv && /tmp/ffcv-venv/bin/pip install ffcv==1.0.2 psutil tqdm

then ``python -m benches --ffcv-python /tmp/ffcv-venv/bin/python`` runs this module in that interpreter
(``python -m benches.ffcv_baseline ...``) and reads its figures back as JSON.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benches.peer_runner import REPO_ROOT, figures_from_json, read_listing, write_listing
from benches.report import Figure, count_images, measure_epochs

# fastssl_loader.ops' values, repeated: this module also runs in FFCV's interpreter, which lacks our dependencies
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def ffcv_importable() -> bool:
    return importlib.util.find_spec("ffcv") is not None


class _Images:
    """(RGB uint8 array, label) per file: what FFCV's DatasetWriter consumes."""

    def __init__(self, files: Sequence[str], labels: Sequence[int]) -> None:
        self.files, self.labels = list(files), list(labels)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        from PIL import Image

        with Image.open(self.files[i]) as im:
            return np.asarray(im.convert("RGB")), int(self.labels[i])


def write_beton(files: Sequence[str], labels: Sequence[int], path: Path, workers: int,
                max_resolution: int = 512, quality: int = 90) -> Path:
    """Write an FFCV dataset of the files (reused when it exists)."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    if not path.is_file():
        tmp = path.with_suffix(".tmp.beton")
        writer = DatasetWriter(str(tmp), {
            "image": RGBImageField(write_mode="jpg", max_resolution=max_resolution, jpeg_quality=quality),
            "label": IntField()}, num_workers=workers)
        writer.from_indexed_dataset(_Images(files, labels))
        tmp.replace(path)
    return path


def _image_pipeline(size: int) -> list[Any]:
    from ffcv.fields.decoders import RandomResizedCropRGBImageDecoder
    from ffcv.transforms import NormalizeImage, RandomHorizontalFlip, ToTensor, ToTorchImage

    mean, std = np.array(IMAGENET_MEAN) * 255, np.array(IMAGENET_STD) * 255
    return [RandomResizedCropRGBImageDecoder((size, size)), RandomHorizontalFlip(),
            NormalizeImage(mean, std, np.float32), ToTensor(), ToTorchImage()]


def run_ffcv(beton: Path, views: int, size: int, batch_size: int, workers: int, epochs: int,
             progress: bool = True) -> Figure:
    """FFCV's loader with ``views`` pipelines over the image field (each decodes the image again)."""
    from ffcv.fields.decoders import IntDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.pipeline import PipelineSpec
    from ffcv.transforms import ToTensor

    pipelines: dict[str, Any] = {"image": _image_pipeline(size), "label": [IntDecoder(), ToTensor()]}
    for k in range(1, views):
        crop, *rest = _image_pipeline(size)
        pipelines[f"image{k}"] = PipelineSpec("image", decoder=crop, transforms=rest)
    loader = Loader(str(beton), batch_size=batch_size, num_workers=workers, order=OrderOption.RANDOM,
                    drop_last=False, pipelines=pipelines, seed=0, os_cache=True)
    total = loader.reader.num_samples
    warmup, times, images, rss = measure_epochs(
        lambda: count_images(loader, total, f"ffcv {views} view(s)", progress), epochs)
    return Figure("ffcv", f"ffcv-{views}view", {"storage": "jpeg", "size": size, "workers": workers,
                                                 "n_views": views, "views": f"{views}x{size}"},
                  images, times, warmup, peak_rss_mb=rss)


def ffcv_figures(files: Sequence[str], labels: Sequence[int], work_dir: Path, *, size: int, batch_size: int,
                 workers: int, epochs: int, python: str | None = None, progress: bool = True
                 ) -> tuple[list[Figure], str]:
    """One- and two-view FFCV figures and a status line; runs in ``python`` when given, else in-process."""
    if python is None and not ffcv_importable():
        return [], ("skipped: ffcv is not importable here (see benches/ffcv_baseline.py to install it in a venv "
                    "and pass --ffcv-python)")
    work_dir.mkdir(parents=True, exist_ok=True)
    listing = write_listing(files, labels, work_dir / "ffcv_files.tsv")
    out = work_dir / "ffcv_figures.json"
    out.unlink(missing_ok=True)
    args = ["--files", str(listing), "--work-dir", str(work_dir), "--size", str(size), "--batch-size",
            str(batch_size), "--workers", str(workers), "--epochs", str(epochs), "--out", str(out)]
    if python is None:
        main(args + ([] if progress else ["--no-progress"]))
    else:
        proc = subprocess.run([python, "-m", "benches.ffcv_baseline", *args, "--no-progress"], cwd=REPO_ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return [], f"failed in {python} (exit {proc.returncode}): " + " | ".join(tail)
    doc = json.loads(out.read_text())
    return figures_from_json(doc["figures"]), f"ran: ffcv {doc['ffcv_version']}"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", required=True, help="TSV of 'path<TAB>label' lines")
    p.add_argument("--work-dir", required=True, type=Path, help="where the .beton file is written")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", required=True, type=Path, help="JSON file for the figures")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    files, labels = read_listing(a.files)
    import importlib.metadata as md

    beton = write_beton(files, labels, a.work_dir / f"ffcv-n{len(files)}-q90-r512.beton", a.workers)
    figs = [run_ffcv(beton, v, a.size, a.batch_size, a.workers, a.epochs, not a.no_progress) for v in (1, 2)]
    a.out.write_text(json.dumps({"ffcv_version": md.version("ffcv"), "figures": [f.to_json() for f in figs]},
                                default=str))


if __name__ == "__main__":
    sys.exit(main())
