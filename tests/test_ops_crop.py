"""Geometry ops against torchvision.transforms.v2 on uint8 tensors.

The resize reproduces torch's uint8 fixed-point arithmetic (the AVX2 kernel torch runs on x86 CPUs), so crops
are compared for exact equality wherever torch runs that kernel. Elsewhere (another CPU capability) the
tolerance is max |ours - torchvision| <= 2 levels and mean < 0.3 per image.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision.transforms import InterpolationMode
from torchvision.transforms import RandomResizedCrop as V1RandomResizedCrop
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from fastssl_loader import rng
from fastssl_loader.ops import CenterCrop, RandomResizedCrop, Resize
from fastssl_loader.ops.crop import apply_box, axis_weights
from fastssl_loader.progressive import ProgressiveResolution
from tests.conftest import natural_image

TORCH_FIXED_POINT = torch.backends.cpu.get_cpu_capability() == "AVX2"  # torch's uint8 kernel we reproduce
MAX_DIFF = 0 if TORCH_FIXED_POINT else 2
MEAN_DIFF = 1e-9 if TORCH_FIXED_POINT else 0.3
MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def _resample(img: np.ndarray, params, out_size: tuple[int, int], cubic: bool = False, crop: bool = True,
              src: np.ndarray | None = None) -> np.ndarray:
    """The geometry kernel all geometry ops share, on img (optionally reading a downscaled ``src`` instead)."""
    src = img if src is None else src
    out = np.zeros(tuple(out_size) + (3,), np.uint8)
    apply_box(src.reshape(-1), 0, src.shape[0], src.shape[1], img.shape[0], img.shape[1],
              np.asarray(params, np.float64), out, crop, cubic, True)
    return out


def _ours(op, img: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The op's own compiled geometry kernel (one closure compile per op: keep calls few)."""
    out = np.zeros(op.output_size(0) + (3,), np.uint8)
    op.make_kernel()(img.reshape(-1), 0, img.shape[0], img.shape[1], img.shape[0], img.shape[1], params, out)
    return out


def _assert_close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= MAX_DIFF, f"{what}: max diff {diff.max()}"
    assert diff.mean() < MEAN_DIFF, f"{what}: mean diff {diff.mean():.3f}"


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_resized_crop_matches_torchvision(interpolation: str) -> None:
    gen = np.random.default_rng(7)
    for trial in range(30):
        height, width = (int(v) for v in gen.integers(9, 140, 2))
        img = natural_image(height, width, seed=trial)
        if trial % 3 == 0:  # hard case: pure noise, maximal overshoot for bicubic
            img = gen.integers(0, 256, (height, width, 3), dtype=np.uint8)
        h = int(gen.integers(1, height + 1))
        w = int(gen.integers(1, width + 1))
        top = int(gen.integers(0, height - h + 1))
        left = int(gen.integers(0, width - w + 1))
        # odd, non-square outputs; both upsampling and downsampling on each axis
        out_h, out_w = int(gen.integers(1, 2 * h + 3)), int(gen.integers(1, 2 * w + 3))
        ours = _resample(img, [top, left, h, w], (out_h, out_w), cubic=interpolation == "bicubic")
        ref = _hwc(F.resized_crop(_chw(img), top, left, h, w, [out_h, out_w],
                                  interpolation=MODES[interpolation], antialias=True))
        _assert_close(ours, ref, f"{interpolation} {height}x{width} box {(top, left, h, w)} -> {(out_h, out_w)}")


