"""benches/decode_region runs end to end on small generated photos and reports what it promises (no timings)."""
from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from benches import decode_region
from fastssl_loader import turbo
from tests.conftest import natural_image


@pytest.mark.skipif(not turbo.available(), reason="turbojpeg wheel (extra [turbo]) not installed")
def test_decode_region_bench_writes_every_section(tmp_path):
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    big.mkdir()
    for i in range(3):
        Image.fromarray(natural_image(300, 400, seed=i)).save(small / f"{i}.jpg", quality=95)
    buf = io.BytesIO()
    Image.fromarray(natural_image(900, 1300, seed=9)).save(buf, "JPEG", quality=98, progressive=True)
    (big / "prog.jpg").write_bytes(buf.getvalue())
    Image.fromarray(natural_image(1000, 1200, seed=8)).save(big / "base.jpg", quality=70)
    out = tmp_path / "r.json"
    decode_region.main(["--data", str(small), "--big", str(big), "--max-resolution", "256", "--repeats", "1",
                        "--draws", "2", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["backends"]["stored"]["scale1"] == {"identical": 3, "images": 3}
    assert doc["fast_idct"]["stored"]["1"]["images_changed"] >= 1
    assert doc["stored"]["images"] == 3 and set(doc["stored"]["images_per_s"]) == set(decode_region.configurations())
    rows = {r["file"]: r for r in doc["big"]}
    assert rows["prog.jpg"]["progressive"] and not rows["base.jpg"]["progressive"]
    assert rows["prog.jpg"]["megapixels"] == pytest.approx(1.17) and all(s in (1, 2, 4, 8) for s in
                                                                         rows["base.jpg"]["dct_scales"])
    assert doc["big_policy"]["all"]["photos"] == ["base.jpg", "prog.jpg"]
