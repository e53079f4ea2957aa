"""Helpers shared by the source tests: real JPEGs when present (generated ones otherwise), a PNG, a conversion."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from fastssl_loader import write_dataset
from tests.conftest import natural_image


@pytest.fixture(scope="module")
def jpeg_files(shared_data: Path) -> list[tuple[str, bytes]]:
    """Six (name, JPEG bytes): real ImageNet photos when present, generated images otherwise."""
    folder = shared_data / "imagenet-sample"
    if folder.is_dir():
        names = sorted(name for name in os.listdir(folder) if name.endswith(".JPEG"))[:6]
        return [(name, (folder / name).read_bytes()) for name in names]
    files = []
    for k in range(6):
        buffer = io.BytesIO()
        Image.fromarray(natural_image(90 + 7 * k, 120 - 5 * k, seed=k)).save(buffer, format="JPEG", quality=90)
        files.append((f"n0000000{k % 3}_gen{k}.JPEG", buffer.getvalue()))
    return files


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(natural_image(40, 50, seed=seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def convert(samples, path: Path, **options):
    options = {"mode": "auto", "num_workers": 0, "progress": False, **options}
    return write_dataset(path, samples, **options), path
