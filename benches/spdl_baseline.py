"""SPDL's thread-pool image pipeline on the stored JPEGs, crop rung only: never a dependency of this project.

SPDL (``pip install spdl``) decodes through FFmpeg's shared libraries (libavutil 56-61). On Debian 12::

    apt-get install -y libavutil57 libavcodec59 libavformat59 libavfilter8 libswscale6 libavdevice59
    python -m venv /tmp/spdl-venv && /tmp/spdl-venv/bin/pip install spdl numpy psutil tqdm

then ``python -m benches --spdl-python /tmp/spdl-venv/bin/python``. The pipeline (``spdl.pipeline``): a source
of shuffled indices, ``workers`` threads that each read a file, demux it once and, per view, decode it with an
FFmpeg filter graph ``crop=w:h:x:y,scale=S:S:flags=bilinear[,hflip],format=rgb24`` (one decode per view: FFmpeg's
filters run inside the decode call), then batches of ``batch_size`` normalised to float32 [B, 3, S, S] in one
numpy pass per view. Crop boxes follow torchvision's ``RandomResizedCrop.get_params`` (10 tries, log-uniform
ratio, centred fallback). Views with pixel ops other than flip are refused: SPDL has no colour jitter, blur,
grayscale or solarize of its own.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benches.peer_runner import default_python, peer_parser, read_listing, run_peer, save_figures
from benches.report import Figure, count_images, measure_epochs

PIXEL_OPS = ("jitter", "gray", "blur", "solarize")


def check_crop_views(views: list[dict[str, Any]]) -> None:
    """Raise ValueError naming the first op SPDL's pipeline does not have."""
    for i, v in enumerate(views):
        for op in PIXEL_OPS:
            if v.get(op):
                raise ValueError(f"SPDL runs crop + flip views only; view {i} has {op}")


def crop_box(rng: np.random.Generator, height: int, width: int, scale: Sequence[float],
             ratio: Sequence[float]) -> tuple[int, int, int, int]:
    """(top, left, h, w) as torchvision's ``RandomResizedCrop.get_params`` draws it."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def filter_desc(box: tuple[int, int, int, int], size: int, flip: bool) -> str:
    top, left, h, w = box
    return (f"crop={w}:{h}:{left}:{top},scale={size}:{size}:flags=bilinear" + (",hflip" if flip else "")
            + ",format=pix_fmts=rgb24")


def load_views(file: str, views: list[dict[str, Any]], rng: np.random.Generator) -> list[np.ndarray]:
    """One sample: demux once, one filtered decode per view; HxWx3 uint8 per view."""
    import spdl.io

    try:
        packets = spdl.io.demux_image(Path(file).read_bytes())
        out = []
        for v in views:
            box = crop_box(rng, packets.height, packets.width, v["scale"], v["ratio"])
            frames = spdl.io.decode_packets(packets.clone(), filter_desc=filter_desc(box, v["size"],
                                                                                    rng.random() < v["flip"]))
            out.append(spdl.io.to_numpy(spdl.io.convert_frames(frames)))
        return out
    except Exception as e:  # noqa: BLE001 - FFmpeg's errors have no common type; name the file
        raise ValueError(f"SPDL could not load {file}: {e}") from e


def collate(samples: list[list[np.ndarray]], views: list[dict[str, Any]]) -> tuple[list[np.ndarray]]:
    """Per view: stack the uint8 images and normalise to float32 [B, 3, S, S] (x/255 - mean) / std."""
    batches = []
    for k, v in enumerate(views):
        stack = np.stack([s[k] for s in samples]).transpose(0, 3, 1, 2)
        norm = v["normalize"] or {"mean": [0.0] * 3, "std": [1.0] * 3}
        scale = (1 / (255 * np.asarray(norm["std"], np.float32))).reshape(1, 3, 1, 1)
        shift = (np.asarray(norm["mean"], np.float32) / np.asarray(norm["std"], np.float32)).reshape(1, 3, 1, 1)
        batches.append(stack * scale - shift)
    return batches,


def build_epoch(files: Sequence[str], views: list[dict[str, Any]], batch_size: int, workers: int, epoch: int,
                seed: int = 0) -> Any:
    """One epoch's SPDL pipeline (shuffled order and crop draws keyed by seed, epoch and sample)."""
    from spdl.pipeline import PipelineBuilder

    order = np.random.default_rng([seed, epoch]).permutation(len(files))
    return (PipelineBuilder()
            .add_source(order.tolist())
            .pipe(lambda i: load_views(files[i], views, np.random.default_rng([seed, epoch, i])),
                  concurrency=workers)
            .aggregate(batch_size)
            .pipe(lambda samples: collate(samples, views))
            .add_sink(3)
            .build(num_threads=workers))


def run_spdl(files: Sequence[str], views: list[dict[str, Any]], *, batch_size: int, workers: int, epochs: int,
             group: str, config: dict[str, Any], progress: bool = True) -> Figure:
    """Measure SPDL: one warm-up epoch (pipeline start-up included), then ``epochs`` timed ones."""
    check_crop_views(views)
    epoch = iter(range(1 + epochs))

    def run_epoch() -> int:
        pipeline = build_epoch(files, views, batch_size, workers, next(epoch))
        with pipeline.auto_stop():
            return count_images(pipeline.get_iterator(timeout=600), len(files), f"spdl {config}", progress)

    warmup, times, images, rss = measure_epochs(run_epoch, epochs)
    return Figure(group, "spdl", {**config, "mode": "decode-per-view"}, images, times, warmup, peak_rss_mb=rss)


def spdl_figures(files: Sequence[str], labels: Sequence[int], views: list[dict[str, Any]], work_dir: Path, *,
                 python: str | None, batch_size: int, workers: int, epochs: int, group: str,
                 config: dict[str, Any]) -> tuple[list[Figure], str]:
    """SPDL's figure in ``python`` (this interpreter when spdl imports here); ([], why) when skipped/failed."""
    check_crop_views(views)
    python = python or default_python("spdl.io")
    if python is None:
        return [], ("skipped: spdl is not importable here (see benches/spdl_baseline.py to install it in a venv "
                    "and pass --spdl-python)")
    return run_peer("spdl", "benches.spdl_baseline", python, files, labels, views, work_dir,
                    batch_size=batch_size, workers=workers, epochs=epochs, group=group, config=config)


def main(argv: Sequence[str] | None = None) -> None:
    a = peer_parser(__doc__.split("\n\n")[0]).parse_args(argv)
    import importlib.metadata as md
    import json

    files, _ = read_listing(a.files)
    views = json.loads(Path(a.views).read_text())
    fig = run_spdl(files, views, batch_size=a.batch_size, workers=a.workers, epochs=a.epochs, group=a.group,
                   config=json.loads(a.config), progress=not a.no_progress)
    save_figures(a.out, md.version("spdl_io"), [fig])


if __name__ == "__main__":
    sys.exit(main())
