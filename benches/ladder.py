"""The SSL augmentation ladder: each rung's views as our op lists, taken from the library's presets.

Rungs (FFCV-SSL paper, Table 2), the two BYOL views of ``presets.byol(size)``, each rung adding to the previous:

1. RandomResizedCrop + horizontal flip;
2. + Gaussian blur (kernel 23 at 224 px, sigma U(0.1, 2), p 1.0 / 0.1 for the two views);
3. + grayscale (p 0.2);
4. + solarize (threshold 128, p 0.0 / 0.2);
5. + colour jitter (0.4 / 0.4 / 0.2 / 0.1, p 0.8).

A rung keeps the preset's ops whose rung is reached, in the preset's order (crop, flip, jitter, gray, blur,
solarize, normalize), so rung 5 is exactly ``presets.byol(size)``. The baselines get the same views through
``fastssl_loader.reference.to_torchvision``: one description, one mapping.
"""
from __future__ import annotations

from typing import Any

from fastssl_loader import ops, presets
from fastssl_loader.presets import View

RUNG_NAMES = {1: "crop+flip", 2: "+blur", 3: "+gray", 4: "+solarize", 5: "+jitter"}
# the rung at which each op joins the views (Normalize always ends a view)
OP_RUNG = {ops.RandomResizedCrop: 1, ops.RandomHorizontalFlip: 1, ops.Normalize: 1, ops.GaussianBlur: 2,
           ops.RandomGrayscale: 3, ops.RandomSolarize: 4, ops.ColorJitter: 5}


def check_rung(rung: int) -> int:
    if rung not in RUNG_NAMES:
        raise ValueError(f"unknown ladder rung {rung!r}: choose from {sorted(RUNG_NAMES)}")
    return rung


def byol_rung(rung: int, size: int = 224) -> list[View]:
    """The two views of ladder rung ``rung`` (1-5) at output side ``size`` (blur kept at every size)."""
    check_rung(rung)
    return [[op for op in view if OP_RUNG[type(op)] <= rung] for view in presets.byol(size, cifar=False)]


def dino_views(global_size: int = 224, local_size: int = 96, n_local: int = 6) -> list[View]:
    """DINO multi-crop: ``presets.dino`` (bicubic; blur 1.0 / 0.1 / 0.5; solarize on the second global view)."""
    return presets.dino(global_size, local_size, n_local, cifar=False)


def view_sizes(views: list[View]) -> list[int]:
    """Output side of each view (square views)."""
    return [view[0].max_output_size[0] for view in views]


def describe(views: list[View]) -> str:
    """Short human description of a view list, e.g. "2x224 + 6x96" (a label; the numbers are in ``config``)."""
    sizes: dict[int, int] = {}
    for s in view_sizes(views):
        sizes[s] = sizes.get(s, 0) + 1
    return " + ".join(f"{n}x{s}" for s, n in sizes.items())


def views_config(views: list[View]) -> dict[str, Any]:
    """The numeric description of a view list that goes into a figure's config, plus its label."""
    return {"n_views": len(views), "views": describe(views)}


def peer_spec(views: list[View]) -> list[dict[str, Any]]:
    """The views as plain JSON data for peers that run in their own interpreter (DALI, SPDL) without our package.

    One dict per view: ``size``, ``scale``, ``ratio``, ``flip`` (p), and for the ops present ``jitter`` (p and the
    four factor ranges), ``gray`` (p), ``blur`` (p, odd ``kernel`` resolved at the view's size, ``sigma`` range),
    ``solarize`` (p, ``threshold``) and ``normalize`` (mean, std in [0, 1] units); absent ops are None.
    """
    specs = []
    for view in views:
        crop = view[0]
        if not isinstance(crop, ops.RandomResizedCrop):
            raise ValueError(f"peers need a RandomResizedCrop first, got {type(crop).__name__}")
        size = crop.max_output_size[0]
        spec: dict[str, Any] = {"size": size, "scale": list(crop.scale), "ratio": list(crop.ratio), "flip": 0.0,
                                "jitter": None, "gray": None, "blur": None, "solarize": None, "normalize": None}
        for op in view[1:]:
            if isinstance(op, ops.RandomHorizontalFlip):
                spec["flip"] = op.p
            elif isinstance(op, ops.ColorJitter):
                spec["jitter"] = {"p": op.p, "brightness": list(op.brightness), "contrast": list(op.contrast),
                                  "saturation": list(op.saturation), "hue": list(op.hue)}
            elif isinstance(op, ops.RandomGrayscale):
                spec["gray"] = op.p
            elif isinstance(op, ops.GaussianBlur):
                kernel = 2 * int(0.05 * size) + 1 if op.kernel_size == "auto" else op.kernel_size
                spec["blur"] = {"p": op.p, "kernel": kernel, "sigma": list(op.sigma)}
            elif isinstance(op, ops.RandomSolarize):
                spec["solarize"] = {"p": op.p, "threshold": op.threshold}
            elif isinstance(op, ops.Normalize):
                spec["normalize"] = {"mean": list(op.mean), "std": list(op.std)}
            else:
                raise ValueError(f"no peer equivalent for {type(op).__name__}")
        specs.append(spec)
    return specs


def has_blur(views: list[View]) -> bool:
    return any(isinstance(op, ops.GaussianBlur) for view in views for op in view)


def run_fastssl(path: str, views: list[View], *, batch_size: int, workers: int, epochs: int,
                group: str, config: dict[str, Any], progress: bool = True, **loader_kw: Any) -> Any:
    """Measure our Loader on the converted file ``path``: compile, one warm-up epoch, ``epochs`` timed ones."""
    import fastssl_loader as fsl
    from benches.report import Figure, count_images, measure_epochs

    loader = fsl.Loader(path, batch_size, views, num_workers=workers, order="random", seed=0,
                        drop_last=False, device="cpu", **loader_kw)
    try:
        compile_s = loader.warmup()
        total, desc = len(loader.reader), f"fastssl {config}"
        warmup, times, images, rss = measure_epochs(lambda: count_images(loader, total, desc, progress), epochs)
    finally:
        loader.close()
    return Figure(group, "fastssl", {**config, "workers": workers, **views_config(views)}, images, times,
                  warmup, compile_s=compile_s, peak_rss_mb=rss)
