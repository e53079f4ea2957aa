"""Shared test fixtures: small generated images and datasets, and the real data when present.

Fixtures (all deterministic; session-scoped ones are built once per test run, treat them as read-only):

* ``make_image(height, width, seed=0) -> uint8 H x W x 3``: a smooth "natural-ish" RGB image (gradients,
  blobs, mild noise), so JPEG behaves as on photos. Also importable as ``tests.conftest.natural_image``.
* ``image_samples``: list of 24 ``(image ndarray, label)``, sizes 8x8 .. 160x120 (both sides of the auto
  threshold), labels ``i % 4``.
* ``raw_dataset`` / ``jpeg_dataset`` / ``auto_dataset``: paths of .fssl files written from ``image_samples``
  in raw, jpeg (quality 90) and auto mode (so ``auto_dataset`` holds both STORAGE_RAW and STORAGE_JPEG).
* ``tiny_imagefolder``: an ImageFolder tree (3 classes, 12 images: .jpg, .png, .JPEG, nested folder, a
  non-image file that must be ignored) for converter and label tests.
* ``shared_data``: Path of ``../shared/data`` (override with env FASTSSL_SHARED_DATA), may not exist.
* ``cifar10_dir`` / ``imagenet_sample_dir``: ``shared_data/cifar10`` and ``shared_data/imagenet-sample``;
  the test is skipped when the folder is absent.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from fastssl_loader.writer import write_dataset

REPO = Path(__file__).resolve().parent.parent


def natural_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth RGB uint8 image with gradients, a few soft blobs and mild noise (JPEG-friendly like photos)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= max(height - 1, 1)
    x /= max(width - 1, 1)
    image = np.empty((height, width, 3))
    for c in range(3):
        a, b, p = rng.uniform(-1, 1, 3)
        image[..., c] = 0.5 + 0.25 * np.sin(3 * (a * x + b * y) + p * 3)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.4)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
        image += blob[..., None] * rng.uniform(-0.3, 0.3, 3)
    image += rng.normal(0, 0.01, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_mixed_dataset(path: str, count: int, *, seed: int, small_every: int, classes: int) -> str:
    """``count`` natural images of varied sizes at ``path``: every ``small_every``-th one 36-59 px a side (mode
    auto stores it raw), the others 70-129 px (stored as JPEG); label of sample i = i % ``classes``."""
    rng = np.random.default_rng(seed)
    shapes = [(int(rng.integers(36, 60)), int(rng.integers(36, 60))) if i % small_every == 0 else
              (int(rng.integers(70, 130)), int(rng.integers(70, 130))) for i in range(count)]
    write_dataset(path, [(natural_image(h, w, seed=i), i % classes) for i, (h, w) in enumerate(shapes)],
                  mode="auto", num_workers=0, progress=False)
    return path


@pytest.fixture(scope="session")
def make_image() -> Callable[..., np.ndarray]:
    return natural_image


_SIZES = [(8, 8), (32, 32), (17, 45), (64, 64), (65, 64), (120, 160), (160, 120), (33, 100)]


@pytest.fixture(scope="session")
def image_samples() -> list[tuple[np.ndarray, int]]:
    return [(natural_image(*_SIZES[i % len(_SIZES)], seed=i), i % 4) for i in range(24)]


def _write(tmp_path_factory: pytest.TempPathFactory, samples: list, mode: str) -> Path:
    path = tmp_path_factory.mktemp(f"{mode}_dataset") / f"{mode}.fssl"
    write_dataset(path, samples, mode=mode, num_workers=0, progress=False)
    return path


@pytest.fixture(scope="session")
def raw_dataset(tmp_path_factory: pytest.TempPathFactory, image_samples: list) -> Path:
    return _write(tmp_path_factory, image_samples, "raw")


@pytest.fixture(scope="session")
def jpeg_dataset(tmp_path_factory: pytest.TempPathFactory, image_samples: list) -> Path:
    return _write(tmp_path_factory, image_samples, "jpeg")


@pytest.fixture(scope="session")
def auto_dataset(tmp_path_factory: pytest.TempPathFactory, image_samples: list) -> Path:
    return _write(tmp_path_factory, image_samples, "auto")


@pytest.fixture(scope="session")
def tiny_imagefolder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagefolder")
    layout = {"cat": ["b.jpg", "a.png", "sub/c.JPEG", "d.jpeg"], "Dog": ["x.png", "y.jpg", "z.jpg", "w.bmp"],
              "bird": ["1.jpg", "10.jpg", "2.jpg", "3.png"]}
    for k, (cls, files) in enumerate(sorted(layout.items())):
        for j, name in enumerate(files):
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(natural_image(20 + 3 * j, 30 + 5 * k, seed=10 * k + j)).save(path, quality=92)
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return Path(os.environ.get("FASTSSL_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(shared_data: Path, name: str) -> Path:
    path = shared_data / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def cifar10_dir(shared_data: Path) -> Path:
    return _shared(shared_data, "cifar10")


@pytest.fixture(scope="session")
def imagenet_sample_dir(shared_data: Path) -> Path:
    return _shared(shared_data, "imagenet-sample")
