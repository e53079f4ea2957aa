"""Region-limited decoding in the Loader: the same uint8 pixels and params as a whole-image decode.

Real photos of ../shared/data/imagenet-sample when present (each re-encoded in one of four chroma layouts,
so the region's column margins for subsampled chroma are exercised), generated images otherwise.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastssl_loader import Loader, jpeg, ops, presets, turbo, write_dataset
from fastssl_loader.builder import FULL_DECODER, REGION_DECODER, BatchBuilder
from tests.conftest import natural_image

needs_turbo = pytest.mark.skipif(not turbo.available(), reason="turbojpeg wheel (extra [turbo]) not installed")
# (Pillow subsampling, progressive): 4:4:4, 4:2:2, 4:2:0 baseline, 4:2:0 progressive
LAYOUTS = [(0, False), (1, False), (2, False), (2, True)]
SIZES = (200, 96, 40, 12)  # view sides: together they make every DCT scale 1, 2, 4, 8 occur


def _jpeg(rgb: np.ndarray, layout: int) -> bytes:
    subsampling, progressive = LAYOUTS[layout % len(LAYOUTS)]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90, subsampling=subsampling, progressive=progressive)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """16 JPEGs stored untouched: real photos when present, generated ones of odd sizes otherwise."""
    folder = shared_data / "imagenet-sample"
    files = sorted(folder.glob("*.JPEG"))[::61][:16] if folder.is_dir() else []
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    images = images or [natural_image(301 + 7 * i, 437 - 9 * i, seed=i) for i in range(16)]
    path = tmp_path_factory.mktemp("region") / "photos.fssl"
    write_dataset(path, [(_jpeg(rgb, i), i % 3) for i, rgb in enumerate(images)], mode="passthrough",
                  num_workers=0, progress=False)
    return str(path)


def _epoch(loader: Loader) -> list:
    return [([v.clone() for v in views], labels.clone(), [p.copy() for p in params])
            for views, labels, params in loader]


def _assert_same_batches(expected: list, got: list) -> None:
    assert len(expected) == len(got) > 0
    for (ve, le, pe), (vg, lg, pg) in zip(expected, got):
        torch.testing.assert_close(lg, le, rtol=0, atol=0)
        for a, b in zip(pe, pg):  # the caller's params stay in stored-image coordinates
            np.testing.assert_array_equal(a, b)
        for a, b in zip(ve, vg):
            assert torch.equal(a, b)


def _kwargs(views: list, **extra) -> dict:
    return {"batch_size": 8, "views": views, "num_workers": 1, "order": "random", "seed": 5, "drop_last": False,
            "dtype": torch.uint8, "return_params": True, **extra}


@needs_turbo
@pytest.mark.parametrize("fast_idct", [False, True])
@pytest.mark.parametrize("dct_scale", [True, False])
def test_region_decode_gives_the_whole_decodes_pixels(photos, dct_scale, fast_idct):
    scales_seen = set()
    for size in SIZES:
        kw = _kwargs(presets.byol(size), dct_scale=dct_scale, jpeg_fast_idct=fast_idct)
        region, whole = Loader(photos, **kw), Loader(photos, region_decode=False, **kw)
        assert (region.decoder, whole.decoder) == (REGION_DECODER, FULL_DECODER)
        got = _epoch(region)
        _assert_same_batches(_epoch(whole), got)
        builder = BatchBuilder(region.reader, region.plans, seed=5, dct_scale=True, batch_size=8)
        scales_seen.update(int(s) for _, _, params in got for s in builder.dct_scales(builder.crop_boxes(params),
                                                                                   region.epoch))
    assert scales_seen == set(jpeg.SCALES)


@needs_turbo
def test_region_decode_with_views_of_different_sizes(photos):
    views = [presets.byol(160)[0], presets.byol(48)[1], [ops.RandomResizedCrop(24, scale=(0.05, 0.2))]]
    kw = _kwargs(views)
    _assert_same_batches(_epoch(Loader(photos, region_decode=False, **kw)), _epoch(Loader(photos, **kw)))


def test_fast_idct_changes_pixels_a_little(photos):
    kw = _kwargs(presets.byol(200), dct_scale=False)
    accurate, fast = _epoch(Loader(photos, **kw)), _epoch(Loader(photos, jpeg_fast_idct=True, **kw))
    diffs = [(a.int() - b.int()).abs() for (va, _, _), (vb, _, _) in zip(accurate, fast) for a, b in zip(va, vb)]
    assert any(int(d.max()) > 0 for d in diffs)
    assert float(torch.cat([d.flatten() for d in diffs]).float().mean()) < 2.0


@pytest.mark.parametrize("views", [[[ops.Resize(20, crop=16)], presets.byol(16)[0]],
                                   [[ops.CenterCrop(16, resize=20)]]])
def test_resize_views_decode_the_whole_image(photos, views):
    loader = Loader(photos, **_kwargs(views))
    assert loader.decoder == FULL_DECODER
    _assert_same_batches(_epoch(Loader(photos, region_decode=False, **_kwargs(views))), _epoch(loader))


def test_without_the_turbo_backend_the_whole_image_is_decoded(photos, monkeypatch):
    kw = _kwargs(presets.byol(40))
    expected = _epoch(Loader(photos, region_decode=False, **kw))
    monkeypatch.setattr(jpeg, "REGION_BACKEND", "simplejpeg")
    loader = Loader(photos, **kw)
    assert loader.decoder == FULL_DECODER
    _assert_same_batches(expected, _epoch(loader))


def test_raw_and_jpeg_samples_mixed(auto_dataset):
    kw = _kwargs(presets.byol(16))
    _assert_same_batches(_epoch(Loader(auto_dataset, region_decode=False, **kw)), _epoch(Loader(auto_dataset, **kw)))


@needs_turbo
@pytest.mark.parametrize("fill", [0, 255])
def test_kernels_read_only_the_decoded_region(photos, fill):
    """The frame around the decoded region holds stale bytes: whatever they are, the views do not change."""
    loader = Loader(photos, **_kwargs(presets.byol(40)))
    reader, plans = loader.reader, loader.plans
    ids = np.arange(len(reader))
    outs = [np.empty(len(ids) * 3 * 40 * 40, np.uint8) for _ in plans]
    whole = BatchBuilder(reader, plans, seed=1, dct_scale=True, batch_size=len(ids), region_decode=False)
    expected = [v.copy() for v in whole.build(ids, 0, outs).views]
    region = BatchBuilder(reader, plans, seed=1, dct_scale=True, batch_size=len(ids))
    region._scratch = np.full(int(reader.heights @ reader.widths) * 3, fill, np.uint8)  # poisoned frame
    for a, b in zip(expected, region.build(ids, 0, outs).views):
        np.testing.assert_array_equal(a, b)
