"""reencode_pays: the writer auto mode's pass-through-or-re-encode rule for big source JPEGs."""
from __future__ import annotations

import pytest

from fastssl_loader.reencode import REENCODE_MIN_BITS_PER_PIXEL, reencode_pays


def _bytes(height: int, width: int, bpp: float) -> int:
    return int(height * width * bpp / 8)


@pytest.mark.parametrize("height, width, bpp, progressive, expected", [
    (375, 500, 8.0, True, False),        # ImageNet-size: always passes through, however coded
    (1000, 1000, 8.0, True, False),      # exactly the pixel floor
    (1024, 1280, 1.1, True, True),       # progressive above the floor
    (1200, 1920, 4.0, False, True),      # baseline, entropy-bound
    (1600, 2560, 0.9, False, False),     # baseline, few bits: DCT + region decoding suffices
    (1280, 1920, REENCODE_MIN_BITS_PER_PIXEL, False, False),
    (1280, 1920, REENCODE_MIN_BITS_PER_PIXEL + 0.01, False, True),
])
def test_rule(height, width, bpp, progressive, expected):
    assert reencode_pays(height, width, _bytes(height, width, bpp), progressive) is expected


@pytest.mark.parametrize("args", [(0, 10, 100, False), (10, 10, 0, False), (-1, 10, 5, True)])
def test_rejects_empty_sizes(args):
    with pytest.raises(ValueError, match="positive size"):
        reencode_pays(*args)
