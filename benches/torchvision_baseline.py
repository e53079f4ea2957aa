"""torchvision's DataLoader over the image files with the same views, in its two fastest reasonable forms.

* ``v1-pil``: PIL decode, ``torchvision.transforms`` (v1) on PIL images, ``ToTensor`` + ``Normalize`` at the end
  (what most SSL code bases run);
* ``v2-tensor``: ``torchvision.io.decode_jpeg`` of the file bytes, ``torchvision.transforms.v2`` on uint8
  tensors, ``ToDtype(float32, scale=True)`` + ``Normalize`` at the end.

Blur is either torchvision's ``GaussianBlur(kernel, sigma)`` or PIL's ``ImageFilter.GaussianBlur(radius=sigma)``
(lightly's choice, which approximates the Gaussian with box filters and has no kernel size); on tensors the PIL
blur converts to PIL and back. :func:`choose_blur` times both on a small sample so each variant runs with its
faster blur. Both variants output float32 normalised [B, 3, H, W] tensors, one per view.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image, ImageFilter

from benches.ladder import ViewSpec

VARIANTS = ("v1-pil", "v2-tensor")
BLURS = ("torchvision", "pil")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown torchvision variant {variant!r}: choose from {VARIANTS}")
    return variant


class PILGaussianBlur:
    """lightly's blur: ``ImageFilter.GaussianBlur(radius=sigma)``, sigma ~ U(sigma_min, sigma_max) per call.

    Accepts PIL images, or uint8 CHW tensors (converted to PIL and back) for the v2 tensor pipeline.
    """

    def __init__(self, sigma: tuple[float, float]) -> None:
        self.sigma = sigma

    def __call__(self, img: Any) -> Any:
        radius = random.uniform(*self.sigma)
        if isinstance(img, Image.Image):
            return img.filter(ImageFilter.GaussianBlur(radius=radius))
        from torchvision.transforms.v2 import functional as F

        return F.pil_to_tensor(F.to_pil_image(img).filter(ImageFilter.GaussianBlur(radius=radius)))

    def __repr__(self) -> str:
        return f"PILGaussianBlur(sigma={self.sigma})"


def _transforms_module(variant: str) -> Any:
    check_variant(variant)
    if variant == "v1-pil":
        from torchvision import transforms
        return transforms
    from torchvision.transforms import v2
    return v2


def _crop(spec: ViewSpec, variant: str) -> Callable:
    T = _transforms_module(variant)
    interp = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[spec.interpolation]
    return T.RandomResizedCrop(spec.size, scale=spec.scale, interpolation=interp, antialias=True)


def _blur(spec: ViewSpec, variant: str, blur: str) -> Callable:
    """``RandomApply([blur], p=spec.blur_p)`` with torchvision's or PIL's Gaussian blur."""
    if blur not in BLURS:
        raise ValueError(f"unknown blur implementation {blur!r}: choose from {BLURS}")
    T = _transforms_module(variant)
    op = T.GaussianBlur(spec.blur_kernel, sigma=spec.blur_sigma) if blur == "torchvision" else \
        PILGaussianBlur(spec.blur_sigma)
    return T.RandomApply([op], p=spec.blur_p)


def build_transform(spec: ViewSpec, variant: str, blur: str = "torchvision") -> Callable:
    """The torchvision Compose for one view: same ops, parameters and order as :func:`ladder.fastssl_views`."""
    T = _transforms_module(variant)
    steps: list[Any] = [_crop(spec, variant), T.RandomHorizontalFlip(spec.flip_p)]
    if spec.jitter is not None:
        steps.append(T.RandomApply([T.ColorJitter(*spec.jitter)], p=spec.jitter_p))
    if spec.gray_p is not None:
        steps.append(T.RandomGrayscale(p=spec.gray_p))
    if spec.blur_p is not None:
        steps.append(_blur(spec, variant, blur))
    if spec.solarize_p is not None:
        steps.append(T.RandomSolarize(spec.solarize_threshold, p=spec.solarize_p))
    if variant == "v1-pil":
        steps += [T.ToTensor(), T.Normalize(spec.mean, spec.std)]
    else:
        steps += [T.ToDtype(torch.float32, scale=True), T.Normalize(spec.mean, spec.std)]
    return T.Compose(steps)


def load_image(path: str | Path, variant: str) -> Any:
    """Decode one file the way ``variant`` does: PIL RGB image, or uint8 CHW tensor via torchvision.io."""
    if variant == "v1-pil":
        with Image.open(path) as im:
            return im.convert("RGB")
    from torchvision.io import ImageReadMode, decode_jpeg

    data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
    return decode_jpeg(data, mode=ImageReadMode.RGB)


class MultiViewFiles(torch.utils.data.Dataset):
    """Image files -> (tuple of views, label): each file is decoded once and every view transforms it."""

    def __init__(self, files: Sequence[str | Path], labels: Sequence[int], transforms: Sequence[Callable],
                 variant: str) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files = [str(f) for f in files]
        self.labels = list(labels)
        self.transforms = list(transforms)
        self.variant = check_variant(variant)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, ...], int]:
        try:
            img = load_image(self.files[i], self.variant)
        except Exception as e:  # name the file: a bare decoder error does not say which one
            raise ValueError(f"cannot decode sample {i} ({self.files[i]}): {e}") from e
        return tuple(t(img) for t in self.transforms), self.labels[i]


def make_loader(files: Sequence[str | Path], labels: Sequence[int], views: Sequence[ViewSpec], variant: str,
                blur: str, batch_size: int, workers: int, seed: int = 0) -> torch.utils.data.DataLoader:
    """The baseline DataLoader: shuffled, ``workers`` persistent worker processes, no dropped images."""
    dataset = MultiViewFiles(files, labels, [build_transform(v, variant, blur) for v in views], variant)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
        drop_last=False, generator=torch.Generator().manual_seed(seed))


def choose_blur(files: Sequence[str | Path], spec: ViewSpec, variant: str, samples: int = 24,
                seed: int = 0) -> tuple[str, dict[str, float]]:
    """Time both blur implementations on crops of ``samples`` files (p = 1); return the faster and ms/image."""
    from dataclasses import replace

    random.seed(seed)
    torch.manual_seed(seed)
    crop = _crop(spec, variant)
    imgs = [crop(load_image(f, variant)) for f in list(files)[:samples]]
    if not imgs:
        raise ValueError("choose_blur needs at least one image file")
    timings = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker process
    try:
        for impl in BLURS:
            op = _blur(replace(spec, blur_p=1.0), variant, impl)
            op(imgs[0])  # the first call may build kernels
            start = time.perf_counter()
            for img in imgs:
                op(img)
            timings[impl] = (time.perf_counter() - start) / len(imgs) * 1e3
    finally:
        torch.set_num_threads(threads)
    return min(timings, key=timings.get), timings


def run_torchvision(files: Sequence[str | Path], labels: Sequence[int], views: Sequence[ViewSpec], *,
                    variant: str, blur: str, batch_size: int, workers: int, epochs: int, group: str,
                    config: dict[str, Any], progress: bool = True) -> Any:
    """Measure one DataLoader variant: warm-up epoch (worker start-up included), then ``epochs`` timed ones."""
    import gc

    from benches.ladder import describe
    from benches.report import Figure, count_images, measure_epochs

    loader = make_loader(files, labels, views, variant, blur, batch_size, workers)
    desc = f"torchvision-{variant} {config}"
    warmup, times, images, rss = measure_epochs(lambda: count_images(loader, len(files), desc, progress), epochs)
    del loader  # persistent workers stop with their iterator
    gc.collect()
    cfg = {**config, "workers": workers, "views": describe(list(views))}
    if any(v.blur_p is not None for v in views):
        cfg["blur"] = blur
    return Figure(group, f"torchvision-{variant}", cfg, images, times, warmup, peak_rss_mb=rss)
