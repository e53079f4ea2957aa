"""Bigger dataset files from a small one: its stored samples repeated, written without re-encoding.

Benchmarks need many samples (whole epochs of many batches, ImageNet-sized indexes) but only a few hundred
real photos travel to a test machine. :func:`write_repeated` writes ``num_samples`` samples cycling through
a converted file's samples: JPEG payloads are passed through byte for byte (no decode, no re-encode), raw
samples are copied. With ``transform`` every distinct sample is decoded once, transformed (e.g. shrunk to
32 x 32 for a CIFAR-sized file) and stored raw when small (``mode="auto"``). Label of sample i: the label of
source sample ``i % len(source)``.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from fastssl_loader.format import STORAGE_JPEG
from fastssl_loader.reader import DatasetReader
from fastssl_loader.writer import WriteReport, write_dataset


class RepeatedSamples:
    """``(image, label)`` items cycling through a converted file; each distinct item is built once."""

    def __init__(self, source: str | os.PathLike, num_samples: int,
                 transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.reader = DatasetReader(source)
        if len(self.reader) == 0:
            raise ValueError(f"{source}: no samples to repeat")
        self.num_samples = int(num_samples)
        self.transform = transform
        self._items: dict[int, tuple[Any, int]] = {}

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if not 0 <= i < self.num_samples:
            raise IndexError(i)
        j = i % len(self.reader)
        if j not in self._items:
            r = self.reader
            if self.transform is not None:
                image: Any = self.transform(r.image(j))
            elif r.storage[j] == STORAGE_JPEG:
                image = r.encoded(j)
            else:
                image = r.image(j)
            self._items[j] = (image, int(r.labels[j]))
        return self._items[j]


def write_repeated(source: str | os.PathLike, dest: str | os.PathLike, num_samples: int, *,
                   transform: Callable[[np.ndarray], np.ndarray] | None = None,
                   num_workers: int | None = None) -> WriteReport:
    """Write ``num_samples`` samples cycling through ``source`` to ``dest`` (see the module docstring).

    ``num_workers`` as in :func:`write_dataset` (None: one process per core): a passed-through JPEG is still
    decoded once by the writer to check it, so big files are written in parallel.
    """
    samples = RepeatedSamples(source, num_samples, transform)
    return write_dataset(dest, samples, mode="auto", num_workers=num_workers, progress=False,
                         description={"repeated_from": os.fspath(source), "distinct": len(samples.reader)})


class SquareThumbnail:
    """A transform: the centre square of an RGB image, area-downscaled to ``size`` x ``size`` (picklable)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = np.ascontiguousarray(rgb[top:top + side, left:left + side])
        return cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA)
