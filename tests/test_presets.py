"""Presets: published values, sizes, probabilities, flavours; every view builds a ViewPlan."""
from __future__ import annotations

import numpy as np
import pytest

from fastssl_loader import ops, presets
from fastssl_loader.plan import ViewPlan
from fastssl_loader.progressive import ProgressiveResolution


def _op(view: list, kind: type):
    found = [op for op in view if isinstance(op, kind)]
    assert len(found) <= 1
    return found[0] if found else None


def _probabilities(view: list) -> dict[str, float | None]:
    return {name: (op.p if op is not None else None) for name, op in (
        ("flip", _op(view, ops.RandomHorizontalFlip)), ("jitter", _op(view, ops.ColorJitter)),
        ("gray", _op(view, ops.RandomGrayscale)), ("blur", _op(view, ops.GaussianBlur)),
        ("solarize", _op(view, ops.RandomSolarize)))}


ALL = [presets.simclr(), presets.byol(), presets.vicreg(), presets.barlow(), presets.dino(), presets.sslight(),
       presets.simclr(32), presets.byol(32), presets.dino(32, 16, cifar=True)]


@pytest.mark.parametrize("views", ALL)
def test_every_preset_view_builds_a_plan(views: list) -> None:
    for view in views:
        plan = ViewPlan(view)
        assert isinstance(view[0], ops.RandomResizedCrop)
        assert plan.normalize == (ops.IMAGENET_MEAN, ops.IMAGENET_STD)


def test_byol_is_asymmetric() -> None:
    v1, v2 = presets.byol(224)
    assert _probabilities(v1) == dict(flip=0.5, jitter=0.8, gray=0.2, blur=1.0, solarize=0.0)
    assert _probabilities(v2) == dict(flip=0.5, jitter=0.8, gray=0.2, blur=0.1, solarize=0.2)
    jitter = _op(v1, ops.ColorJitter)
    assert jitter.brightness == pytest.approx((0.6, 1.4)) and jitter.saturation == pytest.approx((0.8, 1.2))
    assert jitter.hue == pytest.approx((-0.1, 0.1))
    assert _op(v1, ops.GaussianBlur).kernel_size == 23 and _op(v1, ops.GaussianBlur).sigma == (0.1, 2.0)
    assert _op(v2, ops.RandomSolarize).threshold == 128
    assert v1[0].scale == (0.08, 1.0) and v1[0].output_size(0) == (224, 224) and v1[0].interpolation == "bilinear"
    for fn in (presets.vicreg, presets.barlow):
        a, b = fn(224)
        assert _probabilities(a) == _probabilities(v1) and _probabilities(b) == _probabilities(v2)
        assert a[0].interpolation == "bicubic"


def test_simclr_values_and_cifar_flavour() -> None:
    v1, v2 = presets.simclr(224)
    assert _probabilities(v1) == _probabilities(v2) == dict(flip=0.5, jitter=0.8, gray=0.2, blur=0.5, solarize=None)
    assert _op(v1, ops.ColorJitter).hue == pytest.approx((-0.2, 0.2))
    small = presets.simclr(32)
    assert small[0][0].output_size(0) == (32, 32)
    assert _op(small[0], ops.GaussianBlur) is None  # lightly's CIFAR setting: blur off
    assert _op(presets.simclr(32, cifar=False)[0], ops.GaussianBlur).kernel_size == 3
    assert _op(presets.simclr(96)[0], ops.GaussianBlur).kernel_size == 9


def test_dino_multicrop() -> None:
    views = presets.dino()
    assert len(views) == 8
    sizes = [v[0].output_size(0) for v in views]
    assert sizes == [(224, 224)] * 2 + [(96, 96)] * 6
    assert [v[0].scale for v in views] == [(0.4, 1.0)] * 2 + [(0.05, 0.4)] * 6
    assert all(v[0].interpolation == "bicubic" for v in views)
    assert [_probabilities(v)["blur"] for v in views] == [1.0, 0.1] + [0.5] * 6
    assert [_probabilities(v)["solarize"] for v in views] == [None, 0.2] + [None] * 6
    assert len(presets.dino(n_local=0)) == 2


def test_sslight_scales_and_equal_pixel_scale() -> None:
    views = presets.sslight(224, split=0.35)
    assert views[0][0].scale == (0.35, 1.0) and views[2][0].scale == (0.05, 0.35)
    local = views[2][0].output_size(0)[0]
    assert local == presets.sslight_local_size(224, 0.35) and local % 8 == 0
    # Monte Carlo: output pixels per image pixel agree within the rounding to a multiple of 8
    gen = np.random.default_rng(0)
    global_side = np.sqrt(gen.uniform(0.35, 1.0, 200000)).mean()
    local_side = np.sqrt(gen.uniform(0.05, 0.35, 200000)).mean()
    assert abs(local / local_side - 224 / global_side) / (224 / global_side) < 4 / local
    with pytest.raises(ValueError, match="split"):
        presets.sslight(split=1.2)


def test_eval_views() -> None:
    view = presets.eval_view(224)
    assert isinstance(view[0], ops.Resize) and view[0].size == 256 and view[0].crop == 224
    assert ViewPlan(view).output_size(0) == (224, 224)
    small = presets.eval_view(32, normalize=False)
    assert isinstance(small[0], ops.CenterCrop) and len(small) == 1
    with pytest.raises(ValueError, match="crop_fraction"):
        presets.eval_view(224, crop_fraction=0)


def test_normalize_argument_and_progressive_size() -> None:
    assert ViewPlan(presets.simclr(64, normalize=False)[0]).normalize is None
    custom = presets.byol(64, normalize=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))[0]
    assert ViewPlan(custom).normalize == ((0.5,) * 3, (0.25,) * 3)
    with pytest.raises(ValueError, match="normalize"):
        presets.simclr(64, normalize="imagenet")
    schedule = ProgressiveResolution(160, 224, 0, 10)
    view = presets.byol(schedule)[0]
    assert ViewPlan(view).max_output_size == (224, 224)
    assert _op(view, ops.GaussianBlur).kernel_size == "auto"


def test_simclr_32_runs_end_to_end() -> None:
    plan = ViewPlan(presets.simclr(32)[0])
    gen = np.random.default_rng(0)
    src = gen.integers(0, 256, 4 * 32 * 32 * 3, dtype=np.uint8)
    offsets = np.arange(4, dtype=np.int64) * 32 * 32 * 3
    sizes = np.full(4, 32, np.int64)
    params = np.zeros((4, plan.num_params))
    plan.sample(np.arange(4), sizes, sizes, 0, 0, 0, params)
    out = np.zeros((4, 3, 32, 32), np.float32)
    plan.apply(src, offsets, sizes, sizes, sizes, sizes, params, out, 0)
    assert np.isfinite(out).all() and out.std() > 0.1
