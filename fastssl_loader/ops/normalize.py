"""Normalize: the marker op that asks the store step for torchvision-style ``(x / 255 - mean) / std``.

It has no kernel of its own: ``plan.py`` fuses it into the pass that writes the output batch (one pass over
the pixels), and on a CUDA device the loader may instead ship uint8 and normalise on the GPU with
``ViewPlan.normalize``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Op

#: ImageNet statistics in [0, 1] units, the torchvision / lightly / solo-learn default
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(Op):
    """torchvision ``Normalize(mean, std)`` on images scaled to [0, 1]; must be the last op of a view."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        mean_arr = np.asarray(mean, dtype=np.float64)
        std_arr = np.asarray(std, dtype=np.float64)
        if mean_arr.shape != (3,) or std_arr.shape != (3,):
            raise ValueError(f"Normalize: mean and std need 3 values (R, G, B), got mean={mean!r}, std={std!r}")
        if not np.all(np.isfinite(mean_arr)) or not np.all(np.isfinite(std_arr)) or np.any(std_arr <= 0):
            raise ValueError(f"Normalize: mean must be finite and std finite and > 0, got mean={mean!r}, std={std!r}")
        self.mean = tuple(float(m) for m in mean_arr)
        self.std = tuple(float(s) for s in std_arr)
