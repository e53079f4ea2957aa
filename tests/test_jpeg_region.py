"""Region-limited and fast-IDCT decoding: decode_region equals a full decode + crop, fallbacks, errors.

Real photos (../shared/data/imagenet-sample) re-encoded in every chroma layout when present, generated
images otherwise. The TurboJPEG tests need the optional ``turbojpeg`` wheel (in the ``dev`` extra on Linux).
"""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastssl_loader import jpeg, turbo
from tests.conftest import natural_image

needs_turbo = pytest.mark.skipif(not turbo.available(), reason="turbojpeg wheel (extra [turbo]) not installed")
# (Pillow subsampling, progressive): 4:4:4, 4:2:2, 4:2:0 baseline and 4:2:0 progressive
LAYOUTS = [(0, False), (1, False), (2, False), (2, True)]


def _encode(rgb: np.ndarray, subsampling: int, progressive: bool) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90, subsampling=subsampling, progressive=progressive)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos(shared_data: Path) -> list[bytes]:
    """JPEGs in every layout of LAYOUTS: 3 real photos each when present, generated ones otherwise."""
    folder = shared_data / "imagenet-sample"
    files = sorted(folder.glob("*.JPEG"))[::337] if folder.is_dir() else []
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    images = images or [natural_image(301, 437, seed=5), natural_image(250, 190, seed=6),
                        natural_image(64, 129, seed=7)]
    return [_encode(rgb, s, p) for rgb in images for s, p in LAYOUTS]


def _cover(shape: tuple[int, int], scaled: tuple[int, int], box: tuple[int, int, int, int]) -> tuple[slice, slice]:
    """Rows and columns of the scaled image that decode_region promises for ``box`` (see its docstring)."""
    (h, w), (sh, sw), (top, left, bh, bw) = shape, scaled, box
    return (slice(top * sh // h, -(-(top + bh) * sh // h)), slice(left * sw // w, -(-(left + bw) * sw // w)))


def _random_box(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int]:
    bh, bw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    return int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1)), bh, bw


@needs_turbo
@pytest.mark.parametrize("scale", jpeg.SCALES)
def test_region_equals_full_decode_then_crop(photos, scale):
    rng = np.random.default_rng(scale)
    for data in photos:
        shape = jpeg.jpeg_shape(data)
        full, origin = turbo.decode(data, scale, None, None, False)
        assert origin == (0, 0) and full.shape[:2] == jpeg.scaled_shape(*shape, scale)
        for _ in range(25):
            box = _random_box(rng, *shape)
            region, (top, left) = jpeg.decode_region(data, scale, box)
            rows, cols = _cover(shape, full.shape[:2], box)
            assert top <= rows.start and left <= cols.start
            assert top + region.shape[0] >= rows.stop and left + region.shape[1] >= cols.stop
            assert top + region.shape[0] <= full.shape[0] and left + region.shape[1] <= full.shape[1]
            np.testing.assert_array_equal(region[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left],
                                          full[rows, cols], err_msg=f"box {box} scale {scale}")


@needs_turbo
@pytest.mark.parametrize("scale", jpeg.SCALES)
def test_turbo_full_decode_equals_simplejpeg(photos, scale):
    for data in photos:
        for fast in (False, True):
            np.testing.assert_array_equal(turbo.decode(data, scale, None, None, fast)[0],
                                          jpeg.decode_jpeg(data, scale=scale, fast_idct=fast))


