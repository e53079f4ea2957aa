"""NVIDIA DALI's CPU pipelines on the stored JPEGs, with the same views: never a dependency of this project.

The PyPI wheel runs CPU-only pipelines (``device_id=None``, no GPU needed). Install it in its own venv::

    python -m venv /tmp/dali-venv && /tmp/dali-venv/bin/pip install nvidia-dali-cuda130 numpy psutil tqdm

then ``python -m benches --dali-python /tmp/dali-venv/bin/python`` runs this module there (through
``benches.peer_runner``). Two forms of each view list, ``num_threads`` = workers, batch = the bench's:

* ``decode-once``: ``fn.decoders.image`` (device "cpu") once per image, then ``fn.random_resized_crop`` per view
  (solo-learn's DALI pipeline);
* ``roi-decode``: ``fn.decoders.image_random_crop`` per view (libjpeg-turbo decodes only the crop's region, one
  decode per view) + ``fn.resize`` to the output size.

Then, per view, DALI's own operators with the same ranges and probabilities: ``fn.random.coin_flip`` decides
per image, through DALI's conditional execution (``enable_conditionals=True``: an ``if`` on the coin runs the op
only on the images whose coin fired; this measured 1.6x faster at rung 5 than choosing by multiplication, which
runs every op on every image). Colour jitter
``fn.color_twist`` (brightness, contrast, saturation factors; hue in degrees; fixed order, where torchvision
shuffles it), grayscale ``fn.color_space_conversion`` to GRAY replicated to 3 channels, ``fn.gaussian_blur``
(same window, sigma U(lo, hi) per image), solarize by arithmetic (``x >= t`` -> ``255 - x``), and
``fn.crop_mirror_normalize`` for the flip, the normalisation and float32 CHW output (like ours and
torchvision's). An op with p 0 is left out; p 1 is applied without a coin.

The reader (``fn.readers.file``, shuffled) pads the last batch by repeating a sample so that every epoch has
whole batches; images/s count the distinct images of an epoch (the padding is extra work DALI does).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Sequence

from benches.peer_runner import default_python, peer_parser, read_listing, run_peer, save_figures
from benches.report import Figure, count_images, measure_epochs

MODES = ("decode-once", "roi-decode")


def _fires(p: float) -> Any:
    """A per-image coin (p 1: always, without drawing one), for an ``if`` in a conditional pipeline."""
    from nvidia.dali import fn, types

    return True if p >= 1.0 else fn.random.coin_flip(probability=p, dtype=types.BOOL)


def _prob(spec: Any) -> float:
    """The probability of an op in the spec (0 when absent)."""
    if not spec:
        return 0.0
    return float(spec if isinstance(spec, (int, float)) else spec["p"])


def _augment(image: Any, view: dict[str, Any]) -> Any:
    """The view's pixel ops in the ladder's order (jitter, gray, blur, solarize), then flip + normalise."""
    from nvidia.dali import fn, types

    j, b, s = view["jitter"], view["blur"], view["solarize"]
    if _prob(j) > 0:
        if _fires(_prob(j)):
            hue = [h * 360.0 for h in j["hue"]]  # torchvision's hue is a fraction of the circle; DALI: degrees
            image = fn.color_twist(image, brightness=fn.random.uniform(range=j["brightness"]),
                                   contrast=fn.random.uniform(range=j["contrast"]),
                                   saturation=fn.random.uniform(range=j["saturation"]),
                                   hue=fn.random.uniform(range=hue))
    if _prob(view["gray"]) > 0:
        if _fires(_prob(view["gray"])):
            gray = fn.color_space_conversion(image, image_type=types.RGB, output_type=types.GRAY)
            image = fn.cat(gray, gray, gray, axis=2)
    if _prob(b) > 0:
        if _fires(_prob(b)):
            image = fn.gaussian_blur(image, window_size=b["kernel"], sigma=fn.random.uniform(range=b["sigma"]))
    if _prob(s) > 0:
        if _fires(_prob(s)):
            high = image >= s["threshold"]  # pixel-wise select by arithmetic: 255 - x where x >= threshold
            image = fn.cast(high * (255 - image) + (high ^ True) * image, dtype=types.UINT8)
    norm = view["normalize"] or {"mean": [0.0] * 3, "std": [1.0] * 3}
    return fn.crop_mirror_normalize(image, dtype=types.FLOAT, output_layout="CHW",
                                    mean=[m * 255 for m in norm["mean"]], std=[s * 255 for s in norm["std"]],
                                    mirror=fn.random.coin_flip(probability=view["flip"]))


def build_pipeline(file_list: Path, views: list[dict[str, Any]], mode: str, batch_size: int, workers: int,
                   seed: int = 0) -> Any:
    """A built CPU pipeline whose outputs are one float32 [B, 3, S, S] batch per view, then the labels."""
    from nvidia.dali import fn, pipeline_def, types

    if mode not in MODES:
        raise ValueError(f"unknown DALI mode {mode!r}: choose from {MODES}")

    @pipeline_def(batch_size=batch_size, num_threads=workers, device_id=None, seed=seed, enable_conditionals=True)
    def pipeline() -> tuple[Any, ...]:
        jpegs, labels = fn.readers.file(file_list=str(file_list), random_shuffle=True, pad_last_batch=True,
                                        name="reader")
        decoded = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB) if mode == "decode-once" else None
        outs = []
        for v in views:
            size = [v["size"], v["size"]]
            if decoded is not None:
                crop = fn.random_resized_crop(decoded, size=size, random_area=v["scale"],
                                              random_aspect_ratio=v["ratio"], num_attempts=10, antialias=True)
            else:
                region = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB,
                                                       random_area=v["scale"], random_aspect_ratio=v["ratio"],
                                                       num_attempts=10)
                crop = fn.resize(region, size=size, antialias=True)
            outs.append(_augment(crop, v))
        return (*outs, labels)

    pipe = pipeline()
    pipe.build()
    return pipe


def _dali_file_list(files: Sequence[str], labels: Sequence[int], path: Path) -> Path:
    """DALI's 'path label' list; a path with white space cannot be written there and is refused by name."""
    bad = [f for f in files if any(c.isspace() for c in f)]
    if bad:
        raise ValueError(f"DALI's file list cannot hold a path with white space: {bad[0]!r}")
    path.write_text("".join(f"{f} {int(lab)}\n" for f, lab in zip(files, labels)))
    return path


