"""benches/region_loader: a smoke run on a few JPEGs; region decoding must agree with whole decoding exactly."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from benches import region_loader
from fastssl_loader import turbo
from fastssl_loader.builder import FULL_DECODER, REGION_DECODER
from tests.conftest import natural_image


def test_region_loader_bench_smoke(tmp_path):
    folder = tmp_path / "jpegs"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(natural_image(90 + 10 * i, 120, seed=i)).save(folder / f"{i}.jpg", quality=90)
    doc = region_loader.main(["--data", str(folder), "--limit", "6", "--rounds", "1", "--epochs", "1", "--rungs", "1",
                              "--size", "16", "--batch-size", "4", "--work-dir", str(tmp_path / "work"),
                              "--out", str(tmp_path / "out.json")])
    assert set(doc["images_per_s"]["1"]) == set(region_loader.CONFIGS)
    assert all(rate > 0 for rate in doc["images_per_s"]["1"].values())
    assert doc["agreement"]["region_vs_whole"]["max_abs_diff"] == 0
    assert doc["decoders"]["region"] == (REGION_DECODER if turbo.available() else FULL_DECODER)
    assert doc["decoders"]["whole"] == FULL_DECODER
    assert doc["decode_limit_2_threads_accurate_full"]["images_per_s"] > 0
    assert Path(tmp_path / "out.json").is_file()
