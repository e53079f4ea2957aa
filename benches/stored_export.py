"""The stored images of a converted file as JPEG files, so file-based peers read the same bytes as our loader.

A sample stored as JPEG is written byte for byte (the payload our loader decodes); a raw sample has no JPEG of
its own and is encoded at ``quality``. Files are ``<index:07d>.jpg`` in sample order; an existing file is
rewritten when its bytes differ, so an export folder never holds stale images.
"""
from __future__ import annotations

from pathlib import Path


def export_stored_jpegs(path: str | Path, dst: str | Path, quality: int = 90) -> list[tuple[str, int]]:
    """Write every sample of the ``.fssl`` file ``path`` into ``dst``; return ``[(file, label)]`` in order."""
    from fastssl_loader.format import STORAGE_JPEG
    from fastssl_loader.jpeg import encode_jpeg
    from fastssl_loader.reader import DatasetReader

    r = DatasetReader(path)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(len(r)):
        f = dst / f"{i:07d}.jpg"
        data = r.encoded(i) if r.storage[i] == STORAGE_JPEG else encode_jpeg(r.image(i), quality)
        if not f.is_file() or f.stat().st_size != len(data) or f.read_bytes() != data:
            f.write_bytes(data)
        samples.append((str(f), int(r.labels[i])))
    return samples
