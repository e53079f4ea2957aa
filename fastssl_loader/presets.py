"""View lists of published SSL recipes: each function returns ``[view, view, ...]``, each view a list of ops.

Values and their sources (lightly = lightly-ai/lightly transforms at HEAD, solo-learn = its augmentation yamls,
papers as named; see shared/reference/ssl-loaders-dali-lightly-sololearn-torchvision.md section 3) are cited
beside each number. Order inside a view follows lightly/torchvision: crop, flip, jitter, grayscale, blur,
solarize, normalise.

Common arguments:

* ``normalize``: True (ImageNet mean/std, the default of lightly, solo-learn and torchvision recipes), False
  (no Normalize op: float output is x / 255, uint8 output raw), or a ``(mean, std)`` pair in [0, 1] units.
* ``cifar``: the small-image flavour. None (default) means ``size <= 32``. It turns Gaussian blur off, as
  lightly's CIFAR-10 benchmarks do (``gaussian_blur=0.0``: blurring 32 px crops destroys them), and
  ``eval_view`` then centre-crops without the 0.875 resize margin.
* sizes may be an int or a :class:`~fastssl_loader.progressive.ProgressiveResolution` for training crops.

Blur kernel size (GaussianBlur with a kernel): SimCLR's rule, about 10 % of the image side made odd,
``2 * floor(0.05 * size) + 1`` (23 at 224 px, the value of BYOL's paper and solo-learn's DALI pipeline; 9 at
96 px). It is the one rule of ``GaussianBlur(kernel_size="auto")`` (``ops.blur.auto_kernel_size``), which the
views use under a ProgressiveResolution (the rule then follows the working image).
"""
from __future__ import annotations

import math
from typing import Sequence, Union

from .ops import (IMAGENET_MEAN, IMAGENET_STD, CenterCrop, ColorJitter, GaussianBlur, Normalize, Op,
                  RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop, RandomSolarize, Resize)
from .ops.blur import auto_kernel_size
from .progressive import ProgressiveResolution

Size = Union[int, ProgressiveResolution]
NormalizeArg = Union[bool, tuple[Sequence[float], Sequence[float]]]
View = list[Op]

#: torchvision / lightly / solo-learn RandomResizedCrop default area range
DEFAULT_SCALE = (0.08, 1.0)
#: sigma range of every recipe's Gaussian blur (SimCLR, BYOL, lightly, solo-learn)
BLUR_SIGMA = (0.1, 2.0)
#: solarize threshold for uint8 images (BYOL paper; lightly RandomSolarization; solo-learn 128)
SOLARIZE_THRESHOLD = 128


def blur_kernel_size(size: Size) -> int | str:
    """SimCLR's blur kernel for an output side ``size``: 10 % of it, odd (23 at 224); "auto" when scheduled."""
    if isinstance(size, ProgressiveResolution):
        return "auto"
    return int(auto_kernel_size(size, size))


def _is_cifar(size: Size, cifar: bool | None) -> bool:
    if cifar is not None:
        return bool(cifar)
    side = size.max if isinstance(size, ProgressiveResolution) else size
    return side <= 32


