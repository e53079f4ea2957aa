"""Auto mode re-encodes the source JPEGs whose decode would dwarf the views (reencode.reencode_pays)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fastssl_loader import DatasetReader, jpeg, reencode, write_dataset
from tests.conftest import natural_image


def _jpeg(rgb: np.ndarray, quality: int, progressive: bool) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, progressive=progressive)
    return buf.getvalue()


def _bits_per_pixel(data: bytes) -> float:
    height, width = jpeg.jpeg_shape(data)
    return 8 * len(data) / (height * width)


@pytest.fixture(scope="module")
def sources() -> dict[str, bytes]:
    """A big progressive, a big bit-heavy baseline, a big light baseline and a small baseline JPEG."""
    big = natural_image(1200, 1000, seed=1)
    noisy = np.clip(big + np.random.default_rng(2).normal(0, 24, big.shape), 0, 255).astype(np.uint8)
    found = {"big_progressive": _jpeg(big, 90, True), "big_heavy": _jpeg(noisy, 95, False),
             "big_light": _jpeg(big, 75, False), "small": _jpeg(natural_image(600, 500, seed=3), 95, False)}
    heavy, light = _bits_per_pixel(found["big_heavy"]), _bits_per_pixel(found["big_light"])
    assert heavy > reencode.REENCODE_MIN_BITS_PER_PIXEL > light
    assert 1200 * 1000 > reencode.REENCODE_MIN_PIXELS >= 600 * 500
    return found


@pytest.mark.parametrize("name, reencoded", [("big_progressive", True), ("big_heavy", True), ("big_light", False),
                                             ("small", False)])
def test_auto_follows_the_rule(tmp_path, sources, name, reencoded):
    data = sources[name]
    assert reencode.reencode_pays(*jpeg.jpeg_shape(data), len(data), jpeg.is_progressive(data)) is reencoded
    report = write_dataset(tmp_path / "a.fssl", [(data, 0)], mode="auto", jpeg_quality=85, num_workers=0,
                           progress=False)
    r = DatasetReader(tmp_path / "a.fssl")
    assert report.storage_counts == {"raw": 0, "jpeg": int(reencoded), "passthrough": int(not reencoded)}
    assert (r.encoded(0) == data) is not reencoded
    assert (r.heights[0], r.widths[0]) == jpeg.jpeg_shape(data) == r.image(0).shape[:2]  # same size
    if reencoded:
        stored = r.encoded(0)
        assert not jpeg.is_progressive(stored)
        assert stored == jpeg.encode_jpeg(jpeg.decode_jpeg(data), 85)  # the writer's quality, deterministic


def test_the_rule_only_applies_to_auto(tmp_path, sources):
    data = sources["big_progressive"]
    write_dataset(tmp_path / "p.fssl", [(data, 0)], mode="passthrough", num_workers=0, progress=False)
    assert DatasetReader(tmp_path / "p.fssl").encoded(0) == data


def test_schema_records_the_thresholds(tmp_path, sources):
    write_dataset(tmp_path / "s.fssl", [(sources["small"], 0)], mode="auto", num_workers=0, progress=False)
    rule = DatasetReader(tmp_path / "s.fssl").schema["image"]["auto_reencode"]
    assert rule["min_pixels"] == reencode.REENCODE_MIN_PIXELS
    assert rule["min_bits_per_pixel"] == reencode.REENCODE_MIN_BITS_PER_PIXEL


def test_is_progressive_reads_the_frame_marker(sources):
    assert jpeg.is_progressive(sources["big_progressive"])
    assert not jpeg.is_progressive(sources["small"])
    for bad in (b"", b"not a jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF"):
        with pytest.raises(ValueError, match="start-of-frame"):
            jpeg.is_progressive(bad)
