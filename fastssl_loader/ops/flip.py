"""RandomHorizontalFlip: mirror the working image left-right with probability ``p`` (torchvision semantics)."""
from __future__ import annotations

from typing import Callable

import numba as nb
import numpy as np

from .. import rng
from .base import PixelOp


@nb.njit(nogil=True, cache=True)
def sample_coin(state: np.ndarray, p: float, params: np.ndarray) -> None:
    """``params[0] = 1.0`` with probability ``p`` (torchvision fires when ``torch.rand(1) < p``), else 0.0."""
    params[0] = 1.0 if rng.rand(state) < p else 0.0


@nb.njit(nogil=True, cache=True)
def flip_kernel(img: np.ndarray, params: np.ndarray) -> None:
    """Reverse the columns of the (H, W, 3) image in place when ``params[0]`` says the flip fired."""
    if params[0] == 0.0:
        return
    h, w = img.shape[0], img.shape[1]
    for y in range(h):
        row = img[y]
        for x in range(w // 2):
            xr = w - 1 - x
            for c in range(3):
                tmp = row[x, c]
                row[x, c] = row[xr, c]
                row[xr, c] = tmp


class RandomHorizontalFlip(PixelOp):
    """torchvision ``RandomHorizontalFlip(p)``; its column ``"flip"`` is 1.0 when the image was mirrored."""

    param_names = ("flip",)

    def __init__(self, p: float = 0.5) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def make_sampler(self) -> Callable:
        p = self.p

        @nb.njit(nogil=True)
        def sample(state, params):
            sample_coin(state, p, params)

        return sample

    def make_kernel(self) -> Callable:
        return flip_kernel
