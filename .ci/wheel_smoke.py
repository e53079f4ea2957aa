"""Check a built wheel from outside the checkout: run with the python of a venv where only the wheel is installed.

``python wheel_smoke.py WHEEL``: the wheel holds only the ``fastssl_loader`` package (no top-level benches,
converters or train_ref); ``import fastssl_loader`` comes from site-packages; the ``fastssl`` console script
converts a few generated images (in worker processes); one loader epoch yields every sample.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path


def check_wheel_contents(wheel: Path) -> None:
    tops = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    unexpected = {top for top in tops if top != "fastssl_loader" and not top.endswith(".dist-info")}
    assert not unexpected, f"{wheel.name} installs unexpected top-level entries: {sorted(unexpected)}"
    assert "fastssl_loader" in tops, f"{wheel.name} lacks the fastssl_loader package: {sorted(tops)}"


def convert_and_load(folder: Path) -> None:
    import numpy as np
    from PIL import Image

    import fastssl_loader as fsl
    from fastssl_loader import presets

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(fsl.__file__).resolve().is_relative_to(site), f"fastssl_loader imported from {fsl.__file__}"
    rng = np.random.default_rng(0)
    for i in range(12):
        cls = folder / "images" / f"class{i % 3}"
        cls.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(cls / f"{i}.{'png' if i % 2 else 'jpg'}")
    fastssl = Path(sys.executable).with_name("fastssl")
    dst = folder / "smoke.fssl"
    subprocess.run([str(fastssl), "convert", "imagefolder", str(folder / "images"), str(dst), "--mode", "jpeg",
                    "--workers", "2", "--no-progress"], check=True)
    loader = fsl.Loader(dst, batch_size=4, views=presets.simclr(32), num_workers=1, order="random", seed=0,
                        drop_last=False, device="cpu")
    seen = sum(len(labels) for _, labels in loader)
    assert seen == 12, f"one epoch yielded {seen} samples, expected 12"
    print(f"wheel smoke ok: {fsl.__file__}; converted 12 images; one epoch of {seen} samples")


def main() -> None:
    wheel = Path(sys.argv[1]).resolve()
    check_wheel_contents(wheel)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # nothing of the checkout on sys.path
        convert_and_load(Path(tmp))


if __name__ == "__main__":
    main()