def test_plain_bilinear_matches_torchvision() -> None:
    """antialias=False: the same fixed-point filter with the support not widened (torch's plain bilinear)."""
    gen = np.random.default_rng(11)
    for trial in range(12):
        height, width = (int(v) for v in gen.integers(20, 120, 2))
        img = natural_image(height, width, seed=100 + trial)
        h, w = int(gen.integers(4, height + 1)), int(gen.integers(4, width + 1))
        top, left = int(gen.integers(0, height - h + 1)), int(gen.integers(0, width - w + 1))
        out_h, out_w = int(gen.integers(2, 2 * h)), int(gen.integers(2, 2 * w))
        out = np.zeros((out_h, out_w, 3), np.uint8)
        apply_box(img.reshape(-1), 0, height, width, height, width, np.array([top, left, h, w], np.float64), out,
                  True, False, False)
        ref = _hwc(F.resized_crop(_chw(img), top, left, h, w, [out_h, out_w], antialias=False))
        _assert_close(out, ref, f"plain bilinear box {(top, left, h, w)} -> {(out_h, out_w)}")


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_large_downscale_sums_stay_exact(interpolation: str) -> None:
    """A 40x downscale: the fixed-point sums outgrow float32's exact integers, so that pass runs in float64."""
    cubic = interpolation == "bicubic"
    first, count, weights, precision = axis_weights(0.0, 1600.0, 40, 0, 1600, cubic, True)
    largest_sum = max(np.abs(weights[i, :count[i]]).sum() for i in range(40))
    assert 2.0 ** (precision - 1) + 255 * largest_sum >= 2 ** 24  # the float64 pass is the one tested
    img = np.random.default_rng(5).integers(0, 256, (1600, 1700, 3), dtype=np.uint8)
    ours = _resample(img, [0, 50, 1600, 1600], (40, 40), cubic=cubic)
    ref = _hwc(F.resized_crop(_chw(img), 0, 50, 1600, 1600, [40, 40], interpolation=MODES[interpolation],
                              antialias=True))
    _assert_close(ours, ref, f"{interpolation} 1600 -> 40")


def test_resized_crop_on_real_photo(imagenet_sample_dir) -> None:
    path = sorted(imagenet_sample_dir.glob("*.JPEG"))[0]
    img = np.array(Image.open(path).convert("RGB"))
    height, width = img.shape[:2]
    op = RandomResizedCrop(224)
    for k, box in enumerate(([0, 0, height, width], [10, 20, height // 3, width // 4], [5, 7, 61, 83])):
        ours = _ours(op, img, np.array(box, np.float64)) if k == 0 else _resample(img, box, (224, 224))
        ref = _hwc(F.resized_crop(_chw(img), *box, [224, 224], antialias=True))
        _assert_close(ours, ref, f"{path.name} box {box}")


def test_downscaled_source_maps_box_in_float() -> None:
    """Reading a 1/2-scale decode gives nearly the pixels of the full image (the box is mapped, not rounded)."""
    img = natural_image(121, 163, seed=3)
    half = np.array(Image.fromarray(img).reduce(2))  # 61 x 82, like a DCT 1/2 decode (ceil sizes)
    params = np.array([13, 27, 95, 121], np.float64)
    full = _resample(img, params, (40, 50)).astype(np.int64)
    reduced = _resample(img, params, (40, 50), src=half).astype(np.int64)
    assert np.abs(full - reduced).mean() < 2.0
    # a wrong mapping (box taken in source pixels) would land elsewhere in the image
    wrong = _resample(img, params / 2, (40, 50)).astype(np.int64)
    assert np.abs(full - wrong).mean() > 4 * np.abs(full - reduced).mean()


@pytest.mark.parametrize("shape", [(375, 500), (500, 375), (224, 224)])
def test_resize_center_crop_matches_torchvision(shape: tuple[int, int]) -> None:
    img = natural_image(*shape, seed=1)
    ref_tf = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224)])
    ref = _hwc(ref_tf(_chw(img)))
    for op in (Resize(256, crop=224), CenterCrop(224, resize=256)):
        params = np.zeros(4)
        op.make_sampler()(rng.new_state(0, 0, 0, 0), shape[0], shape[1], params)
        _assert_close(_ours(op, img, params), ref, f"{op!r} on {shape}")


@pytest.mark.parametrize("shape", [(32, 32), (40, 37), (20, 25)])
def test_center_crop_alone_is_exact(shape: tuple[int, int]) -> None:
    """CenterCrop without resize copies pixels exactly, zero-padding like torchvision when too small."""
    img = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    op = CenterCrop((32, 30))
    params = np.zeros(4)
    op.make_sampler()(rng.new_state(0, 0, 0, 0), shape[0], shape[1], params)
    ref = _hwc(F.center_crop(_chw(img), [32, 30]))
    np.testing.assert_array_equal(_ours(op, img, params), ref)


def test_exact_resize_size() -> None:
    img = natural_image(50, 70, seed=2)
    op = Resize((33, 41), interpolation="bicubic")
    params = np.zeros(4)
    op.make_sampler()(rng.new_state(0, 0, 0, 0), 50, 70, params)
    ref = _hwc(F.resize(_chw(img), [33, 41], interpolation=InterpolationMode.BICUBIC, antialias=True))
    _assert_close(_ours(op, img, params), ref, "Resize((33, 41))")


