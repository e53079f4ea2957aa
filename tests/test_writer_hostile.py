"""writer.py against hostile and broken sources: decompression bombs refused from the header, deterministic skip
reasons, concurrent conversions in threads, and errors from a user's ``__getitem__`` keeping their type."""
from __future__ import annotations

import io
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastssl_loader import DatasetReader, SourceImageError, write_dataset
from fastssl_loader.images import to_rgb
from fastssl_loader.jpeg import encode_jpeg, jpeg_shape

from .conftest import REPO, natural_image


def png_claiming(height: int, width: int) -> bytes:
    """A tiny real PNG whose IHDR (checksum fixed) claims ``height`` x ``width``: a decompression bomb header."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr: ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13: ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4: ihdr + 13])))
    return bytes(data)


def jpeg_claiming(height: int, width: int) -> bytes:
    """A tiny real JPEG whose frame header (SOF0) claims ``height`` x ``width``."""
    data = bytearray(encode_jpeg(natural_image(8, 8), 90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5: sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_bomb_headers_claim_what_they_should(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert jpeg_shape(jpeg_claiming(60000, 60000)) == (60000, 60000)
    with Image.open(io.BytesIO(png_claiming(20000, 20000))) as pil:
        assert pil.size == (20000, 20000)


@pytest.mark.parametrize("make", [png_claiming, jpeg_claiming], ids=["png", "jpeg"])
def test_bombs_are_refused_from_the_header_even_without_pillows_limit(monkeypatch, make):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(SourceImageError, match=r"bomb: image of 20000x20000 = 400,000,000 pixels exceeds max_pixels"
                                               r"=178,956,970"):
        to_rgb(make(20000, 20000), name="bomb")
    with pytest.raises(SourceImageError, match="exceeds max_pixels=1,000"):
        to_rgb(make(40, 30), name="small", max_pixels=1000)  # the limit is a setting


@pytest.mark.parametrize("mode", ["auto", "raw", "jpeg", "passthrough"])
def test_max_pixels_governs_write_dataset(tmp_path, mode):
    samples = [(jpeg_claiming(40, 30), 0), (png_claiming(40, 30), 1), (natural_image(20, 20), 2),
               (Image.fromarray(natural_image(50, 30)), 3)]
    report = write_dataset(tmp_path / "d.fssl", samples, mode=mode, max_pixels=1000, on_error="skip",
                           num_workers=0, progress=False)
    assert [i for i, _ in report.skipped] == [0, 1, 3]
    assert all("exceeds max_pixels=1,000" in reason for _, reason in report.skipped)
    assert DatasetReader(tmp_path / "d.fssl").schema["image"]["max_pixels"] == 1000
    with pytest.raises(ValueError, match="max_pixels must be an integer"):
        write_dataset(tmp_path / "e.fssl", samples, max_pixels=0, progress=False)


_BOMB_SCRIPT = """
import resource, sys
from PIL import Image
Image.MAX_IMAGE_PIXELS = None  # what ML code often does: only fastssl_loader's own limit stands
from fastssl_loader import write_dataset
from tests.test_writer_hostile import jpeg_claiming, png_claiming
from tests.conftest import natural_image
samples = [(png_claiming(20000, 20000), 0), (jpeg_claiming(60000, 60000), 1), (jpeg_claiming(20000, 20000), 2),
           (natural_image(32, 32), 3)]
report = write_dataset(sys.argv[1], samples, on_error="skip", num_workers=0, progress=False)
for index, reason in report.skipped:
    print("skipped", index, reason)
# VmHWM: this process's own peak RSS. ru_maxrss would also count the forking parent's (Linux keeps it across exec),
# so under a large pytest process it measures pytest, not the conversion.
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
kib = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("maxrss_mb", kib / 1024)
"""


def test_bomb_conversion_stays_small_in_memory(tmp_path):
    result = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT, str(tmp_path / "b.fssl")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    skipped = [line for line in lines if line.startswith("skipped")]
    assert [line.split()[1] for line in skipped] == ["0", "1", "2"]
    assert all("exceeds max_pixels" in line for line in skipped)
    maxrss_mb = float(lines[-1].split()[1])
    print(f"peak RSS of the bomb conversion: {maxrss_mb:.0f} MB")
    assert maxrss_mb < 300, lines
    assert len(DatasetReader(tmp_path / "b.fssl")) == 1


def _folder_with_bad_files(root: Path) -> Path:
    folder = root / "src" / "a"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(natural_image(30 + i, 40, seed=i)).save(folder / f"good{i}.png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_bytes(b"this is not a picture")
    (folder / "cut.jpg").write_bytes(encode_jpeg(natural_image(64, 64), 90)[:400])
    (folder / "bomb.png").write_bytes(png_claiming(20000, 20000))
    return root / "src"


def test_skipped_reasons_are_helpful_and_files_identical_across_runs_and_workers(tmp_path):
    from fastssl_loader.sources.imagefolder import list_samples
    samples, _ = list_samples(_folder_with_bad_files(tmp_path))
    outputs = []
    for run, workers in enumerate([0, 0, 2]):
        report = write_dataset(tmp_path / f"{run}.fssl", samples, on_error="skip", num_workers=workers,
                               progress=False)
        outputs.append((tmp_path / f"{run}.fssl").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    reasons = {Path(samples[i][0]).name: reason.split(": ", 1)[1] for i, reason in report.skipped}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["text.png"] == "not an image (starts with b'this is not a pi', 21 bytes)"
    assert reasons["cut.jpg"].startswith("truncated JPEG (400 bytes")
    assert "decompression bomb" in reasons["bomb.png"]  # Pillow's limit (on here) or ours, whichever is lower


class _GatedSamples:
    """Samples that wait at a barrier on their second item, so two conversions surely overlap in time."""

    def __init__(self, label: int, barrier: threading.Barrier) -> None:
        self.label, self.barrier = label, barrier

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int):
        if i == 1:
            self.barrier.wait(timeout=60)  # never a hang: a broken barrier raises
        return natural_image(16 + self.label, 20, seed=self.label * 10 + i), self.label


def test_two_conversions_in_threads_keep_their_own_samples(tmp_path):
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def convert(label: int) -> None:
        try:
            write_dataset(tmp_path / f"{label}.fssl", _GatedSamples(label, barrier), mode="raw", num_workers=0,
                          progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=convert, args=(label,)) for label in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for label in (1, 2):
        r = DatasetReader(tmp_path / f"{label}.fssl")
        expected = _GatedSamples(label, threading.Barrier(1))
        assert list(r.labels) == [label] * 6
        for i in range(6):
            np.testing.assert_array_equal(r.image(i), expected[i][0])


class UserError(Exception):
    pass


class FailingSamples:
    """A dataset whose __getitem__ fails on sample 2 (module level: worker processes unpickle it)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        if i == 2:
            raise UserError(f"cannot load item {i}")
        return natural_image(8, 8), 0


