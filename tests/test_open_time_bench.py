"""benches/open_time runs end to end on a small file and saves every figure (a smoke run, not a timing test)."""
from __future__ import annotations

import json
import subprocess
import sys

from fastssl_loader import DatasetReader

from .conftest import REPO


def test_open_time_bench_saves_its_figures(tmp_path):
    out, data = tmp_path / "open_time.json", tmp_path / "small.fssl"
    subprocess.run([sys.executable, "-m", "benches.open_time", "--samples", "300", "--file", str(data), "--repeats",
                    "2", "--rounds", "1", "--out", str(out)], cwd=REPO, check=True, capture_output=True)
    reader = DatasetReader(data)
    assert len(reader) == 300 and reader.heights.max() == 8 and list(reader.labels[:3]) == [0, 1, 2]
    results = json.loads(out.read_text())["revisions"]["WORKTREE"]["results"]
    assert set(results) == {"first_open_in_process_ms", "open_ms_min", "open_ms_median", "open_and_columns_ms_min",
                            "open_peak_mb", "open_and_columns_peak_mb"}
    assert all(value >= 0 for value in results.values())
