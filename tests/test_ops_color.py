"""ColorJitter, RandomGrayscale, RandomSolarize against torchvision.transforms.v2 on uint8 tensors (the oracle).

Pixel tolerances: brightness, contrast, saturation, grayscale and solarize within 1 level, hue within 2
(our kernels mirror torch's float32 arithmetic, including the FMA its AVX2 CPU kernels use, so on x86 they
agree exactly; a torch build without FMA rounds a few pixels the other way). On top of the max, at most
0.1% of the values may differ at all, which a wrong rounding rule (round instead of truncate, a missing floor)
would break by far. Parameter draws are compared with torchvision's own sampler by a two-sample KS test.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as F
from scipy import stats

from fastssl_loader import rng
from fastssl_loader.ops.color import (ColorJitter, RandomGrayscale, RandomSolarize, grayscale_kernel,
                                      jitter_kernel)

# ../shared/data as tests/conftest.py finds it (FASTSSL_SHARED_DATA overrides, e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("FASTSSL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SAMPLE_DIR = SHARED_DATA / "imagenet-sample"
TV_FUNCS = {0: F.adjust_brightness, 1: F.adjust_contrast, 2: F.adjust_saturation, 3: F.adjust_hue}
MAX_DIFF_FRACTION = 1e-3


def natural_images(n: int = 3) -> list[np.ndarray]:
    """Central 120 x 160 crops of a few photos from the ImageNet sample (empty when the data is absent)."""
    if not SAMPLE_DIR.is_dir():
        return []
    from PIL import Image
    crops = []
    for path in sorted(SAMPLE_DIR.glob("*.JPEG"))[:n]:
        img = np.array(Image.open(path).convert("RGB"))
        top, left = max(0, (img.shape[0] - 120) // 2), max(0, (img.shape[1] - 160) // 2)
        crops.append(np.ascontiguousarray(img[top:top + 120, left:left + 160]))
    return crops


def sample_images() -> list[np.ndarray]:
    """Random noise, a gradient with gray and saturated pixels, odd sizes, and photos when present."""
    gen = np.random.default_rng(0)
    noise = gen.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:40, 0:64]
    gradient = np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    gradient[:5] = gradient[:5, :, :1]  # gray rows (max == min)
    gradient[5:8] = np.array([255, 0, 0], np.uint8)
    return [noise, gradient] + natural_images()


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).contiguous()


def hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def jitter_row(factors: dict[int, float], order: tuple[int, ...] = (0, 1, 2, 3)) -> np.ndarray:
    """A fired jitter parameter row: step code -> factor (others identity), applied in ``order``."""
    row = np.array([1.0, 1.0, 1.0, 1.0, 0.0, *order], dtype=np.float64)
    for step, f in factors.items():
        row[1 + step] = f
    return row


def ours_jitter(img: np.ndarray, row: np.ndarray) -> np.ndarray:
    out = img.copy()
    jitter_kernel(out, row)
    return out


def assert_close(ours: np.ndarray, ref: np.ndarray, max_diff: int, what: str) -> None:
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= max_diff, f"{what}: max diff {diff.max()}"
    assert np.mean(diff > 0) <= MAX_DIFF_FRACTION, f"{what}: {np.mean(diff > 0):.4%} of values differ"


@pytest.mark.parametrize("step,low,high,max_diff", [(0, 0.0, 2.5, 1), (1, 0.0, 2.5, 1), (2, 0.0, 2.5, 1),
                                                    (3, -0.5, 0.5, 2)])
def test_each_jitter_step_matches_torchvision(step: int, low: float, high: float, max_diff: int) -> None:
    gen = np.random.default_rng(step)
    factors = list(gen.uniform(low, high, 6)) + [low, high]
    for img in sample_images():
        for f in factors:
            if f == (0.0 if step == 3 else 1.0):
                continue
            order = (step,) + tuple(k for k in range(4) if k != step)
            ref = hwc(TV_FUNCS[step](chw(img), float(f)))
            assert_close(ours_jitter(img, jitter_row({step: f}, order)), ref, max_diff,
                         f"step {step} factor {f} on {img.shape}")


def test_full_jitter_in_every_order_matches_torchvision() -> None:
    """All four steps in each of the 24 orders: contrast must use the gray mean of the image at its turn."""
    gen = np.random.default_rng(1)
    images = sample_images()
    for order in itertools.permutations(range(4)):
        img = images[int(gen.integers(len(images)))]
        factors = {0: gen.uniform(0.6, 1.4), 1: gen.uniform(0.6, 1.4), 2: gen.uniform(0.8, 1.2),
                   3: gen.uniform(-0.1, 0.1)}
        ref = chw(img)
        for step in order:
            ref = TV_FUNCS[step](ref, float(factors[step]))
        assert_close(ours_jitter(img, jitter_row(factors, order)), hwc(ref), 2, f"order {order}")


def test_hue_on_many_colours_matches_torchvision() -> None:
    colours = np.random.default_rng(2).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    for hue in (-0.5, -0.21, 0.013, 0.37, 0.5):
        ref = hwc(F.adjust_hue(chw(colours), hue))
        assert_close(ours_jitter(colours, jitter_row({3: hue}, (3, 0, 1, 2))), ref, 2, f"hue {hue}")


def test_grayscale_matches_torchvision_on_every_colour() -> None:
    """All 2**24 RGB colours: our float32 gray (two FMAs, then floor) must equal torch's on every one."""
    v = np.arange(1 << 24, dtype=np.uint32)
    img = np.stack([v >> 16, (v >> 8) & 255, v & 255], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    ref = hwc(F.rgb_to_grayscale(chw(img), num_output_channels=3))
    grayscale_kernel(img, np.ones(1))
    assert_close(img, ref, 1, "grayscale")


@pytest.mark.parametrize("threshold", [0, 1, 100.5, 128, 255])
def test_solarize_matches_torchvision(threshold: float) -> None:
    img = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    apply = RandomSolarize(threshold, p=1.0).make_kernel()
    out = img.copy()
    apply(out, np.ones(1))
    np.testing.assert_array_equal(out, hwc(F.solarize(chw(img), threshold)))


def test_ops_do_nothing_when_not_fired() -> None:
    img = sample_images()[0]
    for op in (ColorJitter(0.4, 0.4, 0.4, 0.1), RandomGrayscale(), RandomSolarize(0)):
        out = img.copy()
        op.make_kernel()(out, np.zeros(len(op.param_names)))
        np.testing.assert_array_equal(out, img)


def draw(op, n: int, seed: int = 0) -> np.ndarray:
    """n parameter rows from n independent (seed, epoch 0, sample i, view 0) streams."""
    sample = op.make_sampler()
    rows = np.zeros((n, len(op.param_names)))
    for i in range(n):
        sample(rng.new_state(seed, 0, i, 0), rows[i])
    return rows


def torchvision_jitter_draws(tv: T.ColorJitter, n: int) -> np.ndarray:
    """n torchvision ColorJitter draws as rows (b, c, s, h, order...), from torch's global RNG."""
    torch.manual_seed(0)
    make = getattr(tv, "make_params", None) or tv._get_params
    rows = []
    for _ in range(n):
        p = make([])
        rows.append([p["brightness_factor"], p["contrast_factor"], p["saturation_factor"], p["hue_factor"],
                     *p["fn_idx"].tolist()])
    return np.array(rows, dtype=np.float64)


def test_jitter_factor_and_order_distributions_match_torchvision() -> None:
    n = 3000
    ours = draw(ColorJitter(0.4, (0.5, 1.7), 0.2, 0.1, p=1.0), n)
    theirs = torchvision_jitter_draws(T.ColorJitter(0.4, (0.5, 1.7), 0.2, 0.1), n)
    assert np.all(ours[:, 0] == 1.0)
    for col in range(4):
        result = stats.ks_2samp(ours[:, 1 + col], theirs[:, col])
        assert result.pvalue > 1e-3, f"factor {col}: KS p={result.pvalue}"
    ranges = [(0.6, 1.4), (0.5, 1.7), (0.8, 1.2), (-0.1, 0.1)]
    for col, (lo, hi) in enumerate(ranges):
        assert lo <= ours[:, 1 + col].min() and ours[:, 1 + col].max() < hi
        assert stats.kstest(ours[:, 1 + col], "uniform", args=(lo, hi - lo)).pvalue > 1e-3
    perms = [tuple(r) for r in ours[:, 5:].astype(int)]
    assert all(sorted(p) == [0, 1, 2, 3] for p in perms)
    counts = np.array([perms.count(p) for p in itertools.permutations(range(4))])
    assert stats.chisquare(counts).pvalue > 1e-3


def test_identity_ranges_are_skipped_like_torchvision() -> None:
    rows = draw(ColorJitter(brightness=0.3, contrast=0, saturation=(1.0, 1.0), hue=0), 200)
    assert np.all(rows[:, 2] == 1.0) and np.all(rows[:, 3] == 1.0) and np.all(rows[:, 4] == 0.0)
    assert np.ptp(rows[:, 1]) > 0
    tv = T.ColorJitter(brightness=0.3, contrast=0, saturation=(1.0, 1.0), hue=0)
    assert (tv.contrast, tv.saturation, tv.hue) == (None, None, None)


@pytest.mark.parametrize("args", [dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1),
                                  dict(brightness=1.5, contrast=(0.2, 0.9), hue=(-0.5, 0.25)),
                                  dict(saturation=(0, 3))])
