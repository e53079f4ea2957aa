"""A small generated dataset for the examples' ``--smoke`` runs (no download): smooth random colour images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fastssl_loader import write_dataset

NUM_CLASSES = 4


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An RGB uint8 image: a colour gradient plus a soft blob and mild noise (JPEG-friendly like photos)."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    top, bottom, blob = rng.uniform(0, 255, (3, 3))
    cy, cx, radius = rng.uniform(0.2, 0.8, 3)
    weight = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (0.1 * radius))[..., None]
    image = (1 - weight) * (top + (bottom - top) * y[..., None]) + weight * blob
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def smoke_dataset(path: str | Path, n: int = 64, seed: int = 0) -> Path:
    """Write ``n`` images of 40-64 px (labels ``i % NUM_CLASSES``) as a JPEG .fssl file at ``path``."""
    rng = np.random.default_rng(seed)
    samples = [(smooth_image(rng, *rng.integers(40, 65, 2)), i % NUM_CLASSES) for i in range(n)]
    write_dataset(path, samples, mode="jpeg", num_workers=0, progress=False)
    return Path(path)
