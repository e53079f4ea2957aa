"""The one mapping of our views to torchvision (fastssl_loader.reference): the transforms it builds for every op
and preset, and our Loader's pixels against the mapped torchvision v2 pipeline where both are deterministic."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import fastssl_loader as fsl
from fastssl_loader import ops, presets
from fastssl_loader.progressive import ProgressiveResolution
from fastssl_loader.reference import (APIS, MultiViewDataset, PILGaussianBlur, TorchvisionLoader, load_image,
                                      to_torchvision)


# ---------------------------------------------------------------- transform types and arguments

def _interp(mode) -> str:
    return str(mode).split(".")[-1].lower()


def tv_steps(compose) -> list[tuple]:
    """(kind, arguments...) per step of a torchvision Compose, v1 or v2, in a comparable form (no ToImage)."""
    out = []
    for t in compose.transforms:
        name = type(t).__name__
        if name == "RandomApply":
            (inner,) = t.transforms
            p, iname = float(t.p), type(inner).__name__
            if iname == "ColorJitter":
                ranges = [None if r is None else tuple(float(x) for x in r)
                          for r in (inner.brightness, inner.contrast, inner.saturation, inner.hue)]
                out.append(("jitter", p, tuple(ranges)))
            elif iname == "GaussianBlur":
                out.append(("blur", p, int(inner.kernel_size[0]), tuple(float(s) for s in inner.sigma)))
            elif iname == "PILGaussianBlur":
                out.append(("blur", p, "pil", tuple(inner.sigma)))
            else:
                raise AssertionError(f"unexpected RandomApply({iname})")
        elif name == "RandomResizedCrop":
            out.append(("crop", tuple(t.size), tuple(t.scale), tuple(t.ratio), _interp(t.interpolation),
                        bool(t.antialias)))
        elif name == "Resize":
            size = t.size if isinstance(t.size, int) else tuple(t.size)
            size = size[0] if isinstance(size, tuple) and len(size) == 1 else size  # v2 keeps [s] for a side
            out.append(("resize", size, _interp(t.interpolation)))
        elif name == "CenterCrop":
            out.append(("center_crop", tuple(t.size)))
        elif name == "RandomHorizontalFlip":
            out.append(("flip", float(t.p)))
        elif name == "RandomGrayscale":
            out.append(("gray", float(t.p)))
        elif name == "RandomSolarize":
            out.append(("solarize", float(t.p), float(t.threshold)))
        elif name == "Normalize":
            out.append(("normalize", tuple(float(m) for m in t.mean), tuple(float(s) for s in t.std)))
        elif name in ("ToTensor", "ToDtype"):
            out.append(("to_float",))
        elif name != "ToImage":
            raise AssertionError(f"unexpected transform {name}")
    return out


def our_steps(view: list, blur: str = "torchvision") -> list[tuple]:
    """What the mapping must produce for ``view``, written from our ops' attributes."""
    out, side = [], None
    for op in view:
        if isinstance(op, ops.RandomResizedCrop):
            side = min(op.size)
            out.append(("crop", tuple(op.size), op.scale, op.ratio, op.interpolation, op.antialias))
        elif isinstance(op, ops.Resize):
            if op.size is not None:
                out.append(("resize", op.size, op.interpolation))
            if op.crop is not None:
                crop = (op.crop, op.crop) if isinstance(op.crop, int) else tuple(op.crop)
                out.append(("center_crop", crop))
            side = min(op.max_output_size)
        elif isinstance(op, ops.RandomHorizontalFlip):
            out.append(("flip", op.p))
        elif isinstance(op, ops.ColorJitter):
            out.append(("jitter", op.p, (op.brightness, op.contrast, op.saturation, op.hue)))
        elif isinstance(op, ops.RandomGrayscale):
            out.append(("gray", op.p))
        elif isinstance(op, ops.GaussianBlur):
            kernel = "pil" if blur == "pil" else (2 * int(side // 20) + 1 if op.kernel_size == "auto"
                                                  else op.kernel_size)
            out.append(("blur", op.p, kernel, op.sigma))
        elif isinstance(op, ops.RandomSolarize):
            out.append(("solarize", op.p, op.threshold))
        elif isinstance(op, ops.Normalize):
            out.append(("normalize", op.mean, op.std))
        else:
            raise AssertionError(f"unexpected op {op!r}")
    if not out or out[-1][0] != "normalize":
        return out + [("to_float",)]
    return out[:-1] + [("to_float",), out[-1]]


def rounded(x):
    """Floats rounded to 6 decimals, recursively (torchvision stores some values as float32)."""
    if isinstance(x, (list, tuple)):
        return type(x)(rounded(v) for v in x)
    return round(x, 6) if isinstance(x, float) else x


SINGLE_OPS = {
    "rrc": [ops.RandomResizedCrop(24, scale=(0.2, 0.9), ratio=(0.5, 2.0), interpolation="bicubic",
                                  antialias=False)],
    "resize_exact": [ops.Resize((20, 30))],
    "resize_crop": [ops.Resize(24, crop=20, interpolation="bicubic")],
    "center_crop": [ops.CenterCrop(20)],
    "flip": [ops.CenterCrop(20), ops.RandomHorizontalFlip(0.3)],
    "jitter": [ops.CenterCrop(20), ops.ColorJitter(0.4, 0.0, 0.2, 0.1, p=0.7)],
    "jitter_one": [ops.CenterCrop(20), ops.ColorJitter(brightness=(0.5, 0.9), p=1.0)],
    "gray": [ops.CenterCrop(20), ops.RandomGrayscale(0.2)],
    "blur": [ops.CenterCrop(20), ops.GaussianBlur(5, sigma=(0.5, 1.5), p=0.4)],
    "blur_auto": [ops.RandomResizedCrop(64), ops.GaussianBlur("auto")],
    "solarize": [ops.CenterCrop(20), ops.RandomSolarize(100, p=0.6)],
    "normalize": [ops.CenterCrop(20), ops.Normalize((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))],
}

PRESETS = {
    "simclr224": presets.simclr(224), "simclr32": presets.simclr(32), "byol224": presets.byol(224),
    "vicreg96": presets.vicreg(96), "barlow224": presets.barlow(224), "dino": presets.dino(),
    "sslight": presets.sslight(), "eval224": [presets.eval_view(224)], "eval32": [presets.eval_view(32)],
}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("name", sorted(SINGLE_OPS))
def test_every_op_maps_to_the_expected_transform(name, api):
    view = SINGLE_OPS[name]
    compose = to_torchvision(view, api)
    assert rounded(tv_steps(compose)) == rounded(our_steps(view))
    assert (type(compose.transforms[0]).__name__ == "ToImage") == (api == "v2")
    assert type(compose.transforms[-1 if name != "normalize" else -2]).__name__ == \
        ("ToTensor" if api == "v1" else "ToDtype")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_maps_view_by_view(name):
    for view in PRESETS[name]:
        for api in APIS:
            assert rounded(tv_steps(to_torchvision(view, api))) == rounded(our_steps(view))
        with_pil = to_torchvision(view, "v1", blur="pil")
        assert rounded(tv_steps(with_pil)) == rounded(our_steps(view, blur="pil"))


def test_blur_kernels_follow_the_one_rule():
    steps = tv_steps(to_torchvision(presets.byol(224)[0], "v2"))
    assert ("blur", 1.0, 23, (0.1, 2.0)) in steps  # the BYOL/SimCLR 23 px kernel at 224 px
    assert presets.blur_kernel_size(224) == 23 and presets.blur_kernel_size(96) == 9
    assert tv_steps(to_torchvision(SINGLE_OPS["blur_auto"], "v2"))[1][2] == 7  # 2 * floor(0.05 * 64) + 1


def test_mapping_rejects_what_torchvision_cannot_do():
    with pytest.raises(ValueError, match="progressive"):
        to_torchvision([ops.RandomResizedCrop(ProgressiveResolution(16, 32, 0, 4))], "v2")
    with pytest.raises(ValueError, match="auto"):
        to_torchvision([ops.GaussianBlur("auto")], "v2")
    with pytest.raises(ValueError, match="api"):
        to_torchvision(SINGLE_OPS["flip"], "v3")
    with pytest.raises(ValueError, match="api"):
        MultiViewDataset([], [], "v3")
    with pytest.raises(ValueError, match="blur"):
        to_torchvision(SINGLE_OPS["blur"], "v2", blur="box")
    with pytest.raises(ValueError, match="uint8"):
        to_torchvision(SINGLE_OPS["normalize"], "v2", to_float=False)
    with pytest.raises(ValueError, match="last"):
        to_torchvision([ops.CenterCrop(8), ops.Normalize(), ops.RandomGrayscale()], "v2")
    with pytest.raises(ValueError, match="no torchvision equivalent"):
        to_torchvision([ops.CenterCrop(8), object()], "v2")


def test_pil_blur_on_pil_images_and_tensors(make_image):
    img = make_image(40, 50)
    blur = PILGaussianBlur((3.0, 3.0))
    pil = load_image(img, "v1")
    out = np.asarray(blur(pil))
    assert out.shape == img.shape and np.abs(out.astype(int) - img).mean() > 1
    t = load_image(img, "v2")
    bt = blur(t)
    assert bt.dtype == torch.uint8 and bt.shape == (3, 40, 50) and (bt.int() - t.int()).abs().float().mean() > 1


def test_dataset_and_loader_give_float_views_and_name_bad_files(tmp_path, make_image):
    from PIL import Image

    files = []
    for i in range(4):
        f = tmp_path / f"img_{i}.jpg"
        Image.fromarray(make_image(30 + i, 40, seed=i)).save(f, quality=90)
        files.append((str(f), i % 2))
    views = presets.byol(16, cifar=False)
    for api in APIS:
        ds = MultiViewDataset(files, [to_torchvision(v, api) for v in views], api)
        (a, b), label = ds[1]
        assert label == 1 and a.dtype == torch.float32 and tuple(a.shape) == tuple(b.shape) == (3, 16, 16)
    loader = TorchvisionLoader(files, views, batch_size=2, num_workers=0, seed=0, train=True)
    loader.set_epoch(0)
    batches = list(loader)
    assert len(loader) == 2 and len(batches) == 2 and tuple(batches[0][0][0].shape) == (2, 3, 16, 16)
    bad = MultiViewDataset([(str(tmp_path / "missing.jpg"), 0)], [], "v2")
    with pytest.raises(ValueError, match="sample 0.*missing.jpg"):
        bad[0]


# ---------------------------------------------------------------- pixels: our Loader against the mapped pipeline

SIDE = 32  # every test image is at least this large, so CenterCrop(SIDE) copies pixels exactly


@pytest.fixture(scope="module")
def photos(tmp_path_factory, shared_data, image_samples) -> Path:
    """A raw .fssl of real photos (imagenet-sample, long side capped at 96 px) when present, else generated ones."""
    sample = shared_data / "imagenet-sample"
    if sample.is_dir():
        items = [(str(p), 0) for p in sorted(sample.glob("*.JPEG"))[:6]]
    else:
        items = [(img, lab) for img, lab in image_samples if min(img.shape[:2]) >= SIDE][:6]
    path = tmp_path_factory.mktemp("reference") / "photos.fssl"
    fsl.write_dataset(path, items, mode="raw", max_resolution=96, num_workers=0, progress=False)
    return path


EXACT = ops.CenterCrop(SIDE)
# name: (view, max level difference, mean difference bound): the README's tolerances per op
DETERMINISTIC = {
    "resize_crop": ([ops.CenterCrop(40, resize=48)], 2, 0.3),
    "resize_exact_bicubic": ([ops.Resize((40, 56), interpolation="bicubic")], 2, 0.3),
    "never_fired": ([EXACT, ops.RandomHorizontalFlip(0.0), ops.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.0),
                     ops.RandomGrayscale(0.0), ops.GaussianBlur(5, p=0.0), ops.RandomSolarize(128, p=0.0)], 0, 0.0),
    "flip": ([EXACT, ops.RandomHorizontalFlip(1.0)], 0, 0.0),
    "brightness": ([EXACT, ops.ColorJitter(brightness=(1.3, 1.3), p=1.0)], 1, 0.1),
    "contrast": ([EXACT, ops.ColorJitter(contrast=(0.6, 0.6), p=1.0)], 1, 0.1),
    "saturation": ([EXACT, ops.ColorJitter(saturation=(1.5, 1.5), p=1.0)], 1, 0.1),
    "hue": ([EXACT, ops.ColorJitter(hue=(0.1, 0.1), p=1.0)], 2, 0.2),
    "gray": ([EXACT, ops.RandomGrayscale(1.0)], 1, 0.1),
    "blur": ([EXACT, ops.GaussianBlur(7, sigma=(1.3, 1.3), p=1.0)], 1, 0.05),
    "solarize": ([EXACT, ops.RandomSolarize(100, p=1.0)], 1, 0.1),
}


