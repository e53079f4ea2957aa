"""torchvision's twin of our views: ONE mapping from our ops to torchvision transforms, and a DataLoader around it.

:func:`to_torchvision` is the single translation used by the tests' oracles, the benchmarks' baseline and
``train_ref.py --loader torchvision``; supporting a new op in all of them means one new branch here.

Two torchvision APIs:

* ``api="v2"``: ``torchvision.transforms.v2`` on uint8 tensors (``ToImage`` first, so PIL images, HxWx3 arrays
  and CHW tensors are accepted). These are the kernels our ops follow: the README's tolerances hold against it.
* ``api="v1"``: ``torchvision.transforms`` on PIL images, what most SSL code bases run. PIL's kernels differ from
  the tensor ones by a few levels: its resize filter, its integer luma (grayscale, saturation), its contrast mean
  rounded to an integer and its hue shift quantised to 1/255.

``blur="pil"`` replaces torchvision's ``GaussianBlur(kernel, sigma)`` by PIL's ``ImageFilter.GaussianBlur(radius=
sigma)`` (lightly's choice; a box-filter approximation without a kernel size, often much faster on CPU).
Randomness is torch's, not our counter-based streams: same distributions, not the same draws.
torchvision is imported lazily, so ``import fastssl_loader`` does not load it.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .cpu import usable_cores
from .ops import (ColorJitter, GaussianBlur, GeometryOp, Normalize, Op, RandomGrayscale, RandomHorizontalFlip,
                  RandomResizedCrop, RandomSolarize, Resize)
from .ops.blur import auto_kernel_size

APIS = ("v1", "v2")
BLURS = ("torchvision", "pil")


class PILGaussianBlur:
    """lightly's blur: ``ImageFilter.GaussianBlur(radius=sigma)`` with sigma ~ U(sigma_min, sigma_max) per call.

    Takes PIL images, or uint8 CHW tensors (converted to PIL and back) inside a v2 pipeline.
    """

    def __init__(self, sigma: tuple[float, float]) -> None:
        self.sigma = sigma

    def __call__(self, img: Any) -> Any:
        from PIL import Image, ImageFilter

        radius = random.uniform(*self.sigma)
        if isinstance(img, Image.Image):
            return img.filter(ImageFilter.GaussianBlur(radius=radius))
        from torchvision.transforms.v2 import functional as F

        return F.pil_to_tensor(F.to_pil_image(img).filter(ImageFilter.GaussianBlur(radius=radius)))

    def __repr__(self) -> str:
        return f"PILGaussianBlur(sigma={self.sigma})"


def _check_api(api: str) -> str:
    if api not in APIS:
        raise ValueError(f"unknown torchvision api {api!r}: choose from {APIS}")
    return api


def _module(api: str) -> Any:
    """``torchvision.transforms`` (v1) or ``torchvision.transforms.v2``."""
    if _check_api(api) == "v1":
        from torchvision import transforms
        return transforms
    from torchvision.transforms import v2
    return v2


def _range(r: tuple[float, float] | None) -> tuple[float, float] | int:
    """A ColorJitter range for torchvision: 0 (v1's and v2's "off") for an absent factor."""
    return 0 if r is None else r


def _op_transforms(T: Any, op: Op, out_size: tuple[int, int] | None, blur: str) -> list[Callable]:
    """The torchvision transforms of one op (a fused Resize + CenterCrop gives two); Normalize is handled outside."""
    modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    if isinstance(op, RandomResizedCrop):
        return [T.RandomResizedCrop(out_size, scale=op.scale, ratio=op.ratio, interpolation=modes[op.interpolation],
                                    antialias=op.antialias)]
    if isinstance(op, Resize):  # also CenterCrop: a resize (shorter side or exact) then a centre crop
        steps = []
        if op.size is not None:
            steps.append(T.Resize(op.size, interpolation=modes[op.interpolation], antialias=op.antialias))
        if op.crop is not None:
            steps.append(T.CenterCrop(op.crop))
        return steps
    if isinstance(op, RandomHorizontalFlip):
        return [T.RandomHorizontalFlip(op.p)]
    if isinstance(op, ColorJitter):
        jitter = T.ColorJitter(_range(op.brightness), _range(op.contrast), _range(op.saturation), _range(op.hue))
        return [T.RandomApply([jitter], p=op.p)]
    if isinstance(op, RandomGrayscale):
        return [T.RandomGrayscale(op.p)]
    if isinstance(op, GaussianBlur):
        if blur == "pil":
            return [T.RandomApply([PILGaussianBlur(op.sigma)], p=op.p)]
        if op.kernel_size != "auto":
            kernel = op.kernel_size
        elif out_size is not None:
            kernel = auto_kernel_size(*out_size)
        else:
            raise ValueError(f"{op!r}: kernel_size='auto' needs a geometry op before it (the size it applies to)")
        return [T.RandomApply([T.GaussianBlur(kernel, op.sigma)], p=op.p)]
    if isinstance(op, RandomSolarize):
        return [T.RandomSolarize(op.threshold, p=op.p)]
    raise ValueError(f"no torchvision equivalent for op {op!r}")


def to_torchvision(view: Sequence[Op], api: str = "v2", *, blur: str = "torchvision",
                   to_float: bool = True) -> Callable:
    """The torchvision ``Compose`` equivalent to one view (a list of our ops), in the view's order.

    With ``to_float`` (default) the output is a float32 CHW tensor: normalised by a trailing ``Normalize``,
    else scaled to [0, 1] like our Loader's float output. ``to_float=False`` keeps uint8 (a PIL image for v1,
    a uint8 tensor for v2), for comparisons with the Loader's ``dtype=torch.uint8`` output; a view with
    ``Normalize`` then raises. A progressive output size has no torchvision equivalent and raises.
    """
    if blur not in BLURS:
        raise ValueError(f"unknown blur implementation {blur!r}: choose from {BLURS}")
    T = _module(api)
    steps: list[Callable] = [T.ToImage()] if api == "v2" else []
    out_size: tuple[int, int] | None = None  # the working image size, for GaussianBlur(kernel_size="auto")
    normalize = None
    for i, op in enumerate(view):
        if isinstance(op, Normalize):
            if i != len(view) - 1:
                raise ValueError(f"Normalize must be the last op of a view, got it at position {i}")
            normalize = op
            continue
        if isinstance(op, GeometryOp):
            if not isinstance(op.max_output_size, tuple) or op.output_size(0) != op.max_output_size:
                raise ValueError(f"torchvision cannot follow a progressive output size ({op!r})")
            out_size = op.max_output_size
        steps += _op_transforms(T, op, out_size, blur)
    if to_float:
        steps.append(T.ToTensor() if api == "v1" else T.ToDtype(torch.float32, scale=True))
        if normalize is not None:
            steps.append(T.Normalize(list(normalize.mean), list(normalize.std)))
    elif normalize is not None:
        raise ValueError("to_float=False keeps uint8 pixels: drop the view's Normalize op")
    return T.Compose(steps)


def load_image(item: Any, api: str) -> Any:
    """One source image as the ``api`` expects it: a PIL RGB image (v1) or a uint8 CHW tensor (v2).

    ``item`` is a file path (v2 decodes with ``torchvision.io``, libjpeg-turbo for JPEGs), a PIL image or an
    HxWx3 uint8 array.
    """
    from PIL import Image

    if isinstance(item, (str, Path)):
        if api == "v1":
            with Image.open(item) as im:
                return im.convert("RGB")
        from torchvision.io import ImageReadMode, decode_image

        data = torch.frombuffer(bytearray(Path(item).read_bytes()), dtype=torch.uint8)
        return decode_image(data, mode=ImageReadMode.RGB)
    if isinstance(item, np.ndarray):
        return Image.fromarray(item) if api == "v1" else torch.from_numpy(np.ascontiguousarray(item)).permute(2, 0, 1)
    if isinstance(item, Image.Image):
        return item.convert("RGB") if api == "v1" else _module("v2").functional.pil_to_tensor(item.convert("RGB"))
    raise TypeError(f"cannot load an image from {type(item).__name__}")


class MultiViewDataset(torch.utils.data.Dataset):
    """(image, label) items -> (list of views, label): each image is loaded once and every view transforms it.

    ``items[i]`` is ``(path | PIL image | HxWx3 uint8 array, label)``; ``transforms`` come from
    :func:`to_torchvision` with the same ``api``.
    """

    def __init__(self, items: Sequence[tuple[Any, int]], transforms: Sequence[Callable], api: str) -> None:
        self.items, self.transforms, self.api = items, list(transforms), _check_api(api)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[list[torch.Tensor], int]:
        source, label = self.items[i]
        try:
            img = load_image(source, self.api)
        except Exception as e:  # name the sample: a bare decoder error does not say which one
            name = source if isinstance(source, (str, Path)) else type(source).__name__
            raise ValueError(f"cannot decode sample {i} ({name}): {e}") from e
        return [t(img) for t in self.transforms], int(label)


class TorchvisionLoader:
    """torchvision's DataLoader over the same views, with our Loader's interface: ``set_epoch``, ``warmup``,
    ``len``; yields ``(views, labels)``.

    Training shuffles with a DistributedSampler (a rank's shard; world 1 = plain shuffle) and drops the last
    partial batch; evaluation keeps the order and every sample. Worker seeds come from a generator reseeded
    from (seed, epoch), so an epoch's batches do not depend on what ran before it.
    """

    def __init__(self, items: Sequence[tuple[Any, int]], views: Sequence[Sequence[Op]], batch_size: int,
                 num_workers: int | None = None, seed: int = 0, train: bool = True, rank: int = 0, world: int = 1,
                 api: str = "v2") -> None:
        from torch.utils.data import DataLoader, DistributedSampler

        dataset = MultiViewDataset(items, [to_torchvision(v, api) for v in views], api)
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True) if train else None
        self.generator = torch.Generator()
        self.seed = seed
        workers = usable_cores() if num_workers is None else num_workers
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers,
                                 drop_last=train, generator=self.generator, persistent_workers=False)

    def warmup(self) -> float:
        """Nothing to compile (our Loader's warmup compiles its kernels); returns the seconds spent: 0."""
        return 0.0

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed * 1_000_003 + epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        return iter(self.loader)
