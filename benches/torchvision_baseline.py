"""torchvision's DataLoader over the image files with the same views, in its two fastest reasonable forms.

* ``v1-pil``: PIL decode, ``torchvision.transforms`` (v1) on PIL images, ``ToTensor`` + ``Normalize`` at the end
  (what most SSL code bases run);
* ``v2-tensor``: ``torchvision.io`` decode of the file bytes, ``torchvision.transforms.v2`` on uint8 tensors,
  ``ToDtype(float32, scale=True)`` + ``Normalize`` at the end.

The transforms come from ``fastssl_loader.reference.to_torchvision`` (the one mapping of our ops). Blur is either
torchvision's ``GaussianBlur(kernel, sigma)`` or PIL's ``ImageFilter.GaussianBlur(radius=sigma)`` (lightly's
choice); :func:`choose_blur` times both on a small sample so each variant runs with its faster blur. Both
variants output float32 normalised [B, 3, H, W] tensors, one per view.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from fastssl_loader import ops
from fastssl_loader.presets import View
from fastssl_loader.reference import BLURS, MultiViewDataset, load_image, to_torchvision

VARIANTS = ("v1-pil", "v2-tensor")


def api_of(variant: str) -> str:
    """The torchvision API ("v1" or "v2") a variant runs."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown torchvision variant {variant!r}: choose from {VARIANTS}")
    return variant.split("-")[0]


def build_transform(view: View, variant: str, blur: str = "torchvision") -> Callable:
    """The torchvision Compose for one of our views in ``variant``."""
    return to_torchvision(view, api_of(variant), blur=blur)


def make_loader(files: Sequence[str | Path], labels: Sequence[int], views: Sequence[View], variant: str,
                blur: str, batch_size: int, workers: int, seed: int = 0) -> torch.utils.data.DataLoader:
    """The baseline DataLoader: shuffled, ``workers`` persistent worker processes, no dropped images."""
    if len(files) != len(labels):
        raise ValueError(f"{len(files)} files but {len(labels)} labels")
    dataset = MultiViewDataset([(str(f), int(y)) for f, y in zip(files, labels)],
                               [build_transform(v, variant, blur) for v in views], api_of(variant))
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
        drop_last=False, generator=torch.Generator().manual_seed(seed))


def choose_blur(files: Sequence[str | Path], view: View, variant: str, samples: int = 24,
                seed: int = 0) -> tuple[str, dict[str, float]]:
    """Time both blur implementations of ``view``'s blur (fired) on crops of ``samples`` files; return the faster
    and the ms/image of each."""
    import random

    api = api_of(variant)
    blurs = [op for op in view if isinstance(op, ops.GaussianBlur)]
    if not blurs:
        raise ValueError("choose_blur needs a view with a GaussianBlur op")
    fired = ops.GaussianBlur(blurs[0].kernel_size, blurs[0].sigma, p=1.0)
    random.seed(seed)
    torch.manual_seed(seed)
    crop = to_torchvision(view[:1], api, to_float=False)
    imgs = [crop(load_image(str(f), api)) for f in list(files)[:samples]]
    if not imgs:
        raise ValueError("choose_blur needs at least one image file")
    timings = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker process
    try:
        for impl in BLURS:
            op = to_torchvision([view[0], fired], api, blur=impl, to_float=False).transforms[-1]
            op(imgs[0])  # the first call may build kernels
            start = time.perf_counter()
            for img in imgs:
                op(img)
            timings[impl] = (time.perf_counter() - start) / len(imgs) * 1e3
    finally:
        torch.set_num_threads(threads)
    return min(timings, key=timings.get), timings


def run_torchvision(files: Sequence[str | Path], labels: Sequence[int], views: Sequence[View], *,
                    variant: str, blur: str, batch_size: int, workers: int, epochs: int, group: str,
                    config: dict[str, Any], progress: bool = True) -> Any:
    """Measure one DataLoader variant: warm-up epoch (worker start-up included), then ``epochs`` timed ones."""
    import gc

    from benches.ladder import has_blur, views_config
    from benches.report import Figure, count_images, measure_epochs

    loader = make_loader(files, labels, views, variant, blur, batch_size, workers)
    desc = f"torchvision-{variant} {config}"
    warmup, times, images, rss = measure_epochs(lambda: count_images(loader, len(files), desc, progress), epochs)
    del loader  # persistent workers stop with their iterator
    gc.collect()
    cfg = {**config, "workers": workers, **views_config(list(views))}
    if has_blur(list(views)):
        cfg["blur"] = blur
    return Figure(group, f"torchvision-{variant}", cfg, images, times, warmup, peak_rss_mb=rss)