@pytest.mark.parametrize("workers", [0, 2])
def test_user_getitem_errors_keep_type_and_traceback(tmp_path, workers):
    with pytest.raises(UserError, match="cannot load item 2") as info:
        write_dataset(tmp_path / "d.fssl", FailingSamples(), num_workers=workers, progress=False)
    if workers == 0:
        assert any(entry.name == "__getitem__" for entry in info.traceback)
    else:  # the pool gives the worker's traceback as the cause
        assert "__getitem__" in str(info.value.__cause__)
    if sys.version_info >= (3, 11):
        assert "samples[2]" in "".join(info.value.__notes__)
    assert not (tmp_path / "d.fssl").exists()
    report = write_dataset(tmp_path / "d.fssl", FailingSamples(), num_workers=workers, on_error="skip",
                           progress=False)
    assert report.skipped == [(2, "samples[2] raised UserError: cannot load item 2")]


def test_bad_sample_errors_chain_the_cause(tmp_path):
    with pytest.raises(ValueError, match="cannot write sample 0: s.*empty file") as info:
        write_dataset(tmp_path / "d.fssl", [(b"", 0)], num_workers=0, progress=False)
    assert isinstance(info.value.__cause__, SourceImageError)


def _write(path: Path, samples: list, **options) -> Path:
    write_dataset(path, samples, mode="raw", on_error="skip", num_workers=0, progress=False, **options)
    return path


def test_shards_cover_the_source_once_in_order(tmp_path):
    samples = [(natural_image(8 + i % 5, 9, seed=i), i) for i in range(11)]
    samples[4] = (b"", 4)  # skipped: reported with its source index
    whole = DatasetReader(_write(tmp_path / "all.fssl", samples))
    labels, skipped = [], []
    for k in range(3):
        part = DatasetReader(_write(tmp_path / f"{k}.fssl", samples, shard=(k, 3)))
        assert part.schema["shard"] == {"index": k, "count": 3, "start": k * 11 // 3, "stop": (k + 1) * 11 // 3,
                                        "source_samples": 11}
        labels += list(part.labels)
        skipped += part.schema["skipped"]
        for i, label in enumerate(part.labels):
            np.testing.assert_array_equal(part.image(i), whole.image(list(whole.labels).index(label)))
    assert labels == list(whole.labels)
    assert skipped == whole.schema["skipped"] == [[4, "sample 4: empty file (0 bytes)"]]
    assert whole.schema["shard"] is None


@pytest.mark.parametrize("shard, match", [((3, 3), "0 <= k < n"), ((0, 0), "n >= 1"), ((0, 20), "is empty"),
                                          (("a", 2), "pair"), ((1,), "pair")])
def test_bad_shards(tmp_path, shard, match):
    with pytest.raises(ValueError, match=match):
        _write(tmp_path / "d.fssl", [(natural_image(8, 8), 0)] * 11, shard=shard)


def test_cli_shard_flag(tmp_path, tiny_imagefolder, capsys):
    from fastssl_loader.cli import main
    assert main(["convert", "imagefolder", str(tiny_imagefolder), str(tmp_path / "p.fssl"), "--shard", "1/4",
                 "--workers", "0", "--no-progress"]) == 0
    assert DatasetReader(tmp_path / "p.fssl").schema["shard"]["start"] == 3
    with pytest.raises(SystemExit):
        main(["convert", "imagefolder", str(tiny_imagefolder), str(tmp_path / "q.fssl"), "--shard", "1of4"])
    assert "expected K/N" in capsys.readouterr().err
