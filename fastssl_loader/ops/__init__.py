"""Augmentation ops. A view is a list: one geometry op, pixel ops in order, optionally a final Normalize.

Geometry: :class:`RandomResizedCrop`, :class:`Resize`, :class:`CenterCrop`. Pixel ops: :class:`RandomHorizontalFlip`,
:class:`ColorJitter`, :class:`RandomGrayscale`, :class:`RandomSolarize`, :class:`GaussianBlur`. Store:
:class:`Normalize`. Each follows torchvision.transforms.v2 on uint8 tensors (see each class).
"""
from __future__ import annotations

from .base import GeometryOp, Op, PixelOp
from .blur import GaussianBlur
from .color import ColorJitter, RandomGrayscale, RandomSolarize
from .crop import CenterCrop, RandomResizedCrop, Resize
from .flip import RandomHorizontalFlip
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize

__all__ = [
    "Op", "GeometryOp", "PixelOp",
    "RandomResizedCrop", "Resize", "CenterCrop",
    "RandomHorizontalFlip", "ColorJitter", "RandomGrayscale", "RandomSolarize", "GaussianBlur",
    "Normalize", "IMAGENET_MEAN", "IMAGENET_STD",
]
