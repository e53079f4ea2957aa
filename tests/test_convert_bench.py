"""Correctness of the conversion and order benches (not timings): rows, FFCV pairing, the order check."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from benches import convert_speed, order_speed

FFCV_PYTHON = os.environ.get("FASTSSL_FFCV_PYTHON")  # an interpreter with ffcv 1.0.2 (benches/ffcv_baseline.py)


def _files(folder: Path) -> list[tuple[str, int]]:
    return [(str(p), i % 10) for i, p in enumerate(sorted(folder.rglob("*.jpg")))]


def test_every_ffcv_pairing_names_a_measured_setting():
    assert set(convert_speed.FFCV_MATCH) <= set(convert_speed.MODES)
    for write_mode, max_resolution in convert_speed.FFCV_MATCH.values():
        assert write_mode in ("raw", "jpg") and max_resolution in (None, 512)
    assert convert_speed.MODES["raw-512"] == {"mode": "raw", "max_resolution": 512}


def test_measure_reports_the_median_of_its_repeats(tiny_imagefolder, tmp_path):
    samples = _files(tiny_imagefolder)
    row = convert_speed.measure("tiny", samples, "raw-512", 0, tmp_path, repeats=3)
    assert row["images"] == len(samples) and len(row["seconds_runs"]) == 3
    assert row["seconds"] == sorted(row["seconds_runs"])[1]
    assert row["storage_counts"]["raw"] == len(samples) and "ffcv" not in row
    assert not list(tmp_path.glob("*.fssl"))  # the converted file is deleted
    assert "raw-512" in convert_speed.format_rows([row])


def test_ffcv_comparison_needs_image_files(tmp_path):
    with pytest.raises(SystemExit, match="image files"):
        convert_speed.ffcv_write("python", [(np.zeros((4, 4, 3), np.uint8), 0)], "jpeg", 1, tmp_path)


@pytest.mark.skipif(not FFCV_PYTHON, reason="set FASTSSL_FFCV_PYTHON to an interpreter with ffcv 1.0.2")
def test_ffcv_writer_runs_in_its_interpreter(tiny_imagefolder, tmp_path):
    samples = _files(tiny_imagefolder)
    result = convert_speed.ffcv_write(FFCV_PYTHON, samples, "jpeg", 1, tmp_path)
    assert result["ffcv_version"] == "1.0.2" and result["images"] == len(samples)
    assert (result["write_mode"], result["max_resolution"]) == ("jpg", 512) and result["bytes"] > 0
    assert json.loads((tmp_path / "ffcv_writer.json").read_text()) == result


def test_order_speed_checks_the_permutation_against_the_first_implementation():
    result = order_speed.measure(samples=5000, sample_bytes=3000, epochs=2)
    assert set(result["median_s"]) == {"quasi_random_first", "quasi_random", "random"}
    assert all(len(v) == 2 for v in result["seconds"].values())
