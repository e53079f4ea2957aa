"""RandomHorizontalFlip and Normalize: probabilities, pixels, argument checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from fastssl_loader import rng
from fastssl_loader.ops import Normalize, RandomHorizontalFlip
from fastssl_loader.ops.base import sample_coin
from fastssl_loader.ops.flip import flip_kernel


def _coin_rate(p: float, n: int = 20000) -> float:
    params = np.zeros(1)
    fired = 0
    for i in range(n):
        sample_coin(rng.new_state(5, 2, i, 0), p, params)
        assert params[0] in (0.0, 1.0)
        fired += params[0]
    return fired / n


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_flip_fires_with_probability_p(p: float) -> None:
    n = 20000
    rate = _coin_rate(p, n)
    sigma = max(np.sqrt(p * (1 - p) / n), 1e-12)
    assert abs(rate - p) <= 5 * sigma  # exact 0 and 1 at the ends


def test_flip_sampler_closure_uses_p() -> None:
    params = np.zeros(1)
    RandomHorizontalFlip(1.0).make_sampler()(rng.new_state(0, 0, 0, 0), params)
    assert params[0] == 1.0
    RandomHorizontalFlip(0.0).make_sampler()(rng.new_state(0, 0, 0, 0), params)
    assert params[0] == 0.0


@pytest.mark.parametrize("width", [1, 6, 7])
def test_flip_kernel_equals_torchvision(width: int) -> None:
    img = np.random.default_rng(width).integers(0, 256, (5, width, 3), dtype=np.uint8)
    work = img.copy()
    flip_kernel(work, np.array([1.0]))
    ref = F.horizontal_flip(torch.from_numpy(img).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(work, ref)
    flip_kernel(work, np.array([0.0]))  # not fired: untouched
    np.testing.assert_array_equal(work, ref)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_flip_rejects_bad_p(p) -> None:
    with pytest.raises(ValueError, match="RandomHorizontalFlip: p"):
        RandomHorizontalFlip(p)


def test_normalize_defaults_to_imagenet() -> None:
    norm = Normalize()
    assert norm.mean == (0.485, 0.456, 0.406) and norm.std == (0.229, 0.224, 0.225)
    assert norm.param_names == ()


@pytest.mark.parametrize("mean,std", [((0.5, 0.5), (0.2, 0.2, 0.2)), ((0.5,) * 3, (0.2, 0.0, 0.2)),
                                      ((0.5,) * 3, (0.2, -1.0, 0.2)), ((np.nan, 0, 0), (1, 1, 1))])
def test_normalize_rejects_bad_statistics(mean, std) -> None:
    with pytest.raises(ValueError, match="Normalize"):
        Normalize(mean, std)
