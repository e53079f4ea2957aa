"""writer.py: round trips per storage mode, max_resolution, determinism, atomicity, errors, report."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastssl_loader import DatasetReader, format as fmt, write_dataset
from fastssl_loader.writer import AUTO_RAW_MAX_PIXELS


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_raw_round_trip_is_pixel_exact(raw_dataset, image_samples):
    r = DatasetReader(raw_dataset)
    assert len(r) == len(image_samples)
    np.testing.assert_array_equal(r.labels, [label for _, label in image_samples])
    assert (r.storage == fmt.STORAGE_RAW).all()
    for i, (rgb, _) in enumerate(image_samples):
        np.testing.assert_array_equal(r.image(i), rgb)
        assert r.encoded(i) == rgb.tobytes()


def test_jpeg_mode_psnr_bound(jpeg_dataset, image_samples):
    """Quality 90 (4:2:0) on natural-ish images of at least 32 x 32 stays above 35 dB PSNR."""
    r = DatasetReader(jpeg_dataset)
    assert (r.storage == fmt.STORAGE_JPEG).all()
    for i, (rgb, _) in enumerate(image_samples):
        out = r.image(i)
        assert out.shape == rgb.shape
        if min(rgb.shape[:2]) >= 32:
            assert psnr(out, rgb) >= 35, i


def test_auto_threshold(auto_dataset, image_samples):
    r = DatasetReader(auto_dataset)
    for i, (rgb, _) in enumerate(image_samples):
        small = rgb.shape[0] * rgb.shape[1] <= AUTO_RAW_MAX_PIXELS
        assert r.storage[i] == (fmt.STORAGE_RAW if small else fmt.STORAGE_JPEG)
        if small:
            np.testing.assert_array_equal(r.image(i), rgb)
    assert set(r.storage) == {fmt.STORAGE_RAW, fmt.STORAGE_JPEG}


def test_passthrough_keeps_source_bytes(tmp_path, make_image):
    sources = [jpeg_bytes(make_image(40 + i, 50, seed=i)) for i in range(3)]
    png = io.BytesIO()
    Image.fromarray(make_image(30, 30)).save(png, "PNG")
    files = []
    for i, data in enumerate(sources):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(data)
    samples = [(files[0], 0), (sources[1], 1), (png.getvalue(), 2), (files[2], 3)]
    report = write_dataset(tmp_path / "p.fssl", samples, mode="passthrough", num_workers=0, progress=False)
    assert report.storage_counts == {"raw": 0, "jpeg": 1, "passthrough": 3}
    r = DatasetReader(tmp_path / "p.fssl")
    assert [r.encoded(i) for i in (0, 1, 3)] == sources
    assert (r.storage == fmt.STORAGE_JPEG).all() and r.image(2).shape == (30, 30, 3)


def test_passthrough_and_auto_reencode_when_resizing(tmp_path, make_image):
    data = jpeg_bytes(make_image(120, 90))
    for mode in ("passthrough", "auto"):
        report = write_dataset(tmp_path / f"{mode}.fssl", [(data, 0)], mode=mode, max_resolution=80,
                               num_workers=0, progress=False)
        assert report.storage_counts["jpeg"] == 1
        r = DatasetReader(tmp_path / f"{mode}.fssl")
        assert (r.heights[0], r.widths[0]) == (80, 60) and r.image(0).shape == (80, 60, 3)


@pytest.mark.parametrize("mode", ["raw", "jpeg"])
def test_max_resolution_caps_long_side_and_keeps_aspect(tmp_path, make_image, mode):
    shapes = [(375, 500), (500, 375), (100, 50), (40, 30), (3, 300)]
    samples = [(make_image(*s, seed=k), k) for k, s in enumerate(shapes)]
    write_dataset(tmp_path / "m.fssl", samples, mode=mode, max_resolution=100, num_workers=0, progress=False)
    r = DatasetReader(tmp_path / "m.fssl")
    for i, (h, w) in enumerate(shapes):
        out = r.image(i)
        assert max(out.shape[:2]) == min(100, max(h, w))  # capped, never upscaled
        assert abs(out.shape[0] / out.shape[1] - h / w) <= 1 / min(out.shape[:2])  # aspect up to rounding
        assert (r.heights[i], r.widths[i]) == out.shape[:2]
    assert r.image(3).shape == (40, 30, 3)


def test_byte_identical_for_any_worker_count(tmp_path, image_samples):
    paths = []
    for workers in (0, 1, 2):
        paths.append(tmp_path / f"w{workers}.fssl")
        write_dataset(paths[-1], image_samples, mode="auto", num_workers=workers, progress=False)
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()


def test_report(tmp_path, image_samples):
    report = write_dataset(tmp_path / "r.fssl", image_samples, mode="raw", num_workers=0, progress=False)
    assert report.written == len(image_samples) and report.skipped == []
    assert report.bytes == (tmp_path / "r.fssl").stat().st_size
    assert report.bytes > sum(rgb.nbytes for rgb, _ in image_samples)
    assert report.seconds > 0 and report.images_per_second > 0
    assert str(len(image_samples)) in str(report)


def _with_broken_file(tmp_path: Path, make_image) -> tuple[list, Path]:
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg_bytes(make_image(40, 40)))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(jpeg_bytes(make_image(40, 40))[:300])
    return [(good, 0), (broken, 1), (good, 2)], broken


@pytest.mark.parametrize("workers", [0, 2])
def test_on_error_raise_names_file_and_leaves_nothing(tmp_path, make_image, workers):
    samples, broken = _with_broken_file(tmp_path, make_image)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="sample 1.*broken.jpg"):
        write_dataset(out / "d.fssl", samples, num_workers=workers, progress=False)
    assert leftovers(out) == []


def test_on_error_skip_lists_sample(tmp_path, make_image):
    samples, broken = _with_broken_file(tmp_path, make_image)
    report = write_dataset(tmp_path / "d.fssl", samples, on_error="skip", num_workers=0, progress=False)
    assert report.written == 2 and [i for i, _ in report.skipped] == [1]
    assert str(broken) in report.skipped[0][1]
    r = DatasetReader(tmp_path / "d.fssl")
    assert list(r.labels) == [0, 2] and r.schema["skipped"][0][0] == 1


def test_all_skipped_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no sample could be written"):
        write_dataset(tmp_path / "d.fssl", [(b"junk", 0)], on_error="skip", num_workers=0, progress=False)
    assert leftovers(tmp_path) == []


class _Interrupting:
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int):
        if i == 5:
            raise KeyboardInterrupt
        return np.zeros((4, 4, 3), np.uint8), 0


def test_interrupt_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        write_dataset(tmp_path / "d.fssl", _Interrupting(), num_workers=0, progress=False)
    assert leftovers(tmp_path) == []


def test_failure_keeps_existing_destination(tmp_path, image_samples):
    dst = tmp_path / "d.fssl"
    write_dataset(dst, image_samples[:2], num_workers=0, progress=False)
    before = dst.read_bytes()
    with pytest.raises(ValueError):
        write_dataset(dst, [(b"junk", 0)], num_workers=0, progress=False)
    assert dst.read_bytes() == before and leftovers(tmp_path) == ["d.fssl"]


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "foo"}, "mode"), ({"jpeg_quality": 0}, "jpeg_quality"), ({"jpeg_quality": 101}, "jpeg_quality"),
    ({"max_resolution": 0}, "max_resolution"), ({"max_resolution": 1.5}, "max_resolution"),
    ({"num_workers": -1}, "num_workers"), ({"on_error": "ignore"}, "on_error"),
    ({"description": {"x": object()}}, "description"), ({"extra_fields": {"bad name": "int32"}}, "name"),
    ({"extra_fields": {"label": "int32"}}, "name"), ({"extra_fields": {"x": "U5"}}, "dtype"),
])
def test_bad_arguments(tmp_path, image_samples, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_dataset(tmp_path / "d.fssl", image_samples[:2], progress=False, **kwargs)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("samples, match", [
    ([], "empty"), (iter([1]), "indexable"), ([(np.zeros((4, 4, 3), np.uint8), "cat")], "label"),
    ([np.zeros((4, 4, 3), np.uint8)], "expected \\(image, label"),
])
def test_bad_samples(tmp_path, samples, match):
    with pytest.raises(ValueError, match=match):
        write_dataset(tmp_path / "d.fssl", samples, num_workers=0, progress=False)
    assert leftovers(tmp_path) == []


def test_missing_destination_folder(tmp_path, image_samples):
    with pytest.raises(FileNotFoundError, match="missing"):
        write_dataset(tmp_path / "missing" / "d.fssl", image_samples[:1], progress=False)


def test_extra_fields_round_trip(tmp_path, make_image):
    samples = [(make_image(8, 8, seed=i), i, {"box": np.arange(4) + i, "weight": i / 2}) for i in range(5)]
    write_dataset(tmp_path / "e.fssl", samples, extra_fields={"box": ("int32", (4,)), "weight": "float32"},
                  num_workers=0, progress=False)
    r = DatasetReader(tmp_path / "e.fssl")
    np.testing.assert_array_equal(r.field("box"), [np.arange(4) + i for i in range(5)])
    np.testing.assert_allclose(r.field("weight"), [i / 2 for i in range(5)])
    assert r.field("box").dtype == np.dtype("<i4") and r.field("box").shape == (5, 4)


def test_extra_field_errors_name_sample(tmp_path, make_image):
    samples = [(make_image(8, 8), 0, {"box": np.arange(4)}), (make_image(8, 8), 1, {"box": np.arange(3)})]
    with pytest.raises(ValueError, match="sample 1.*box.*shape"):
        write_dataset(tmp_path / "e.fssl", samples, extra_fields={"box": ("int32", 4)}, num_workers=0,
                      progress=False)
    with pytest.raises(ValueError, match="sample 0.*missing extra field 'w'"):
        write_dataset(tmp_path / "e.fssl", samples, extra_fields={"w": "float32"}, num_workers=0, progress=False)


def test_mixed_source_kinds_become_rgb(tmp_path, make_image):
    rgb = make_image(12, 10)
    samples = [(Image.fromarray(rgb), 0), (rgb[..., 0], 1), (np.dstack([rgb, rgb[..., :1]]), 2),
               ((rgb.astype(np.uint16) * 257), 3)]
    write_dataset(tmp_path / "s.fssl", samples, mode="raw", num_workers=0, progress=False)
    r = DatasetReader(tmp_path / "s.fssl")
    np.testing.assert_array_equal(r.image(0), rgb)
    np.testing.assert_array_equal(r.image(1), np.repeat(rgb[..., :1], 3, axis=2))
    np.testing.assert_array_equal(r.image(2), rgb)
    np.testing.assert_array_equal(r.image(3), rgb)


class _UnpicklableSamples:
    """An indexable whose instances cannot be pickled (holds a lambda), as some user datasets are."""

    def __init__(self, images):
        self.images = images
        self.transform = lambda x: x

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), 0


def test_unpicklable_samples_need_num_workers_0(tmp_path, make_image):
    samples = _UnpicklableSamples([make_image(16, 16, seed=i) for i in range(4)])
    with pytest.raises(ValueError, match="num_workers=0"):
        write_dataset(tmp_path / "x.fssl", samples, num_workers=2, progress=False)
    assert list(tmp_path.iterdir()) == []
    report = write_dataset(tmp_path / "x.fssl", samples, num_workers=0, progress=False)
    assert report.written == 4