@needs_turbo
def test_region_is_smaller_than_the_image_and_aligned(photos):
    data = photos[2]  # 4:2:0: 16-pixel iMCUs
    h, w = jpeg.jpeg_shape(data)
    region, (top, left) = jpeg.decode_region(data, 1, (h // 2, w // 2, 10, 10))
    assert top == h // 2 and left % 16 == 0 and region.shape[0] == 10 and region.shape[1] < w // 2


def test_covering_region_rule():
    # 4:2:0 (iMCU 16 px): one scaled iMCU of margin each side for fancy upsampling, left aligned down
    assert turbo.covering_region(100, 200, 1, (10, 50, 20, 30), 16) == (10, 32, 20, 64)
    assert turbo.covering_region(100, 200, 2, (11, 51, 20, 30), 16) == (5, 16, 11, 33)  # rows 5.5..15.5
    # 4:4:4 (8 px): no margin, only alignment; a scaled side is ceil(full / scale)
    assert turbo.covering_region(100, 200, 8, (10, 50, 20, 30), 8) == (1, 6, 3, 4)
    assert turbo.covering_region(101, 203, 4, (0, 0, 101, 203), 8) == (0, 0, 26, 51)
    # clipped to the image, empty when outside
    assert turbo.covering_region(100, 200, 1, (-5, 190, 500, 50), 16) == (0, 160, 100, 40)
    assert turbo.covering_region(100, 200, 1, (100, 0, 5, 5), 16)[2:] == (0, 0)


def test_region_fallback_decodes_the_whole_image(monkeypatch, make_image):
    data = jpeg.encode_jpeg(make_image(90, 70, seed=8), 90)
    monkeypatch.setattr(jpeg, "REGION_BACKEND", "simplejpeg")
    out = np.empty(45 * 35 * 3, np.uint8)
    image, origin = jpeg.decode_region(data, 2, (10, 10, 20, 20), out)
    assert origin == (0, 0) and np.shares_memory(image, out)
    np.testing.assert_array_equal(image, jpeg.decode_jpeg(data, scale=2))


@needs_turbo
def test_region_into_caller_buffer(make_image):
    data = jpeg.encode_jpeg(make_image(90, 70, seed=9), 90)
    out = np.empty(90 * 70 * 3, np.uint8)
    image, (top, left) = jpeg.decode_region(data, 1, (20, 30, 40, 20), out)
    assert np.shares_memory(image, out) and image.shape[0] == 40 and top == 20 and left <= 30
    np.testing.assert_array_equal(image[:, 30 - left:50 - left], jpeg.decode_jpeg(data)[20:60, 30:50])
    with pytest.raises(ValueError, match="too small"):
        jpeg.decode_region(data, 1, (0, 0, 90, 70), np.empty(100, np.uint8))
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        jpeg.decode_region(data, 1, None, np.empty(90 * 70 * 3, np.float32))


@pytest.mark.parametrize("scale", jpeg.SCALES)
def test_fast_idct_is_close_to_accurate(photos, scale):
    for data in photos:
        accurate = jpeg.decode_jpeg(data, scale=scale).astype(np.int16)
        fast = jpeg.decode_jpeg(data, scale=scale, fast_idct=True).astype(np.int16)
        assert fast.shape == accurate.shape
        diff = np.abs(fast - accurate)
        assert diff.max() <= 32 and np.mean(diff.astype(np.float64) ** 2) < 255 ** 2 / 1e4  # PSNR > 40 dB
        region, origin = jpeg.decode_region(data, scale, None, fast_idct=True)
        assert origin == (0, 0)
        np.testing.assert_array_equal(region, fast.astype(np.uint8))


def test_fast_idct_changes_full_size_pixels(photos):
    data = photos[0]
    assert (jpeg.decode_jpeg(data, fast_idct=True) != jpeg.decode_jpeg(data)).any()


@needs_turbo
@pytest.mark.parametrize("bad", [b"", b"garbage bytes", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_region_garbage_raises_value_error(bad):
    with pytest.raises(ValueError):
        jpeg.decode_region(bad, 1, (0, 0, 4, 4))


@needs_turbo
def test_region_truncated_raises(make_image):
    data = jpeg.encode_jpeg(make_image(64, 64), 90)
    with pytest.raises(ValueError, match="header"):  # cut inside the Huffman tables
        jpeg.decode_region(data[: len(data) // 2], 1, (0, 0, 64, 64))
    with pytest.raises(ValueError, match="decode failed: Premature end"):  # cut inside the scan
        jpeg.decode_region(data[:-10], 1, (0, 0, 64, 64))
    region, _ = jpeg.decode_region(data, 1, (0, 0, 64, 64))  # the thread's decoder works again afterwards
    np.testing.assert_array_equal(region, jpeg.decode_jpeg(data))


@needs_turbo
def test_region_bad_scale(make_image):
    with pytest.raises(ValueError, match="scale"):
        jpeg.decode_region(jpeg.encode_jpeg(make_image(8, 8), 90), 3, None)


@needs_turbo
def test_region_decode_is_thread_safe(photos):
    """Each thread has its own TurboJPEG handle: concurrent decodes give the sequential results."""
    jobs = [(data, scale, (5 * k, 3 * k, 80, 90)) for k, data in enumerate(photos) for scale in (1, 2)] * 4
    expected = [jpeg.decode_region(*job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: jpeg.decode_region(*job), jobs))
    for (a, oa), (b, ob) in zip(expected, got):
        assert oa == ob
        np.testing.assert_array_equal(a, b)


def test_union_box_holds_every_view_box():
    a = np.array([[10, 20, 30, 40], [0, 0, 5, 5]])
    b = np.array([[5, 30, 10, 50], [0, 0, 5, 5]])
    np.testing.assert_array_equal(jpeg.union_box([a, b]), [[5, 20, 35, 60], [0, 0, 5, 5]])
    np.testing.assert_array_equal(jpeg.union_box([a]), a)


def test_largest_scale():
    ratio = np.array([0.3, 1.0, 1.99, 2.0, 3.9, 4.0, 7.99, 8.0, 100.0])
    np.testing.assert_array_equal(jpeg.largest_scale(ratio), [1, 1, 1, 2, 2, 4, 4, 8, 8])


@pytest.mark.parametrize("backend", ["turbojpeg", "simplejpeg"])
def test_region_rejects_a_header_that_disagrees_with_the_index(monkeypatch, make_image, backend):
    if backend == "turbojpeg" and not turbo.available():
        pytest.skip("turbojpeg wheel not installed")
    monkeypatch.setattr(jpeg, "REGION_BACKEND", backend)
    data = jpeg.encode_jpeg(make_image(40, 60, seed=10), 90)
    assert jpeg.decode_region(data, 2, (0, 0, 10, 10), expect_shape=(40, 60))[0].size > 0
    with pytest.raises(ValueError, match="expected"):
        jpeg.decode_region(data, 2, (0, 0, 10, 10), expect_shape=(60, 40))


@needs_turbo
@pytest.mark.parametrize("scale", jpeg.SCALES)
def test_region_in_frame_sits_at_its_place_in_the_whole_image(photos, scale):
    rng = np.random.default_rng(10 + scale)
    for data in photos:
        shape = jpeg.jpeg_shape(data)
        full = jpeg.decode_jpeg(data, scale=scale)
        frame = np.full(full.size, 7, np.uint8)
        box = _random_box(rng, *shape)
        region, (top, left) = jpeg.decode_region(data, scale, box, frame, in_frame=True)
        frame = frame.reshape(full.shape)
        assert np.shares_memory(region, frame)
        np.testing.assert_array_equal(region, frame[top:top + region.shape[0], left:left + region.shape[1]])
        rows, cols = _cover(shape, full.shape[:2], box)
        np.testing.assert_array_equal(frame[rows, cols], full[rows, cols])
        outside = np.ones(full.shape[:2], bool)
        outside[top:top + region.shape[0], left:left + region.shape[1]] = False
        assert (frame[outside] == 7).all()  # untouched
    with pytest.raises(ValueError, match="too small"):
        jpeg.decode_region(data, scale, (0, 0, 8, 8), np.empty(full.size - 1, np.uint8), in_frame=True)