def _epoch_batches(pipe: Any, images: int, batch_size: int, n_views: int) -> Any:
    """One epoch of (views,) batches as numpy arrays, the padded tail cut off."""
    import numpy as np

    for start in range(0, images, batch_size):
        outs = pipe.run()
        keep = min(batch_size, images - start)
        yield [np.asarray(outs[k].as_tensor())[:keep] for k in range(n_views)],


def run_dali(files: Sequence[str], labels: Sequence[int], views: list[dict[str, Any]], mode: str, *,
             batch_size: int, workers: int, epochs: int, group: str, config: dict[str, Any],
             list_path: Path, progress: bool = True) -> Figure:
    """Measure one DALI form: pipeline build excluded, one warm-up epoch, ``epochs`` timed ones."""
    pipe = build_pipeline(_dali_file_list(files, labels, list_path), views, mode, batch_size, workers)
    n = len(files)
    if pipe.epoch_size("reader") != n:
        raise RuntimeError(f"DALI's reader sees {pipe.epoch_size('reader')} files, the list has {n}")
    desc = f"dali {mode} {config}"
    warmup, times, images, rss = measure_epochs(
        lambda: count_images(_epoch_batches(pipe, n, batch_size, len(views)), n, desc, progress), epochs)
    del pipe
    return Figure(group, f"dali-{mode}", {**config, "mode": mode, "batches": math.ceil(n / batch_size)},
                  images, times, warmup, peak_rss_mb=rss)


def dali_figures(files: Sequence[str], labels: Sequence[int], views: list[dict[str, Any]], work_dir: Path, *,
                 python: str | None, batch_size: int, workers: int, epochs: int, group: str,
                 config: dict[str, Any], modes: Sequence[str] = MODES) -> tuple[list[Figure], str]:
    """Both DALI forms in ``python`` (this interpreter when DALI imports here); ([], why) when skipped/failed."""
    python = python or default_python("nvidia.dali")
    if python is None:
        return [], ("skipped: nvidia.dali is not importable here (see benches/dali_baseline.py to install it in "
                    "a venv and pass --dali-python)")
    return run_peer("dali", "benches.dali_baseline", python, files, labels, views, work_dir,
                    batch_size=batch_size, workers=workers, epochs=epochs, group=group, config=config,
                    extra=["--modes", ",".join(modes)])


def main(argv: Sequence[str] | None = None) -> None:
    p = peer_parser(__doc__.split("\n\n")[0])
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    a = p.parse_args(argv)
    import json

    import nvidia.dali

    files, labels = read_listing(a.files)
    views, config = json.loads(Path(a.views).read_text()), json.loads(a.config)
    figs = [run_dali(files, labels, views, mode, batch_size=a.batch_size, workers=a.workers, epochs=a.epochs,
                     group=a.group, config=config, list_path=a.out.with_suffix(".dali-list.txt"),
                     progress=not a.no_progress) for mode in a.modes.split(",")]
    save_figures(a.out, nvidia.dali.__version__, figs)


if __name__ == "__main__":
    sys.exit(main())
