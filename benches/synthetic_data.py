"""The default benchmark dataset: procedurally generated photo-like JPEGs, built offline.

It is NOT ImageNet and has no meaningful labels. It exists so that ``python -m benches`` runs on a fresh
machine with no download, on images whose decode cost resembles real photos: ImageNet-like sizes (long side
about 400-560 px, 4:3 / 3:2 / 1:1 / portrait aspect ratios) and a compressed density of about 0.5 bytes per
pixel at JPEG quality 90 (ImageNet validation photos average about 0.5).

How an image is made (every step seeded by ``(seed, index)``, so the dataset is reproducible):

1. a smooth background: a two-colour linear gradient plus low-frequency value noise (a "sky/ground" feel);
2. 10-39 shapes (ellipses and random polygons), each filled with its own colour modulated by multi-octave
   value noise (texture at 2-64 px scales, like foliage, fabric, fur), with softened edges;
3. fine sensor-like grain, then a slight lens blur.

Flat colour compresses to almost nothing and white noise to several bytes per pixel; this mix of edges,
mid-frequency texture and grain lands near real photographs. The images are written as an ImageFolder
(``class_XX/img_XXXXX.jpg``, 10 classes by index modulo 10).
"""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

GENERATOR_VERSION = 1
NUM_CLASSES = 10
_ASPECTS = (4 / 3, 4 / 3, 3 / 2, 1.0, 3 / 4, 2 / 3)
# amplitude ranges (levels) tuned so that JPEG q90 lands near 0.5 bytes per pixel
BACKGROUND_TEXTURE = (40.0, 70.0)
SHAPE_TEXTURE = (110.0, 170.0)
GRAIN = (3.0, 6.0)
LENS_BLUR = (0.3, 0.4)
OCTAVE_WEIGHTS = (0.6, 0.8, 1.0, 1.2, 1.0)  # 64, 20, 6, 2.5, 1.2 px features
SHAPES = (10, 40)


@dataclass(frozen=True)
class SyntheticSpec:
    """What the default dataset is: enough to name its cache folder and rebuild it identically."""

    num_images: int = 2000
    seed: int = 0
    quality: int = 90

    @property
    def folder_name(self) -> str:
        return f"synthetic-v{GENERATOR_VERSION}-n{self.num_images}-s{self.seed}-q{self.quality}"


def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    long_side = int(rng.integers(400, 561))
    aspect = _ASPECTS[int(rng.integers(len(_ASPECTS)))]
    if aspect >= 1:
        return int(round(long_side / aspect)), long_side
    return long_side, int(round(long_side * aspect))


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in [-1, 1] with features about ``cell`` pixels wide (bicubic upsampled random grid)."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multi-octave value noise (1.5..64 px), amplitude falling off gently like natural textures."""
    octaves = (64.0, 20.0, 6.0, 2.5, 1.2)
    weights = rng.uniform(0.5, 1.0, size=len(octaves)) * np.array(OCTAVE_WEIGHTS)
    tex = sum(wt * _value_noise(rng, h, w, c) for wt, c in zip(weights, octaves))
    return tex / float(weights.sum())