def _normalize(normalize: NormalizeArg) -> list[Op]:
    if normalize is True:
        return [Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if normalize is False or normalize is None:
        return []
    try:
        mean, std = normalize
    except (TypeError, ValueError):
        raise ValueError(f"presets: normalize must be True, False or (mean, std), got {normalize!r}") from None
    return [Normalize(mean, std)]


def _view(size: Size, *, scale: tuple[float, float], interpolation: str, jitter: tuple[float, float, float, float],
          jitter_p: float, gray_p: float, blur_p: float, solarize_p: float | None, cifar: bool,
          normalize: NormalizeArg, solarize_before_blur: bool = False) -> View:
    """One training view in lightly's op order; ``solarize_p=None`` leaves solarize out."""
    ops: View = [
        RandomResizedCrop(size, scale=scale, interpolation=interpolation),
        RandomHorizontalFlip(0.5),  # p = 0.5 in every recipe
        ColorJitter(*jitter, p=jitter_p),
        RandomGrayscale(gray_p),
    ]
    blur = [] if cifar or blur_p == 0.0 else [GaussianBlur(blur_kernel_size(size), sigma=BLUR_SIGMA, p=blur_p)]
    solarize = [] if solarize_p is None else [RandomSolarize(SOLARIZE_THRESHOLD, p=solarize_p)]
    ops += solarize + blur if solarize_before_blur else blur + solarize
    return ops + _normalize(normalize)


def simclr(size: Size = 224, normalize: NormalizeArg = True, cifar: bool | None = None) -> list[View]:
    """SimCLR (Chen et al. 2020), lightly ``SimCLRTransform`` defaults: two identical views."""
    small = _is_cifar(size, cifar)
    view = dict(scale=DEFAULT_SCALE,            # lightly min_scale=0.08
                interpolation="bilinear",       # lightly SimCLRTransform (torchvision default)
                jitter=(0.8, 0.8, 0.8, 0.2),    # lightly cj_bright/contrast/sat/hue 0.8/0.8/0.8/0.2, cj_strength 1.0
                jitter_p=0.8,                   # lightly cj_prob
                gray_p=0.2,                     # lightly random_gray_scale
                blur_p=0.5,                     # lightly gaussian_blur=0.5
                solarize_p=None,                # SimCLR has no solarize
                cifar=small, normalize=normalize)
    return [_view(size, **view), _view(size, **view)]


def _byol_pair(size: Size, interpolation: str, normalize: NormalizeArg, cifar: bool | None) -> list[View]:
    """The BYOL asymmetric pair (BYOL paper table 6; lightly BYOLView1/2Transform; solo-learn asymmetric.yaml)."""
    small = _is_cifar(size, cifar)
    common = dict(scale=DEFAULT_SCALE,          # BYOL paper / lightly: (0.08, 1)
                  interpolation=interpolation,
                  jitter=(0.4, 0.4, 0.2, 0.1),  # BYOL paper: brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1
                  jitter_p=0.8,                 # BYOL paper: colour jitter p 0.8
                  gray_p=0.2,                   # BYOL paper: grayscale p 0.2
                  cifar=small, normalize=normalize)
    return [_view(size, blur_p=1.0, solarize_p=0.0, **common),   # BYOL: view 1 blur 1.0, solarize 0.0
            _view(size, blur_p=0.1, solarize_p=0.2, **common)]   # BYOL: view 2 blur 0.1, solarize 0.2


def byol(size: Size = 224, normalize: NormalizeArg = True, cifar: bool | None = None) -> list[View]:
    """BYOL (Grill et al. 2020): asymmetric blur 1.0 / 0.1 and solarize 0.0 / 0.2; lightly uses bilinear."""
    return _byol_pair(size, "bilinear", normalize, cifar)


def vicreg(size: Size = 224, normalize: NormalizeArg = True, cifar: bool | None = None) -> list[View]:
    """VICReg (Bardes et al. 2022, appendix: "we follow BYOL's augmentations"): the BYOL asymmetric pair, bicubic
    as in the official repo. lightly's ``VICRegTransform`` instead uses symmetric blur 0.5 / solarize 0.1."""
    return _byol_pair(size, "bicubic", normalize, cifar)


def barlow(size: Size = 224, normalize: NormalizeArg = True, cifar: bool | None = None) -> list[View]:
    """Barlow Twins (Zbontar et al. 2021): BYOL's augmentations (blur 1.0 / 0.1, solarize 0.0 / 0.2); the official
    repo crops with bicubic interpolation; lightly's Barlow benchmark uses ``BYOLTransform``."""
    return _byol_pair(size, "bicubic", normalize, cifar)


def _dino_views(global_size: Size, local_size: Size, n_global: int, n_local: int,
                global_scale: tuple[float, float], local_scale: tuple[float, float], normalize: NormalizeArg,
                cifar: bool | None) -> list[View]:
    """DINO multi-crop views (Caron et al. 2021; lightly ``DINOTransform``)."""
    if n_global < 1 or n_local < 0:
        raise ValueError(f"presets: need n_global >= 1 and n_local >= 0, got {n_global}, {n_local}")
    common = dict(interpolation="bicubic",      # DINO / lightly DINOTransform: bicubic
                  jitter=(0.4, 0.4, 0.2, 0.1),  # DINO: ColorJitter(0.4, 0.4, 0.2, 0.1); lightly 0.8/0.8/0.4/0.2 x 0.5
                  jitter_p=0.8,                 # DINO / lightly: p 0.8
                  gray_p=0.2,                   # DINO / lightly: p 0.2
                  normalize=normalize)
    small = _is_cifar(global_size, cifar)
    views = []
    for g in range(n_global):
        blur_p = 1.0 if g == 0 else 0.1         # DINO global 1: blur 1.0; global 2: blur 0.1
        solarize_p = None if g == 0 else 0.2    # DINO global 2 only: solarize 0.2
        views.append(_view(global_size, scale=global_scale, blur_p=blur_p, solarize_p=solarize_p,
                           cifar=small, **common))
    for _ in range(n_local):                    # DINO local crops: blur 0.5, no solarize
        views.append(_view(local_size, scale=local_scale, blur_p=0.5, solarize_p=None, cifar=small, **common))
    return views


def dino(global_size: Size = 224, local_size: Size = 96, n_local: int = 6,
         global_scale: tuple[float, float] = (0.4, 1.0), local_scale: tuple[float, float] = (0.05, 0.4),
         normalize: NormalizeArg = True, cifar: bool | None = None) -> list[View]:
    """DINO multi-crop: 2 global views (224 px, scale (0.4, 1)) + ``n_local`` local views (96 px, (0.05, 0.4)).

    Defaults are DINO's ``global_crops_scale=(0.4, 1.)``, ``local_crops_scale=(0.05, 0.4)``,
    ``local_crops_number=8`` in the paper's best runs (6 in lightly's default and here).
    """
    return _dino_views(global_size, local_size, 2, n_local, global_scale, local_scale, normalize, cifar)


def _mean_side(scale: tuple[float, float]) -> float:
    """E[sqrt(a)] for an area fraction a ~ U(scale): the mean crop side as a fraction of the image side."""
    lo, hi = scale
    if hi == lo:
        return math.sqrt(lo)
    return (2.0 / 3.0) * (hi ** 1.5 - lo ** 1.5) / (hi - lo)


def sslight_local_size(global_size: int, split: float, multiple_of: int = 8) -> int:
    """Local output size giving local views the same mean pixel scale (output px per image px) as global ones.

    pixel scale = output side / crop side, so ``local = global * E[sqrt(a_local)] / E[sqrt(a_global)]`` with
    a_global ~ U(split, 1) and a_local ~ U(0.05, split), rounded to a multiple of ``multiple_of``
    (224 px and split 0.35 give 120 px).
    """
    ratio = _mean_side((0.05, split)) / _mean_side((split, 1.0))
    return max(multiple_of, int(round(global_size * ratio / multiple_of)) * multiple_of)


def sslight(global_size: int = 224, split: float = 0.35, n_local: int = 6, local_size: int | None = None,
            normalize: NormalizeArg = True, cifar: bool | None = None) -> list[View]:
    """SSLight view sampling (Tan et al., "Effective Self-supervised Pre-training on Low-compute Networks without
    Distillation", ICLR 2023): global crops from scale (split, 1), local crops from (0.05, split), split about
    0.3-0.4 (0.35 here, mid-range), DINO's per-view colour/blur/solarize recipe, and a local output size from
    :func:`sslight_local_size` unless given (so small networks see both kinds of views at one pixel scale).
    """
    if not 0.05 < split < 1.0:
        raise ValueError(f"presets.sslight: split must lie in (0.05, 1), got {split!r}")
    if local_size is None:
        local_size = sslight_local_size(global_size, split)
    return _dino_views(global_size, local_size, 2, n_local, (split, 1.0), (0.05, split), normalize, cifar)


def eval_view(size: int = 224, normalize: NormalizeArg = True, cifar: bool | None = None,
              crop_fraction: float = 0.875, interpolation: str = "bilinear") -> View:
    """Un-augmented evaluation view: ``Resize(round(size / crop_fraction))`` then ``CenterCrop(size)``
    (the torchvision ImageNet protocol, 256 -> 224); for the CIFAR flavour just ``CenterCrop(size)``."""
    if not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"presets.eval_view: crop_fraction must lie in (0, 1], got {crop_fraction!r}")
    if _is_cifar(size, cifar):
        return [CenterCrop(size)] + _normalize(normalize)
    return [Resize(int(round(size / crop_fraction)), crop=size, interpolation=interpolation)] + _normalize(normalize)


def scale_jitter(view: View, strength: float) -> View:
    """``view`` with every ColorJitter range scaled by ``strength`` around the identity (lightly's
    ``cj_strength``; its CIFAR-10 SimCLR benchmark uses 0.5); other ops are kept as they are."""
    def scaled(r: tuple[float, float] | None, center: float, lower: float) -> tuple[float, float] | None:
        return None if r is None else (max(center + strength * (r[0] - center), lower),
                                       center + strength * (r[1] - center))

    return [ColorJitter(scaled(op.brightness, 1.0, 0.0), scaled(op.contrast, 1.0, 0.0),
                        scaled(op.saturation, 1.0, 0.0), scaled(op.hue, 0.0, -0.5), p=op.p)
            if isinstance(op, ColorJitter) else op for op in view]
