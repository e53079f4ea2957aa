"""ProgressiveResolution: ffcv-imagenet's get_resolution rule, clamped to the buffer size."""
from __future__ import annotations

import numpy as np
import pytest

from fastssl_loader.progressive import ProgressiveResolution


def _ffcv_rule(epoch: int, start: int, end: int, start_epoch: int, end_epoch: int, multiple: int) -> int:
    """ffcv-imagenet train_imagenet.py get_resolution, restated (np.interp then round to a multiple)."""
    if epoch <= start_epoch:
        return start
    if epoch >= end_epoch:
        return end
    interp = np.interp([epoch], [start_epoch, end_epoch], [start, end])[0]
    return int(np.round(interp / multiple)) * multiple


@pytest.mark.parametrize("args", [(160, 192, 65, 76, 32), (64, 224, 10, 30, 32), (160, 224, 0, 30, 32),
                                  (128, 256, 5, 6, 16)])
def test_matches_ffcv_schedule(args: tuple[int, ...]) -> None:
    start, end, e0, e1, multiple = args
    schedule = ProgressiveResolution(start, end, e0, e1, multiple_of=multiple)
    sizes = [schedule(e) for e in range(e1 + 5)]
    assert sizes == [_ffcv_rule(e, *args) for e in range(e1 + 5)]
    assert all(s % multiple == 0 for s in sizes[e0 + 1:e1])
    assert sizes == sorted(sizes)  # a growing ramp never shrinks
    assert schedule.max == end


def test_constant_outside_the_ramp_and_shrinking_schedule() -> None:
    schedule = ProgressiveResolution(224, 128, start_epoch=2, end_epoch=6, multiple_of=32)
    assert [schedule(e) for e in range(9)] == [224, 224, 224, 192, 192, 160, 128, 128, 128]
    assert schedule.max == 224


def test_rounding_never_leaves_the_start_end_range() -> None:
    """FFCV's rule would give 128 here (119 / 32 rounds to 4), beyond the 120 buffer; we clamp."""
    schedule = ProgressiveResolution(100, 120, start_epoch=0, end_epoch=20, multiple_of=32)
    sizes = [schedule(e) for e in range(21)]
    assert max(sizes) <= 120 and min(sizes) >= 100


@pytest.mark.parametrize("kwargs,match", [
    (dict(start=0, end=224, start_epoch=0, end_epoch=1), "start"),
    (dict(start=160, end=224.0, start_epoch=0, end_epoch=1), "end"),
    (dict(start=160, end=224, start_epoch=5, end_epoch=1), "end_epoch"),
    (dict(start=160, end=224, start_epoch=-1, end_epoch=1), "start_epoch"),
    (dict(start=160, end=224, start_epoch=0, end_epoch=1, multiple_of=0), "multiple_of"),
])
def test_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProgressiveResolution(**kwargs)
    with pytest.raises(ValueError, match="epoch"):
        ProgressiveResolution(160, 224, 0, 1)(-1)