def test_ranges_equal_torchvision_ranges(args: dict) -> None:
    ours = ColorJitter(**args)
    tv = T.ColorJitter(**args)
    for name in ("brightness", "contrast", "saturation", "hue"):
        assert getattr(ours, name) == getattr(tv, name), name


@pytest.mark.parametrize("op_factory,column", [(lambda p: ColorJitter(0.4, p=p), 0),
                                               (lambda p: RandomGrayscale(p), 0),
                                               (lambda p: RandomSolarize(128, p), 0)])
def test_probabilities(op_factory, column: int) -> None:
    n = 4000
    for p in (0.0, 0.2, 0.8, 1.0):
        fired = draw(op_factory(p), n, seed=3)[:, column]
        assert set(np.unique(fired)) <= {0.0, 1.0}
        tolerance = 4 * np.sqrt(p * (1 - p) / n)
        assert abs(fired.mean() - p) <= tolerance, (p, fired.mean())


def test_unfired_jitter_records_identity_factors() -> None:
    rows = draw(ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.5), 400)
    off = rows[rows[:, 0] == 0.0]
    assert len(off) > 0
    np.testing.assert_array_equal(off[:, 1:], np.tile([1.0, 1.0, 1.0, 0.0, 0, 1, 2, 3], (len(off), 1)))