def _ours_params(op: RandomResizedCrop, height: int, width: int, n: int) -> np.ndarray:
    sampler = op.make_sampler()
    out = np.zeros((n, 4))
    for i in range(n):
        sampler(rng.new_state(123, 0, i, 0), height, width, out[i])
    return out


def _torch_params(op: RandomResizedCrop, height: int, width: int, n: int) -> np.ndarray:
    """torchvision's own sampler (v1 static get_params: the algorithm the v2 transform runs)."""
    torch.manual_seed(0)
    img = torch.empty(3, height, width, dtype=torch.uint8)
    return np.array([V1RandomResizedCrop.get_params(img, list(op.scale), list(op.ratio)) for _ in range(n)],
                    np.float64)


@pytest.mark.parametrize("shape,scale", [((375, 500), (0.08, 1.0)), ((500, 375), (0.08, 1.0)),
                                         ((32, 32), (0.2, 1.0)), ((20, 400), (0.08, 1.0)),
                                         ((96, 90), (0.4, 1.0))])
def test_rrc_parameter_distribution_matches_torchvision(shape: tuple[int, int], scale: tuple[float, float]) -> None:
    """KS tests of area fraction, log aspect ratio, top and left: ours vs torchvision's get_params."""
    height, width = shape
    op = RandomResizedCrop(224, scale=scale)
    n = 3000
    ours = _ours_params(op, height, width, n)
    ref = _torch_params(op, height, width, n)
    for name, f in (("area", lambda p: p[:, 2] * p[:, 3] / (height * width)),
                    ("log_aspect", lambda p: np.log(p[:, 3] / p[:, 2])),
                    ("top", lambda p: p[:, 0]), ("left", lambda p: p[:, 1])):
        result = stats.ks_2samp(f(ours), f(ref))
        assert result.pvalue > 1e-3, f"{shape} {name}: KS p={result.pvalue:.2g}"
    # every box lies inside the image
    assert np.all(ours[:, 0] >= 0) and np.all(ours[:, 0] + ours[:, 2] <= height)
    assert np.all(ours[:, 1] >= 0) and np.all(ours[:, 1] + ours[:, 3] <= width)
    assert np.all(ours[:, 2] >= 1) and np.all(ours[:, 3] >= 1)


def test_rrc_fallback_is_centred_ratio_clamped() -> None:
    """A 10 x 1000 image never fits the ratio range: torchvision's centred fallback box, every time."""
    op = RandomResizedCrop(64)
    ours = _ours_params(op, 10, 1000, 20)
    expected = V1RandomResizedCrop.get_params(torch.empty(3, 10, 1000), list(op.scale), list(op.ratio))
    assert expected == (0, (1000 - round(10 * 4 / 3)) // 2, 10, round(10 * 4 / 3))
    assert np.all(ours == np.array(expected, np.float64))


def test_rrc_output_size_follows_progressive_schedule() -> None:
    op = RandomResizedCrop(ProgressiveResolution(160, 224, 0, 10, multiple_of=32))
    assert op.output_size(0) == (160, 160)
    assert op.output_size(10) == (224, 224)
    assert op.max_output_size == (224, 224)
    assert RandomResizedCrop((100, 80)).output_size(3) == (100, 80)


@pytest.mark.parametrize("kwargs,match", [
    (dict(size=0), "positive"), (dict(size=(10, -1)), "positive"), (dict(size=2.5), "size"),
    (dict(size=8, scale=(0.0, 1.0)), "scale"), (dict(size=8, scale=(0.5, 0.2)), "scale"),
    (dict(size=8, scale=(0.5, 1.5)), "scale"), (dict(size=8, ratio=(0.0, 1.0)), "ratio"),
    (dict(size=8, ratio=(2.0, 1.0)), "ratio"), (dict(size=8, interpolation="nearest"), "interpolation"),
])
def test_rrc_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RandomResizedCrop(**kwargs)


def test_resize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="crop"):
        Resize(256)  # shorter-side resize alone: image-dependent output size
    with pytest.raises(ValueError, match="give"):
        Resize(None)
    with pytest.raises(ValueError, match="positive"):
        CenterCrop(0)
    with pytest.raises(ValueError, match="interpolation"):
        CenterCrop(32, interpolation="area")


def test_rrc_tiny_image_gives_whole_image() -> None:
    params = np.zeros(4)
    RandomResizedCrop(8).make_sampler()(rng.new_state(0, 0, 0, 0), 1, 1, params)
    assert params.tolist() == [0, 0, 1, 1]
