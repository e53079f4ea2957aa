"""benches.device_check: the GPU proof script runs end to end on the CPU (``--dry-run``), so it cannot rot.

The dry run is given a small converted photo file with ``--data``, the way the GPU machine gets the carried
one, and must report every section with status ok. Also checked: the helpers that repeat a dataset file,
and the comparison tolerances the GPU-vs-CPU check documents.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from benches.device_check import SECTIONS
from benches.device_correctness import tolerance
from benches.repeat_data import SquareThumbnail, write_repeated
from fastssl_loader import DatasetReader, write_dataset
from fastssl_loader.format import STORAGE_JPEG, STORAGE_RAW
from tests.conftest import REPO, natural_image


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> str:
    """40 JPEG 'photos' of varied sizes, labels i % 5."""
    path = tmp_path_factory.mktemp("device") / "photos.fssl"
    shapes = [(96 + 7 * (i % 5), 128 - 5 * (i % 4)) for i in range(40)]
    write_dataset(path, [(natural_image(h, w, seed=i), i % 5) for i, (h, w) in enumerate(shapes)], mode="jpeg",
                  num_workers=0, progress=False)
    return str(path)


def test_dry_run_reports_every_section_ok(photo_file, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "benches.device_check", "--dry-run", "--out", str(out),
                           "--data", photo_file, "--work-dir", str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    doc = json.loads((out / "device_check.json").read_text())
    statuses = {name: doc["sections"].get(name, {}).get("status") for name in SECTIONS}
    assert statuses == {name: "ok" for name in SECTIONS}, (statuses, proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0
    sections = {name: doc["sections"][name]["result"] for name in SECTIONS}
    # every comparison really ran, on every dtype x layout, and every consumer and shutdown path
    combos = sections["gpu_matches_cpu"]["combinations"]
    assert len(combos) == 8 and all(c["batches"] == c["reference_batches"] > 1 for c in combos)
    assert [r["consumer"] for r in sections["slot_reuse"]["runs"]] == ["slower-sleep", "slower-matmul", "faster"]
    assert all(r["batches"] > r["slots"] for r in sections["slot_reuse"]["runs"])  # slots were reused
    assert all(c["mid_epoch"] for c in sections["shutdown"]["cases"])
    assert sections["cuda_tests"]["skipped"] >= 1  # no GPU here: the CUDA tests were found and skipped
    speed = sections["loader_speed"]
    assert {(f["loader"], f["rung"]) for f in speed["figures"]} == {(n, r) for n in ("fastssl", "torchvision")
                                                                    for r in (1, 5)}
    assert all(f["images_per_s"] > 0 for f in speed["figures"])
    runs = sections["training"]["runs"]
    assert [r["loader"] for r in runs] == ["fastssl", "torchvision"]
    assert all(r["epochs_done"] >= 1 and r["images_per_s"] > 0 for r in runs)
    assert (out / "summary.txt").read_text().count(" ok ") >= len(SECTIONS)
    assert not (tmp_path / "device_check-").exists() and not list(tmp_path.glob("device_check-*"))  # cleaned up


def test_write_repeated_passes_jpeg_through_and_cycles_labels(photo_file, tmp_path):
    src = DatasetReader(photo_file)
    report = write_repeated(photo_file, tmp_path / "big.fssl", 100)
    big = DatasetReader(tmp_path / "big.fssl")
    assert report.written == len(big) == 100 and report.storage_counts["passthrough"] == 100
    for i in (0, 39, 40, 99):
        assert big.encoded(i) == src.encoded(i % len(src))  # byte for byte, no re-encoding
    np.testing.assert_array_equal(big.labels, src.labels[np.arange(100) % len(src)])
    assert (big.storage == STORAGE_JPEG).all()


def test_write_repeated_with_thumbnails_stores_small_raw_images(photo_file, tmp_path):
    write_repeated(photo_file, tmp_path / "small.fssl", 50, transform=SquareThumbnail(32))
    small = DatasetReader(tmp_path / "small.fssl")
    assert len(small) == 50 and (small.storage == STORAGE_RAW).all()
    assert (small.heights == 32).all() and (small.widths == 32).all()
    np.testing.assert_array_equal(small.image(3), small.image(43))  # cycle of 40


def test_write_repeated_rejects_nothing_to_write(photo_file, tmp_path):
    with pytest.raises(ValueError, match="num_samples"):
        write_repeated(photo_file, tmp_path / "none.fssl", 0)


@pytest.mark.parametrize("dtype, rejected_ulps", [(torch.float16, 3), (torch.bfloat16, 5)])
def test_half_tolerance_covers_rounding_but_not_real_errors(dtype, rejected_ulps):
    """The GPU's float32 values differ from the CPU's by about 1e-7; rounded to a half type they may land
    one unit in the last place apart, which the tolerance admits; a few units apart it does not (the
    relative tolerance spans 1-2 units of float16 and 2-4 of bfloat16 across a binade)."""
    tol = tolerance(dtype)
    x = torch.linspace(-2.2, 2.7, 200001, dtype=torch.float64)  # the normalised pixel range
    a = x.float().to(dtype).double()
    b = (x.float() + 1e-6).to(dtype).double()
    within = (a - b).abs() <= tol["atol"] + tol["rtol"] * a.abs()
    assert within.all() and (a != b).any()
    big = a.abs() >= 0.25
    ulp = torch.finfo(dtype).eps * torch.exp2(torch.floor(torch.log2(a[big].abs())))
    wrong = a[big] + rejected_ulps * ulp
    assert ((wrong - a[big]).abs() > tol["atol"] + tol["rtol"] * a[big].abs()).all()
    assert tolerance(torch.uint8) == {"atol": 0.0, "rtol": 0.0}
    assert tolerance(torch.float32) == {"atol": 1e-5, "rtol": 0.0}