def test_same_stream_same_result() -> None:
    op = ColorJitter(0.4, 0.4, 0.2, 0.1, p=0.8)
    a, b = draw(op, 50, seed=7), draw(op, 50, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, draw(op, 50, seed=8))
    img = sample_images()[1]
    np.testing.assert_array_equal(ours_jitter(img, a[1]), ours_jitter(img, b[1]))


def test_kernels_are_thread_safe() -> None:
    """Concurrent calls (the loader's threads) give the same pixels as sequential ones."""
    img = sample_images()[0]
    rows = draw(ColorJitter(0.4, 0.4, 0.4, 0.2), 64, seed=5)
    expected = [ours_jitter(img, r) for r in rows]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda r: ours_jitter(img, r), rows))
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(brightness=-0.1), ValueError, "brightness"),
    (dict(contrast=(1.5, 0.5)), ValueError, "contrast"),
    (dict(saturation=(-1, 1)), ValueError, "saturation"),
    (dict(hue=0.6), ValueError, "hue"),
    (dict(hue=(-0.7, 0.1)), ValueError, "hue"),
    (dict(hue="big"), TypeError, "hue"),
    (dict(brightness=(0.1, 0.2, 0.3)), TypeError, "brightness"),
    (dict(contrast=float("inf")), ValueError, "contrast"),
    (dict(saturation=float("nan")), ValueError, "saturation"),
    (dict(p=1.5), ValueError, "p must be"),
    (dict(p=float("nan")), ValueError, "p must be"),
    (dict(p=-0.1), ValueError, "p must be"),
])
def test_jitter_argument_errors(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        ColorJitter(**kwargs)


def test_gray_and_solarize_argument_errors() -> None:
    with pytest.raises(ValueError, match="RandomGrayscale: p"):
        RandomGrayscale(2)
    with pytest.raises(ValueError, match="RandomSolarize: p"):
        RandomSolarize(128, p=True)
    with pytest.raises(ValueError, match="threshold"):
        RandomSolarize(300)
    with pytest.raises(ValueError, match="threshold"):
        RandomSolarize(None)


def nearest_float32(x) -> np.float32:
    """The float32 nearest to the rational ``x`` (ties to even): correct rounding, done once."""
    from fractions import Fraction

    guess = np.float32(float(x))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    return min(candidates, key=lambda v: (abs(Fraction(float(v)) - x), int(v.view(np.int32)) & 1))


def test_fma32_rounds_once_like_a_fused_multiply_add() -> None:
    """The kernels' ``fma32`` is the exact ``a * b + c`` rounded once to float32 (not after the product too)."""
    from fractions import Fraction

    import numba as nb

    from fastssl_loader.ops.fma import _fma32_exact, fma32

    fma = nb.njit(lambda a, b, c: fma32(a, b, c))
    gen = np.random.default_rng(4)
    values = gen.uniform(-300, 300, (2000, 3)).astype(np.float32)
    values[:500, 0] = np.float32(0.587)  # torch's gray and blend operands: uint8 levels times float32 ratios
    values[:500, 1] = gen.integers(0, 256, 500)
    two_roundings_differ = 0
    for a, b, c in values:
        expected = nearest_float32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))
        got = fma(a, b, c)
        assert got == expected, (a, b, c, got, expected)
        assert _fma32_exact(a, b, c) == expected, (a, b, c)  # the NUMBA_DISABLE_JIT path rounds the same
        two_roundings_differ += bool(a * b + c != expected)  # numpy float32: product rounded, then the sum
    assert two_roundings_differ > 0  # the sample does tell one rounding from two
