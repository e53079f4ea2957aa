"""NumPy converter: images from an ``.npy`` (with labels from another ``.npy``) or an ``.npz``.

Images: N x H x W, N x H x W x C (C in 1, 3, 4), uint8 or uint16. Labels: N integers. ``.npy`` files are
memory-mapped, so arrays larger than RAM convert fine; pickled objects are refused.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..writer import WriteReport, write_dataset


class ArraySamples:
    """(images[i], labels[i]) pairs over two arrays, as write_dataset wants them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        if images.ndim not in (3, 4):
            raise ValueError(f"images must be N x H x W or N x H x W x C, got shape {images.shape}")
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be {len(images)} integers, got shape {labels.shape} {labels.dtype}")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.asarray(self.images[i]), int(self.labels[i])


def load_arrays(images_path: str | os.PathLike, labels_path: str | os.PathLike | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from ``images.npy`` + ``labels.npy`` or one ``.npz`` with keys images/labels."""
    images_path = os.fspath(images_path)
    try:
        if images_path.endswith(".npz"):
            if labels_path is not None:
                raise ValueError("--labels is only for .npy images; an .npz must hold 'images' and 'labels'")
            with np.load(images_path, allow_pickle=False) as npz:
                missing = {"images", "labels"} - set(npz.files)
                if missing:
                    raise ValueError(f"{images_path}: missing keys {sorted(missing)} (has {npz.files})")
                return npz["images"], npz["labels"]
        if labels_path is None:
            raise ValueError(f"{images_path}: .npy images need a labels .npy (--labels)")
        return (np.load(images_path, mmap_mode="r", allow_pickle=False),
                np.load(labels_path, allow_pickle=False))
    except (OSError, EOFError) as exc:
        raise ValueError(f"cannot read arrays from {images_path}: {exc}") from None


def convert_numpy(src: str | os.PathLike, dst: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                  **write_options: Any) -> WriteReport:
    """Convert arrays into one dataset file; options are those of ``write_dataset``."""
    images, label_array = load_arrays(src, labels)
    description = {"source": "numpy", "file": os.path.basename(os.fspath(src))}
    return write_dataset(dst, ArraySamples(images, label_array), description=description, **write_options)
