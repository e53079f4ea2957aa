"""GaussianBlur against torchvision.transforms.v2.functional.gaussian_blur on uint8 tensors (the oracle).

Tolerance: max 1 level and mean |diff| < 0.05. torch convolves with the 2-D outer-product kernel and we run
two separable float32 passes, so a value lying on a .5 rounding boundary can round the other way.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as F
from scipy import stats
from torchvision.transforms.v2.functional._misc import _get_gaussian_kernel1d

from fastssl_loader import rng
from fastssl_loader.ops.blur import (GaussianBlur, auto_kernel_size, blur_image, effective_radius, gaussian_weights,
                                     reflect_index)

# ../shared/data as tests/conftest.py finds it (FASTSSL_SHARED_DATA overrides, e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("FASTSSL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SAMPLE_DIR = SHARED_DATA / "imagenet-sample"


def sample_images() -> list[np.ndarray]:
    """Noise (worst case for rounding), a smooth gradient, odd sizes, and photo crops when present."""
    gen = np.random.default_rng(0)
    images = [gen.integers(0, 256, (41, 57, 3), dtype=np.uint8),
              gen.integers(0, 256, (30, 17, 3), dtype=np.uint8)]
    yy, xx = np.mgrid[0:48, 0:64]
    images.append(np.stack([xx * 4, yy * 5, 255 - xx * 2], axis=-1).clip(0, 255).astype(np.uint8))
    if SAMPLE_DIR.is_dir():
        from PIL import Image
        for path in sorted(SAMPLE_DIR.glob("*.JPEG"))[:2]:
            img = np.array(Image.open(path).convert("RGB"))
            images.append(np.ascontiguousarray(img[:96, :128]))
    return images


def torch_blur(img: np.ndarray, k: int, sigma: float) -> np.ndarray:
    t = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    return F.gaussian_blur(t, [k, k], [sigma, sigma]).permute(1, 2, 0).numpy()


@functools.lru_cache(maxsize=None)
def blur_kernel(k: int):
    """One compiled kernel per size (each make_kernel() is a new Numba closure: compiled or loaded once)."""
    return GaussianBlur(k).make_kernel()


def ours(img: np.ndarray, k: int, sigma: float) -> np.ndarray:
    out = img.copy()
    blur_kernel(k)(out, np.array([1.0, sigma]))
    return out


@pytest.mark.parametrize("k", [1, 3, 5, 9, 23])
def test_blur_matches_torchvision(k: int) -> None:
    gen = np.random.default_rng(k)
    for img in sample_images():
        if k // 2 >= min(img.shape[:2]):
            continue  # torch refuses reflect padding wider than the image
        for sigma in (0.1, 2.0, *gen.uniform(0.1, 2.0, 3)):
            diff = np.abs(ours(img, k, float(sigma)).astype(int) - torch_blur(img, k, float(sigma)))
            assert diff.max() <= 1 and diff.mean() < 0.05, (k, sigma, img.shape, diff.max(), diff.mean())


def test_skipped_tail_taps_change_almost_nothing() -> None:
    """Leaving out taps worth < 1e-4 levels may only flip values sitting on a rounding boundary."""
    img = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert effective_radius(gaussian_weights(23, 2.0)) == 10
    assert effective_radius(gaussian_weights(23, 0.1)) == 0
    for sigma in (0.1, 0.4, 0.9, 1.5, 2.0):
        diff = ours(img, 23, sigma).astype(int) - torch_blur(img, 23, sigma)
        assert np.abs(diff).max() <= 1 and np.mean(diff != 0) < 1e-3, (sigma, np.mean(diff != 0))


@pytest.mark.parametrize("k,sigma", [(1, 0.5), (3, 0.1), (9, 1.3), (23, 2.0), (23, 0.7)])
def test_weights_match_torchvision(k: int, sigma: float) -> None:
    ref = _get_gaussian_kernel1d(k, sigma, torch.float32, torch.device("cpu")).numpy()
    np.testing.assert_allclose(gaussian_weights(k, sigma), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_reflect_index_is_numpy_reflect_even_past_one_mirror(n: int) -> None:
    pad = 3 * n + 2
    expected = np.pad(np.arange(n), pad, mode="reflect") if n > 1 else np.zeros(n + 2 * pad, int)
    got = [reflect_index(i, n) for i in range(-pad, n + pad)]
    np.testing.assert_array_equal(got, expected)


def test_kernel_wider_than_image_stays_sane() -> None:
    flat = np.full((5, 4, 3), 77, np.uint8)
    blur_image(flat, 23, 2.0)
    assert np.all(flat == 77)
    img = np.random.default_rng(1).integers(0, 256, (6, 3, 3), dtype=np.uint8)
    out = img.copy()
    blur_image(out, 23, 2.0)
    assert img.min() <= out.min() and out.max() <= img.max()


def test_auto_kernel_size() -> None:
    assert auto_kernel_size(224, 224) == 23
    assert auto_kernel_size(96, 128) == 9
    assert auto_kernel_size(8, 8) == 1
    img = sample_images()[0]
    auto, fixed = img.copy(), img.copy()
    GaussianBlur("auto").make_kernel()(auto, np.array([1.0, 1.1]))
    blur_kernel(auto_kernel_size(*img.shape[:2]))(fixed, np.array([1.0, 1.1]))
    np.testing.assert_array_equal(auto, fixed)
    assert not np.array_equal(auto, img)


def draw(op: GaussianBlur, n: int, seed: int = 0) -> np.ndarray:
    sample = op.make_sampler()
    rows = np.zeros((n, 2))
    for i in range(n):
        sample(rng.new_state(seed, 0, i, 1), rows[i])
    return rows


def test_sigma_distribution_matches_torchvision() -> None:
    n = 3000
    rows = draw(GaussianBlur(23, (0.1, 2.0)), n)
    assert np.all(rows[:, 0] == 1.0)
    tv = T.GaussianBlur(23, (0.1, 2.0))
    torch.manual_seed(0)
    make = getattr(tv, "make_params", None) or tv._get_params
    theirs = np.array([make([])["sigma"][0] for _ in range(n)])
    assert stats.ks_2samp(rows[:, 1], theirs).pvalue > 1e-3
    assert stats.kstest(rows[:, 1], "uniform", args=(0.1, 1.9)).pvalue > 1e-3
    assert np.all(draw(GaussianBlur(5, 0.8), 10)[:, 1] == 0.8)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_apply_probability(p: float) -> None:
    n = 4000
    rows = draw(GaussianBlur(23, p=p), n, seed=2)
    assert abs(rows[:, 0].mean() - p) <= 4 * np.sqrt(p * (1 - p) / n)
    assert np.all(rows[rows[:, 0] == 0.0, 1] == 0.0)


def test_not_fired_leaves_image_and_same_stream_same_draw() -> None:
    img = sample_images()[0]
    out = img.copy()
    blur_kernel(23)(out, np.array([0.0, 0.0]))
    np.testing.assert_array_equal(out, img)
    op = GaussianBlur(9, (0.1, 2.0), p=0.5)
    np.testing.assert_array_equal(draw(op, 40, seed=4), draw(op, 40, seed=4))
    assert not np.array_equal(draw(op, 40, seed=4), draw(op, 40, seed=5))


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(kernel_size=4), ValueError, "odd"),
    (dict(kernel_size=0), ValueError, "odd"),
    (dict(kernel_size=-3), ValueError, "odd"),
    (dict(kernel_size=3.0), ValueError, "kernel_size"),
    (dict(kernel_size=True), ValueError, "kernel_size"),
    (dict(kernel_size="big"), ValueError, "kernel_size"),
    (dict(kernel_size=3, sigma=0.0), ValueError, "sigma"),
    (dict(kernel_size=3, sigma=(2.0, 0.1)), ValueError, "sigma"),
    (dict(kernel_size=3, sigma=(0.1, 1.0, 2.0)), TypeError, "sigma"),
    (dict(kernel_size=3, p=1.1), ValueError, "GaussianBlur: p"),
])
def test_argument_errors(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        GaussianBlur(**kwargs)
