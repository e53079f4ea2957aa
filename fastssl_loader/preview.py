"""Look at the views before training: the Loader's views of a few samples, their crop boxes and parameters.

:func:`preview_samples` runs a :class:`~fastssl_loader.loader.Loader` for one batch (``return_params`` and
``return_indices``) and returns, per sample, the stored image, each view's crop box (stored-image
coordinates), each view exactly as the Loader produced it (denormalised to [0, 1]) and a caption of its
sampled parameters. :func:`render_preview` draws them as a PNG grid with matplotlib (extra ``preview``):
one row per sample, the stored image with every view's box first, then the views.

Captions: ``crop HxW at top,left`` (stored pixels); ``jitter`` with its sampled order (b brightness,
c contrast, s saturation, h hue) and factors, or ``no jitter``; then ``flip``, ``gray``, ``solarize`` when
they fired and ``blur σ`` with its sigma. Parameters of other ops are listed as ``name=value``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import textwrap
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

#: preset names ``--views`` accepts; dino and sslight take the size as their global crop size
PRESETS = ("simclr", "byol", "vicreg", "barlow", "dino", "sslight", "eval_view")
TILE_PX = 180  # default side of one image tile in the PNG
CAPTION_PX = 56  # caption band under each tile (four short lines)
DPI = 100
_JITTER_STEPS = "bcsh"  # ColorJitter order codes 0..3: brightness, contrast, saturation, hue


@dataclass
class PreviewSample:
    """One sample of a preview: what is stored, and what each view made of it."""

    index: int
    label: int
    image: np.ndarray  # stored image, H x W x 3 uint8
    boxes: list[tuple[int, int, int, int]]  # per view: (top, left, height, width) in stored pixels
    tiles: list[np.ndarray]  # per view: h x w x 3 float32 in [0, 1], the Loader's output denormalised
    captions: list[str]  # per view: its sampled parameters


def resolve_views(spec: str, size: int = 224) -> list[list[Any]]:
    """Views from a preset name (at ``size``) or a Python file or module defining ``VIEWS``."""
    if spec in PRESETS:
        from . import presets  # compiles nothing, but imports Numba: only when a preset is asked for
        make = getattr(presets, spec)
        views = make(global_size=size) if spec in ("dino", "sslight") else make(size)
        return [views] if spec == "eval_view" else views
    if spec.endswith(".py") or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise FileNotFoundError(f"views file {spec} does not exist")
        module_spec = importlib.util.spec_from_file_location("fastssl_preview_views", spec)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise ValueError(f"--views {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an importable "
                             f"module or .py file: {exc}") from None
    if not hasattr(module, "VIEWS"):
        raise ValueError(f"{spec} defines no VIEWS (a list of views, each a list of ops)")
    return module.VIEWS


def describe_params(names: Sequence[str], row: np.ndarray) -> str:
    """A short multi-line caption of one view's sampled parameters (crop, flip, jitter, gray, blur, solarize)."""
    values = dict(zip(names, (float(v) for v in row)))
    lines = []
    if {"top", "left", "height", "width"} <= values.keys():
        lines.append(f"crop {values['height']:.0f}x{values['width']:.0f} at {values['top']:.0f},{values['left']:.0f}")
    if values.get("jitter"):
        order = "".join(_JITTER_STEPS[int(values[f"jitter_order{k}"])] for k in range(4))
        lines.append(f"jitter {order} b{values['brightness']:.2f} c{values['contrast']:.2f}")
        lines.append(f"s{values['saturation']:.2f} h{values['hue']:+.3f}")
    elif "jitter" in values:
        lines.append("no jitter")
    flags = [name for name in ("flip", "gray", "solarize") if values.get(name)]
    if values.get("blur"):
        flags.append(f"blur σ{values['blur_sigma']:.2f}")
    known = {"top", "left", "height", "width", "jitter", "brightness", "contrast", "saturation", "hue", "flip",
             "gray", "solarize", "blur", "blur_sigma"} | {f"jitter_order{k}" for k in range(4)}
    flags += [f"{name}={value:g}" for name, value in values.items() if name not in known]
    lines.append(" ".join(flags) if flags else "no flip/gray/blur/solarize")
    return "\n".join(lines)


