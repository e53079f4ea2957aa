"""Evaluation and comparison sets: fixed subsets of an ImageFolder or a .fssl file as (image, label) items, and
shifted copies of an ImageFolder (grayscale, blurred, JPEG quality 10) to test robustness.

Items feed ``write_dataset`` (to convert a subset) and ``reference.TorchvisionLoader`` (to load the same samples
through torchvision). torchvision and PIL are imported lazily.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

SHIFTS = ("gray", "blur", "jpeg")
SUBSET_SEED = 12345  # subsets are fixed: the same images whatever the run's seed


def is_fssl(path: str | Path) -> bool:
    """A converted dataset: one .fssl file, or a .fsslm manifest of several (fastssl_loader.multi_reader)."""
    return Path(path).suffix in (".fssl", ".fsslm")


def subset_indices(n: int, limit: int | None) -> np.ndarray:
    """A fixed (seed-independent) random subset of ``limit`` of ``n`` samples in ascending order; all if None."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit < 1:
        raise ValueError(f"subset limit must be >= 1 (got {limit})")
    return np.sort(np.random.default_rng(SUBSET_SEED).permutation(n)[:limit])


def folder_samples(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) pairs and class names exactly as torchvision's ImageFolder orders them."""
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(root))
    return folder.samples, folder.classes


class ReaderImages:
    """Indexable (HxWx3 uint8 image, label) view of a fixed subset of a converted dataset (file or manifest)."""

    def __init__(self, path: Path, limit: int | None = None) -> None:
        from .multi_reader import open_dataset

        self.reader = open_dataset(str(path))
        self.indices = subset_indices(len(self.reader), limit)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        j = int(self.indices[i])
        return self.reader.image(j), int(self.reader.labels[j])


def source_items(src: Path, limit: int | None) -> list[tuple[str, int]] | ReaderImages:
    """The (image or path, label) items of a split's fixed subset (an ImageFolder or a .fssl file)."""
    if is_fssl(src):
        return ReaderImages(src, limit)
    samples, _ = folder_samples(src)
    return [samples[i] for i in subset_indices(len(samples), limit)]


def num_classes_of(src: Path) -> int:
    if is_fssl(src):
        from .multi_reader import open_dataset

        return int(open_dataset(str(src)).labels.max()) + 1
    return len(folder_samples(src)[1])


def make_shifted_sets(src: Path, shifts: list[str], cache_dir: str | Path, build: bool = True) -> list[Path]:
    """Shifted copies of an eval ImageFolder, cached as ImageFolders in ``cache_dir``; returns their paths.

    gray: luma replicated to RGB (PNG); blur: PIL Gaussian blur of radius 1 px at 32 px, the same fraction of the
    side on larger images (PNG); jpeg: re-encoded at quality 10. The copies keep file names and classes, so a
    fixed subset draws the same images from each. ``build=False`` only names them (for processes that wait for
    another one to build them); a copy is written under a temporary name and renamed, so a half-built copy is
    never used.
    """
    from PIL import Image, ImageFilter

    if is_fssl(src):
        raise ValueError(f"shifted eval sets need an ImageFolder eval set, got {src}")
    unknown = sorted(set(shifts) - set(SHIFTS))
    if unknown:
        raise ValueError(f"unknown shift(s) {unknown}: choose from {SHIFTS}")
    samples, classes = folder_samples(src)
    digest = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:10]
    out = []
    for shift in shifts:
        dst = Path(cache_dir) / f"{src.name}-{shift}-{digest}"
        out.append(dst)
        if dst.exists() or not build:
            continue
        tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
        for path, label in samples:
            img = Image.open(path).convert("RGB")
            target = tmp / classes[label] / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if shift == "gray":
                img.convert("L").convert("RGB").save(target.with_suffix(".png"))
            elif shift == "blur":
                blurred = img.filter(ImageFilter.GaussianBlur(radius=max(1.0, min(img.size) / 32)))
                blurred.save(target.with_suffix(".png"))
            else:
                img.save(target.with_suffix(".jpg"), quality=10)
        try:
            tmp.rename(dst)
        except OSError:  # another run built the same copy meanwhile: keep theirs
            if not dst.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    return out
