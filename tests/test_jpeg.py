"""jpeg.py: decode matches Pillow, DCT-scaled shapes, caller buffers, encode quality, clean errors."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from fastssl_loader import jpeg


def pil_jpeg(rgb: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", **kw)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4 and 4:2:0
def test_decode_equals_pillow(make_image, subsampling):
    data = pil_jpeg(make_image(61, 83, seed=1), quality=88, subsampling=subsampling)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(jpeg.decode_jpeg(data), expected)


def test_grayscale_jpeg_decodes_to_replicated_rgb(make_image):
    gray = make_image(40, 50)[..., 0]
    data = pil_jpeg(gray)
    out = jpeg.decode_jpeg(data)
    assert out.shape == (40, 50, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_array_equal(out[..., 0], np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (31, 64), (375, 500), (333, 17)])
def test_scaled_shape_is_exact(make_image, scale, shape):
    data = jpeg.encode_jpeg(make_image(*shape, seed=2), 90)
    out = jpeg.decode_jpeg(data, scale=scale)
    assert out.shape[:2] == jpeg.scaled_shape(*shape, scale) == (-(-shape[0] // scale), -(-shape[1] // scale))


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_scaled_decode_is_a_downscale_of_the_image(make_image, scale):
    rgb = make_image(256, 192, seed=3)
    small = jpeg.decode_jpeg(jpeg.encode_jpeg(rgb, 95), scale=scale)
    expected = cv2.resize(rgb, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    assert psnr(small, expected) > 30


def test_decode_into_caller_buffer_without_copy(make_image):
    data = jpeg.encode_jpeg(make_image(30, 40), 90)
    scratch = np.zeros(30 * 40 * 3 + 100, np.uint8)
    out = jpeg.decode_jpeg(data, out=scratch)
    assert out.shape == (30, 40, 3) and np.shares_memory(out, scratch)
    np.testing.assert_array_equal(out, jpeg.decode_jpeg(data))
    half = jpeg.decode_jpeg(data, scale=2, out=np.empty(15 * 20 * 3, np.uint8))
    assert half.shape == (15, 20, 3)


def test_caller_buffer_checks(make_image):
    data = jpeg.encode_jpeg(make_image(30, 40), 90)
    with pytest.raises(ValueError, match="too small"):
        jpeg.decode_jpeg(data, out=np.empty(30 * 40 * 3 - 1, np.uint8))
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        jpeg.decode_jpeg(data, out=np.empty((40, 30, 3), np.uint8).transpose(1, 0, 2))
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        jpeg.decode_jpeg(data, out=np.empty(30 * 40 * 3, np.float32))


def test_accepts_memoryview_and_array_slices(make_image):
    data = jpeg.encode_jpeg(make_image(20, 24), 90)
    blob = np.frombuffer(b"junk" + data + b"tail", np.uint8)
    view = blob[4: 4 + len(data)]
    expected = jpeg.decode_jpeg(data)
    np.testing.assert_array_equal(jpeg.decode_jpeg(view), expected)
    np.testing.assert_array_equal(jpeg.decode_jpeg(memoryview(data)), expected)
    assert jpeg.jpeg_shape(view) == (20, 24)


def test_encode_quality_psnr(make_image):
    rgb = make_image(128, 160, seed=4)
    assert psnr(jpeg.decode_jpeg(jpeg.encode_jpeg(rgb, 90)), rgb) >= 35
    assert len(jpeg.encode_jpeg(rgb, 50)) < len(jpeg.encode_jpeg(rgb, 95))


@pytest.mark.parametrize("bad", [b"", b"garbage bytes", b"\xff\xd8\xff\xe0" + b"\x00" * 50])
def test_decode_garbage_raises_value_error(bad):
    with pytest.raises(ValueError):
        jpeg.decode_jpeg(bad)
    with pytest.raises(ValueError):
        jpeg.jpeg_shape(bad)


def test_truncated_jpeg_raises(make_image):
    data = jpeg.encode_jpeg(make_image(64, 64), 90)
    with pytest.raises(ValueError):
        jpeg.decode_jpeg(data[: len(data) // 2])


@pytest.mark.parametrize("quality", [0, 101, 1.5, True, "90"])
def test_encode_rejects_bad_quality(make_image, quality):
    with pytest.raises(ValueError, match="jpeg_quality"):
        jpeg.encode_jpeg(make_image(8, 8), quality)


@pytest.mark.parametrize("array", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                   np.zeros((8, 8, 3), np.float32)])
def test_encode_rejects_non_rgb_uint8(array):
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        jpeg.encode_jpeg(array, 90)


@pytest.mark.parametrize("scale", [0, 3, 16, True])
def test_bad_scale(make_image, scale):
    with pytest.raises(ValueError, match="scale"):
        jpeg.decode_jpeg(jpeg.encode_jpeg(make_image(8, 8), 90), scale=scale)