def _shape_mask(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """A soft-edged ellipse or polygon: its float mask in [0, 1] over its bounding box, and the box."""
    size = float(rng.uniform(0.08, 0.45)) * min(h, w)
    half = int(size) + 8
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1, x0, x1 = max(0, cy - half), min(h, cy + half), max(0, cx - half), min(w, cx + half)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    centre = (cx - x0, cy - y0)
    if rng.random() < 0.5:
        axes = (max(2, int(size)), max(2, int(size * rng.uniform(0.3, 1.0))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    else:
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = size * rng.uniform(0.4, 1.0, n)
        pts = np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    soft = cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(0.7, 3.0))).astype(np.float32) / 255.0
    return soft, (slice(y0, y1), slice(x0, x1))


def generate_image(seed: int, index: int) -> np.ndarray:
    """One photo-like RGB uint8 image (H x W x 3), a pure function of ``(seed, index)``."""
    rng = np.random.default_rng([seed, index, GENERATOR_VERSION])
    h, w = _image_size(rng)
    textures = [_texture(rng, h, w) for _ in range(3)]  # shared by the shapes, with their own tint/gain
    # 1. background: gradient between two colours along a random direction + low-frequency variation
    c0, c1 = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.cos(theta) * xx / w + np.sin(theta) * yy / h
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    img += 25.0 * _value_noise(rng, h, w, 90.0)[..., None]
    img += float(rng.uniform(BACKGROUND_TEXTURE[0], BACKGROUND_TEXTURE[1])) * textures[0][..., None]
    # 2. textured shapes
    for _ in range(int(rng.integers(SHAPES[0], SHAPES[1]))):
        mask, box = _shape_mask(rng, h, w)
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        gain = float(rng.uniform(SHAPE_TEXTURE[0], SHAPE_TEXTURE[1])) * rng.uniform(0.6, 1.4, size=3)
        tex = textures[int(rng.integers(len(textures)))][box][..., None] * gain.astype(np.float32)
        region = img[box]  # a view: blended in place
        region += mask[..., None] * (colour + tex - region)
    # 3. grain, then a slight lens blur
    img += float(rng.uniform(GRAIN[0], GRAIN[1])) * rng.standard_normal(img.shape, dtype=np.float32)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(LENS_BLUR[0], LENS_BLUR[1])))
    return np.clip(img, 0, 255).astype(np.uint8)


def _relative_path(index: int) -> str:
    return f"class_{index % NUM_CLASSES:02d}/img_{index:05d}.jpg"


def _write_one(args: tuple[Path, int, int, int]) -> int:
    root, seed, quality, index = args
    path = root / _relative_path(index)
    rgb = generate_image(seed, index)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for synthetic image {index}")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return len(buf)


def _process_context() -> multiprocessing.context.BaseContext:
    """forkserver where available (a fork of a threaded parent can deadlock), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def build_synthetic_imagefolder(
    cache_dir: str | os.PathLike, spec: SyntheticSpec = SyntheticSpec(), workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the synthetic ImageFolder under ``cache_dir`` (reused when already complete) and return its root.

    Completion is marked by ``dataset.json`` (written last), so an interrupted build is redone, not reused.
    """
    if spec.num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {spec.num_images}")
    if not 1 <= spec.quality <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {spec.quality}")
    root = Path(cache_dir).expanduser() / spec.folder_name
    marker = root / "dataset.json"
    if marker.is_file():
        return root
    for c in range(min(NUM_CLASSES, spec.num_images)):
        (root / f"class_{c:02d}").mkdir(parents=True, exist_ok=True)
    jobs = [(root, spec.seed, spec.quality, i) for i in range(spec.num_images)]
    workers = workers or os.cpu_count() or 1
    from tqdm import tqdm

    with ProcessPoolExecutor(max_workers=workers, mp_context=_process_context()) as pool:
        sizes = list(tqdm(pool.map(_write_one, jobs, chunksize=8), total=len(jobs), disable=not progress,
                          desc="synthetic dataset", unit="img"))
    stats = folder_stats(root)
    info = {"generator_version": GENERATOR_VERSION, "num_images": spec.num_images, "seed": spec.seed,
            "jpeg_quality": spec.quality, "bytes": int(sum(sizes)), **stats,
            "note": "procedurally generated photo-like images (benches/synthetic_data.py); not ImageNet"}
    marker.write_text(json.dumps(info, indent=2))
    return root


def folder_stats(root: str | os.PathLike, limit: int | None = None) -> dict:
    """Mean size and compressed density (bytes per pixel) of the JPEGs under ``root`` (header reads only)."""
    from PIL import Image

    files = list_images(root)[:limit]
    if not files:
        raise FileNotFoundError(f"no JPEG images found under {root}")
    pixels = nbytes = 0
    for f in files:
        with Image.open(f) as im:
            w, h = im.size
        pixels += w * h
        nbytes += f.stat().st_size
    return {"images": len(files), "mean_megapixels": pixels / len(files) / 1e6,
            "bytes_per_pixel": nbytes / pixels}


def list_images(root: str | os.PathLike) -> list[Path]:
    """Every JPEG under ``root`` (recursive), sorted, so every loader sees the same files in the same order."""
    exts = {".jpg", ".jpeg"}
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in exts and p.is_file())
