"""The SSL augmentation ladder: what each rung's views are, for our loader and for the baselines.

One neutral description (:class:`ViewSpec`) per view is the single source of truth: ``fastssl_views`` turns it
into our ops and :mod:`benches.torchvision_baseline` into torchvision transforms, so both loaders always run
the same augmentations with the same parameters.

Rungs (FFCV-SSL paper, Table 2), two views with BYOL settings, each adding to the previous:

1. RandomResizedCrop + horizontal flip;
2. + Gaussian blur (kernel 23 at 224 px, sigma U(0.1, 2), p 1.0 / 0.1 for the two views);
3. + grayscale (p 0.2);
4. + solarize (threshold 128, p 0.0 / 0.2);
5. + colour jitter (0.4 / 0.4 / 0.2 / 0.1, p 0.8).

Ops always run in the canonical BYOL order (crop, flip, jitter, gray, blur, solarize, normalize), so rung 5's
jitter sits before gray although it is added last. Rung 5 is exactly ``presets.byol(size)`` and
:func:`dino_views` exactly ``presets.dino()`` (checked by tests/test_benches.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RUNG_NAMES = {1: "crop+flip", 2: "+blur", 3: "+gray", 4: "+solarize", 5: "+jitter"}
BYOL_JITTER = (0.4, 0.4, 0.2, 0.1)


@dataclass(frozen=True)
class ViewSpec:
    """One view's augmentations; an op whose probability is ``None`` is absent (not merely never fired)."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    interpolation: str = "bilinear"
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] | None = None  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    gray_p: float | None = None
    blur_p: float | None = None
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float | None = None
    solarize_threshold: int = 128
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def blur_kernel(self) -> int:
        """The SSL convention: an odd kernel about 10% of the output side (23 at 224 px)."""
        return 2 * math.floor(0.05 * self.size) + 1


def check_rung(rung: int) -> int:
    if rung not in RUNG_NAMES:
        raise ValueError(f"unknown ladder rung {rung!r}: choose from {sorted(RUNG_NAMES)}")
    return rung


def byol_rung(rung: int, size: int = 224) -> list[ViewSpec]:
    """The two views of ladder rung ``rung`` (1-5) at output side ``size``."""
    check_rung(rung)
    views = []
    for blur_p, solarize_p in ((1.0, 0.0), (0.1, 0.2)):  # BYOL's asymmetric view 1 / view 2
        views.append(ViewSpec(
            size=size,
            blur_p=blur_p if rung >= 2 else None,
            gray_p=0.2 if rung >= 3 else None,
            solarize_p=solarize_p if rung >= 4 else None,
            jitter=BYOL_JITTER if rung >= 5 else None,
        ))
    return views


def dino_views(global_size: int = 224, local_size: int = 96, n_local: int = 6) -> list[ViewSpec]:
    """DINO multi-crop with lightly's DINOTransform values (bicubic; blur 1.0 / 0.1 / 0.5; solarize on g2)."""
    full = dict(jitter=BYOL_JITTER, gray_p=0.2, interpolation="bicubic")
    g1 = ViewSpec(global_size, scale=(0.4, 1.0), blur_p=1.0, **full)
    g2 = ViewSpec(global_size, scale=(0.4, 1.0), blur_p=0.1, solarize_p=0.2, **full)
    local = ViewSpec(local_size, scale=(0.05, 0.4), blur_p=0.5, **full)
    return [g1, g2] + [local] * n_local


def resized(views: list[ViewSpec], size: int) -> list[ViewSpec]:
    """The same views at another output side."""
    return [replace(v, size=size) for v in views]


def fastssl_views(views: list[ViewSpec]) -> list[list[Any]]:
    """Our op lists for ``views``, in the canonical order."""
    from fastssl_loader import ops

    out = []
    for v in views:
        view: list[Any] = [ops.RandomResizedCrop(v.size, scale=v.scale, interpolation=v.interpolation),
                           ops.RandomHorizontalFlip(v.flip_p)]
        if v.jitter is not None:
            view.append(ops.ColorJitter(*v.jitter, p=v.jitter_p))
        if v.gray_p is not None:
            view.append(ops.RandomGrayscale(p=v.gray_p))
        if v.blur_p is not None:
            view.append(ops.GaussianBlur(kernel_size=v.blur_kernel, sigma=v.blur_sigma, p=v.blur_p))
        if v.solarize_p is not None:
            view.append(ops.RandomSolarize(v.solarize_threshold, p=v.solarize_p))
        view.append(ops.Normalize(v.mean, v.std))
        out.append(view)
    return out


def describe(views: list[ViewSpec]) -> str:
    """Short human description of a view list (for tables and JSON)."""
    sizes: dict[int, int] = {}
    for v in views:
        sizes[v.size] = sizes.get(v.size, 0) + 1
    return " + ".join(f"{n}x{s}" for s, n in sizes.items())


def run_fastssl(path: str, views: list[ViewSpec], *, batch_size: int, workers: int, epochs: int,
                group: str, config: dict[str, Any], progress: bool = True, **loader_kw: Any) -> Any:
    """Measure our Loader on the converted file ``path``: compile, one warm-up epoch, ``epochs`` timed ones."""
    import fastssl_loader as fsl
    from benches.report import Figure, count_images, measure_epochs

    loader = fsl.Loader(path, batch_size, fastssl_views(views), num_workers=workers, order="random", seed=0,
                        drop_last=False, device="cpu", **loader_kw)
    try:
        compile_s = loader.warmup()
        total, desc = len(loader.reader), f"fastssl {config}"
        warmup, times, images, rss = measure_epochs(lambda: count_images(loader, total, desc, progress), epochs)
    finally:
        loader.close()
    return Figure(group, "fastssl", {**config, "workers": workers, "views": describe(views)}, images, times,
                  warmup, compile_s=compile_s, peak_rss_mb=rss)