def preview_samples(path: str | os.PathLike, views: Any, n: int = 8, *, seed: int = 0, epoch: int = 0,
                    order: str = "random") -> list[PreviewSample]:
    """The first batch (``n`` samples) the Loader yields for ``(seed, epoch)``, with boxes and captions
    (``path``: a dataset file or a ``.fsslm`` manifest)."""
    import torch

    from .loader import Loader
    from .multi_reader import open_dataset

    reader = open_dataset(path)
    loader = Loader(reader, batch_size=min(n, len(reader)), views=views, num_workers=1, order=order, seed=seed,
                    epoch=epoch, drop_last=False, dtype=torch.float32, return_indices=True, return_params=True)
    with loader:
        outputs, labels, indices, params = next(iter(loader))
        tiles = [_denormalize(out.numpy(), plan.normalize) for out, plan in zip(outputs, loader.plans)]
    boxes = [plan.crop_boxes(p) for plan, p in zip(loader.plans, params)]
    samples = []
    for k, index in enumerate(indices.tolist()):
        samples.append(PreviewSample(
            index=index, label=int(labels[k]), image=reader.image(index),
            boxes=[tuple(int(x) for x in b[k]) for b in boxes],
            tiles=[t[k] for t in tiles],
            captions=[describe_params(loader.param_names(v), params[v][k]) for v in range(len(params))]))
    return samples


def _denormalize(batch: np.ndarray, normalize: tuple | None) -> np.ndarray:
    """[n, 3, h, w] float32 Loader output -> [n, h, w, 3] in [0, 1] (undoing the view's Normalize)."""
    mean, std = normalize if normalize else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.clip(batch * std + mean, 0.0, 1.0).transpose(0, 2, 3, 1)


def preview_size_px(num_samples: int, num_views: int, tile_px: int = TILE_PX) -> tuple[int, int]:
    """(width, height) in pixels of the PNG :func:`render_preview` writes."""
    return (num_views + 1) * tile_px, num_samples * (tile_px + CAPTION_PX)


def render_preview(samples: Sequence[PreviewSample], out: str | os.PathLike,
                   class_names: Sequence[str] | None = None, tile_px: int = TILE_PX) -> tuple[int, int]:
    """Draw ``samples`` as a PNG grid at ``out`` (tiles of ``tile_px``); returns its (width, height) in pixels."""
    if tile_px < 120:
        raise ValueError(f"tile_px must be at least 120 (room for the captions), got {tile_px}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle
    except ImportError:
        raise ModuleNotFoundError("fastssl preview draws with matplotlib: pip install "
                                  "'fastssl_loader[preview]'") from None
    num_views = len(samples[0].tiles)
    width, height = preview_size_px(len(samples), num_views, tile_px)
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(figure)
    colours = [f"C{v % 10}" for v in range(num_views)]
    row_px = tile_px + CAPTION_PX
    for r, sample in enumerate(samples):
        top = height - r * row_px  # pixels from the bottom, as matplotlib counts
        name = f" {class_names[sample.label]}" if class_names and 0 <= sample.label < len(class_names) else ""
        h, w = sample.image.shape[:2]
        cells = [(sample.image, f"sample {sample.index}, label {sample.label}{name}\nstored {h}x{w}", "black")]
        cells += [((tile * 255 + 0.5).astype(np.uint8), f"view {v}\n{caption}", colours[v])
                  for v, (tile, caption) in enumerate(zip(sample.tiles, sample.captions))]
        for c, (pixels, caption, colour) in enumerate(cells):
            axes = figure.add_axes([(c * tile_px + 3) / width, (top - tile_px + 3) / height,
                                    (tile_px - 6) / width, (tile_px - 6) / height])
            axes.imshow(pixels, interpolation="antialiased")
            axes.set_axis_off()
            if c == 0:
                for (bt, bl, bh, bw), box_colour in zip(sample.boxes, colours):
                    axes.add_patch(Rectangle((bl - 0.5, bt - 0.5), bw, bh, fill=False, linewidth=1.2,
                                             edgecolor=box_colour))
            figure.text((c * tile_px + 4) / width, (top - tile_px - 1) / height, _wrap(caption), fontsize=6,
                        color=colour, va="top", ha="left", linespacing=1.1)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[:, :, :3]  # opaque figure: RGB makes a smaller PNG than RGBA
    Image.fromarray(rgb).save(os.fspath(out), format="PNG", optimize=True)
    return rgb.shape[1], rgb.shape[0]


def _wrap(caption: str) -> str:
    return "\n".join(textwrap.shorten(line, 40, placeholder="...") for line in caption.splitlines())
