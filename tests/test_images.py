"""images.py: every source kind and colour mode becomes correct RGB uint8; bad sources are named."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fastssl_loader.images import SourceImageError, cap_resolution, capped_shape, plain_jpeg_shape, to_rgb


def encode(pil: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    pil.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgb_array_passes_through_unchanged(make_image):
    rgb = make_image(9, 13)
    out = to_rgb(rgb[:, ::-1])  # non-contiguous input
    np.testing.assert_array_equal(out, rgb[:, ::-1])
    assert out.flags.c_contiguous and out.dtype == np.uint8


@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 1)])
def test_gray_array_is_replicated(shape):
    gray = np.arange(42, dtype=np.uint8).reshape(shape)
    out = to_rgb(gray)
    assert out.shape == (6, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray.reshape(6, 7))


def test_alpha_is_dropped_for_arrays_and_pil(make_image):
    rgba = np.dstack([make_image(10, 12), np.linspace(0, 255, 120).reshape(10, 12).astype(np.uint8)])
    np.testing.assert_array_equal(to_rgb(rgba), rgba[..., :3])
    np.testing.assert_array_equal(to_rgb(Image.fromarray(rgba, "RGBA")), rgba[..., :3])
    np.testing.assert_array_equal(to_rgb(encode(Image.fromarray(rgba, "RGBA"), "PNG")), rgba[..., :3])


def test_uint16_is_scaled_with_rounding():
    values = np.array([[0, 257, 65535, 128, 129, 32896]], np.uint16)
    out = to_rgb(values)
    np.testing.assert_array_equal(out[0, :, 0], np.round(values[0].astype(float) * 255 / 65535).astype(np.uint8))
    assert list(out[0, :3, 1]) == [0, 1, 255]


def test_16bit_png_file(tmp_path):
    gray16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    path = tmp_path / "g16.png"
    Image.fromarray(gray16).save(path)
    out = to_rgb(path)
    np.testing.assert_array_equal(out[..., 1], np.round(gray16.astype(float) * 255 / 65535).astype(np.uint8))


def test_palette_and_bilevel(make_image):
    pal = Image.fromarray(make_image(16, 16)).convert("P", palette=Image.ADAPTIVE, colors=8)
    np.testing.assert_array_equal(to_rgb(encode(pal, "PNG")), np.asarray(pal.convert("RGB")))
    bilevel = Image.fromarray((np.arange(64).reshape(8, 8) % 2 * 255).astype(np.uint8)).convert("1")
    assert set(np.unique(to_rgb(bilevel))) == {0, 255}


def test_cmyk_pil_and_jpeg(make_image):
    rgb = make_image(24, 32, seed=5)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    np.testing.assert_array_equal(to_rgb(cmyk), np.asarray(cmyk.convert("RGB")))
    data = encode(cmyk, "JPEG", quality=95)
    assert plain_jpeg_shape(data) is None  # CMYK JPEG bytes are never passed through
    assert np.abs(to_rgb(data).astype(int) - rgb).mean() < 3


def test_exif_orientation_is_applied(make_image):
    rgb = make_image(20, 30, seed=6)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be turned 90 degrees clockwise for display
    data = encode(Image.fromarray(rgb), "JPEG", quality=95, exif=exif.tobytes())
    upright = to_rgb(data)
    assert plain_jpeg_shape(data) is None and upright.shape == (30, 20, 3)
    assert np.abs(upright.astype(int) - np.rot90(rgb, k=-1)).mean() < 3


def test_plain_jpeg_keeps_bytes_and_pixels(make_image, tmp_path):
    data = encode(Image.fromarray(make_image(20, 30)), "JPEG", quality=90)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    assert plain_jpeg_shape(data) == (20, 30)
    np.testing.assert_array_equal(to_rgb(path), np.asarray(Image.open(path).convert("RGB")))
    gray = encode(Image.fromarray(make_image(20, 30)[..., 0]), "JPEG")
    assert plain_jpeg_shape(gray) == (20, 30)
    assert plain_jpeg_shape(encode(Image.fromarray(make_image(20, 30)), "PNG")) is None


def test_plain_jpeg_check_reads_the_whole_stream(make_image):
    data = encode(Image.fromarray(make_image(64, 64)), "JPEG", quality=90)
    with pytest.raises(SourceImageError, match="sample 3: truncated JPEG"):
        plain_jpeg_shape(data[: len(data) * 2 // 3], name="sample 3")


def test_truncated_file_is_named(make_image, tmp_path):
    for suffix, fmt in ((".jpg", "JPEG"), (".png", "PNG")):
        data = encode(Image.fromarray(make_image(64, 64)), fmt)
        path = tmp_path / f"broken{suffix}"
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(SourceImageError, match="broken" + suffix.replace(".", r"\.") + f": truncated {fmt} "):
            to_rgb(path)


@pytest.mark.parametrize("bad, match", [
    (b"not an image at all", r"not an image \(starts with b'not an image at ', 19 bytes\)"),
    (b"", r"empty file \(0 bytes\)"),
    (b"\xff\xd8\xff broken", r"corrupt or truncated JPEG header"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((4, 4, 3), np.float32), "dtype"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
    (12345, "unsupported image type"),
    (Image.new("F", (4, 4)), "floating-point"),
])
def test_bad_sources_raise_named_errors(bad, match):
    with pytest.raises(SourceImageError, match=match) as info:
        to_rgb(bad, name="sample 7")
    assert "sample 7" in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(SourceImageError, match="nope.jpg"):
        to_rgb(tmp_path / "nope.jpg")


@pytest.mark.parametrize("shape, cap, expected", [
    ((375, 500), 256, (192, 256)), ((500, 375), 256, (256, 192)), ((100, 80), 256, (100, 80)),
    ((1, 1000), 10, (1, 10)), ((3, 1000), 100, (1, 100)), ((640, 480), None, (640, 480)), ((7, 7), 7, (7, 7)),
])
def test_capped_shape(shape, cap, expected):
    assert capped_shape(*shape, cap) == expected


def test_cap_resolution_never_upscales_and_averages(make_image):
    rgb = make_image(90, 120)
    assert cap_resolution(rgb, 200) is rgb
    small = cap_resolution(rgb, 60)
    assert small.shape == (45, 60, 3)
    assert abs(small.astype(float).mean() - rgb.astype(float).mean()) < 1.0


def test_reasons_name_no_object_addresses(make_image):
    """Skipped samples' reasons are stored in the file: they must be the same in every run."""
    jpeg_bytes = encode(Image.fromarray(make_image(64, 64)), "JPEG")
    png_bytes = encode(Image.fromarray(make_image(64, 64)), "PNG")
    sources = [b"", b"GIF89a-ish garbage", b"\xff\xd8\xff\xe0", jpeg_bytes[:300], png_bytes[:300],
               jpeg_bytes[:-200] + b"\xff\xd9"]
    for source in sources:
        reasons = set()
        for _ in range(2):
            with pytest.raises(SourceImageError) as info:
                to_rgb(source, name="s")
            reasons.add(info.value.reason)
        (reason,) = reasons
        assert " at 0x" not in reason and "object" not in reason, reason