def test_loader_matches_mapped_torchvision_on_deterministic_views(photos):
    names = sorted(DETERMINISTIC)
    views = [DETERMINISTIC[n][0] for n in names]
    reader = fsl.DatasetReader(photos)
    loader = fsl.Loader(photos, len(reader), views, num_workers=1, order="sequential", drop_last=False,
                        dtype=torch.uint8)
    (ours, _), = list(loader)
    for name, batch in zip(names, ours):
        view, max_diff, mean_diff = DETERMINISTIC[name]
        tv = to_torchvision(view, "v2", to_float=False)
        ref = torch.stack([tv(reader.image(i)) for i in range(len(reader))])
        assert batch.shape == ref.shape, name
        diff = (batch.int() - ref.int()).abs()
        assert diff.max() <= max_diff and diff.float().mean() <= mean_diff, (name, int(diff.max()),
                                                                             float(diff.float().mean()))


def test_loader_normalisation_matches_mapped_torchvision(photos):
    view = [EXACT, ops.Normalize()]
    reader = fsl.DatasetReader(photos)
    loader = fsl.Loader(photos, len(reader), [view], num_workers=1, order="sequential", drop_last=False)
    ((ours,), _), = list(loader)
    tv = to_torchvision(view, "v2")
    ref = torch.stack([tv(reader.image(i)) for i in range(len(reader))])
    assert torch.allclose(ours, ref, atol=1e-5)
