"""The op contract: validated arguments plus two Numba kernels (sample parameters, apply them).

Sampling and applying are separate so one parameter draw can be checked against torchvision, and so the
loader can look at every view's crop box before it decodes the image (decode once, DCT-scaled).

A view is a list of ops: one :class:`GeometryOp` first (it turns the stored image into the working image of
the output size), then any number of :class:`PixelOp` (in-place on the working image, uint8 H x W x 3,
C-order), optionally ending with :class:`Normalize` (handled by the store step of ``plan.py``).

Each op owns ``len(param_names)`` consecutive float64 columns of the view's parameter row; its sampler
writes them and its kernel reads them. The rows are returned to users who ask for the parameters, so the
names should say what the numbers are (``"flip"``, ``"brightness"``...).

Kernels must be ``numba.njit(nogil=True, cache=True)`` functions (or closures over compile-time constants)
with no global mutable state: the loader calls them from several threads at once.
"""
from __future__ import annotations

import numbers
from typing import Callable

import numba as nb
import numpy as np

from .. import rng


class Op:
    """Base class of every augmentation op."""

    #: names of the float64 parameter columns this op writes (its slice of the view's parameter row)
    param_names: tuple[str, ...] = ()

    def make_sampler(self) -> Callable:
        """Return an njit ``sample(state: uint64[1], params: float64[:]) -> None`` filling this op's columns.

        ``state`` is the (seed, epoch, sample, view) stream from :mod:`fastssl_loader.rng`.
        Geometry ops take ``(state, height, width, params)`` instead (see :class:`GeometryOp`).
        """
        raise NotImplementedError

    def make_kernel(self) -> Callable:
        """Return the njit function that applies the op given its parameter slice."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class GeometryOp(Op):
    """First op of a view: maps the stored image to a working image of the output size.

    sampler: ``sample(state, height, width, params) -> None`` where height/width are the STORED image's.
    kernel:  ``apply(src: uint8[:], offset: int64, src_h, src_w, stored_h, stored_w, params: float64[:],
    out: uint8[:, :, ::1]) -> None``; ``src[offset:]`` holds a C-order src_h x src_w x 3 image that may be a
    DCT-downscaled decode of the stored image, so boxes are mapped by ``src_h / stored_h``; ``out`` is the
    (H, W, 3) working image whose size is the output size of the current epoch.
    """

    #: True when the kernel reads only source pixels inside its crop box (mapped by src / stored): the loader
    #: may then decode only the union of a sample's boxes (region decoding); False is always safe
    clamp_to_box: bool = False

    def output_size(self, epoch: int) -> tuple[int, int]:
        """(H, W) of this view's output at ``epoch``."""
        raise NotImplementedError

    @property
    def max_output_size(self) -> tuple[int, int]:
        """Largest (H, W) over all epochs, so buffers are allocated once."""
        raise NotImplementedError

    def crop_box_columns(self) -> tuple[int, int, int, int]:
        """Indices (within this op's columns) of top, left, height, width of the crop box."""
        raise NotImplementedError


class PixelOp(Op):
    """An op that works in place on the (H, W, 3) uint8 working image.

    kernel: ``apply(img: uint8[:, :, ::1], params: float64[:]) -> None``. An op with probability ``p``
    records whether it fired in one of its columns (for example ``"gray"`` = 1.0 or 0.0) and its kernel
    does nothing when it did not.
    """


def check_probability(p: float, op: str) -> float:
    """``p`` as a float, or a ValueError naming the op when it is not a probability."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


@nb.njit(nogil=True, cache=True)
def sample_coin(state: np.ndarray, p: float, params: np.ndarray) -> None:
    """``params[0] = 1.0`` with probability ``p`` (torchvision fires when ``torch.rand(1) < p``), else 0.0."""
    params[0] = 1.0 if rng.rand(state) < p else 0.0


def coin_sampler(p: float) -> Callable:
    """njit ``sample(state, params)`` writing 1.0 to ``params[0]`` with probability ``p`` (fires when rand < p)."""

    @nb.njit(nogil=True, cache=True)
    def sample(state, params):
        sample_coin(state, p, params)

    return sample


class CoinOp(PixelOp):
    """A pixel op with no parameter but whether it fired: probability ``p``, column ``param_names[0]`` (1.0 when
    it fired), then the njit ``kernel(img, params)``, which does nothing when it did not."""

    kernel: staticmethod

    def __init__(self, p: float) -> None:
        self.p = check_probability(p, type(self).__name__)

    def make_sampler(self) -> Callable:
        return coin_sampler(self.p)

    def make_kernel(self) -> Callable:
        return type(self).kernel
