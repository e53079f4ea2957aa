"""The examples run end to end (``--smoke``: a few steps on small generated data) against the real libraries."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_example(name: str) -> str:
    """Run ``examples/<name> --smoke`` in a fresh process; returns its output."""
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(REPO / "examples" / name), "--smoke"], cwd=REPO / "examples",
                          env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
def test_lightly_simclr_example_trains_with_lightlys_loss():
    pytest.importorskip("lightly")
    output = run_example("lightly_simclr.py")
    losses = [float(x) for x in re.findall(r"step \d+ loss ([-\d.]+) \(first sample \d+\)", output)]
    assert len(losses) == 6 and all(0 < loss < 20 for loss in losses), output[-2000:]
    assert "done: 6 steps" in output


@pytest.mark.slow
@pytest.mark.skipif(not any(importlib.util.find_spec(n) for n in ("lightning", "pytorch_lightning")),
                    reason="needs the [lightning] extra")
def test_solo_learn_byol_example_trains_on_the_datamodule():
    output = run_example("solo_learn_byol.py")
    done = re.search(r"done: 6 steps, train_byol ([\d.]+), train_probe ([\d.]+), val_acc ([\d.]+)", output)
    assert done, output[-2000:]
    byol, _, val_acc = map(float, done.groups())
    assert 0 <= byol <= 8 and 0 <= val_acc <= 1  # BYOL's loss, two view orders, is 2 - 2 cos each
