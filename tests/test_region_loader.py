"""The region-decoding batch-builder prototype (benches/region_loader.py) gives the Loader's views and params."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benches.region_loader import RegionLoader
from fastssl_loader import Loader, jpeg, ops, presets


def _epoch(loader: Loader) -> list:
    return [([v.clone() for v in views], labels.clone(), [p.copy() for p in params])
            for views, labels, params in loader]


@pytest.mark.parametrize("backend", ["turbojpeg", "simplejpeg"])
def test_region_loader_matches_loader(jpeg_dataset, monkeypatch, backend):
    if backend == "turbojpeg" and jpeg.REGION_BACKEND != "turbojpeg":
        pytest.skip("turbojpeg wheel not installed")
    monkeypatch.setattr(jpeg, "REGION_BACKEND", backend)
    kw = {"batch_size": 8, "views": presets.byol(24), "num_workers": 1, "order": "sequential", "seed": 5,
          "drop_last": False, "dtype": torch.uint8, "return_params": True}
    expected, got = _epoch(Loader(jpeg_dataset, **kw)), _epoch(RegionLoader(jpeg_dataset, **kw))
    assert len(expected) == len(got)
    differing = total = 0
    for (ve, le, pe), (vg, lg, pg) in zip(expected, got):
        torch.testing.assert_close(lg, le)
        for a, b in zip(pe, pg):  # the caller's params stay in stored-image coordinates
            np.testing.assert_array_equal(a, b)
        for a, b in zip(ve, vg):
            d = (a.int() - b.int()).abs()
            assert int(d.max()) <= 1  # only float rounding of the shifted crop origin may differ
            differing, total = differing + int((d > 0).sum()), total + d.numel()
    assert differing <= total * 1e-3


def test_region_loader_reads_whole_images_for_resize_views(jpeg_dataset):
    views = [[ops.Resize(20, crop=16)], presets.byol(16)[0]]
    kw = {"batch_size": 8, "views": views, "num_workers": 1, "order": "sequential", "drop_last": False,
          "dtype": torch.uint8}
    loader = RegionLoader(jpeg_dataset, **kw)
    assert not loader._all_crop
    for (a, _), (b, _) in zip(Loader(jpeg_dataset, **kw), loader):
        for va, vb in zip(a, b):
            assert int((va.int() - vb.int()).abs().max()) <= 1
