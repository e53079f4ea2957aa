"""fastssl_loader.dataset_info and ``fastssl info``: summary figures, advice, verification of every sample."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from fastssl_loader import DatasetReader, write_dataset
from fastssl_loader.commands import info as info_command
from fastssl_loader.cli import main
from fastssl_loader.dataset_info import dataset_info, format_info, verify_samples
from tests.conftest import natural_image


def test_summary_of_an_auto_dataset(auto_dataset, image_samples):
    info = dataset_info(auto_dataset)
    r = DatasetReader(auto_dataset)
    assert info.num_samples == len(image_samples) == len(r)
    assert info.storage == r.schema["image"]["storage_counts"]
    assert info.storage["raw"] == int((r.storage == 0).sum()) > 0 and info.warnings == []
    assert info.settings == {"mode": "auto", "max_resolution": None, "jpeg_quality": 90}
    assert info.num_labels == 4 and info.label_range == (0, 3)
    assert sum(info.long_side_histogram.values()) == len(r)
    assert info.long_side_histogram["<=32"] == sum(max(im.shape[:2]) <= 32 for im, _ in image_samples)
    assert info.height["max"] == max(im.shape[0] for im, _ in image_samples)
    assert info.payload_bytes["total"] == int(r.sizes.sum())
    assert info.advice == []
    text = format_info(info)
    assert f"{len(r)} samples" in text and "checksums verified" in text


def test_advice_for_big_originals_and_tiny_jpegs(tmp_path):
    big = [(natural_image(900, 1200, seed=k), 0) for k in range(3)]
    write_dataset(tmp_path / "big.fssl", big, mode="jpeg", num_workers=0, progress=False)
    [advice] = dataset_info(tmp_path / "big.fssl").advice
    assert "median stored long side is 1200 px" in advice and "--max-resolution 512" in advice
    tiny = [(natural_image(16, 16, seed=k), 0) for k in range(4)]
    write_dataset(tmp_path / "tiny.fssl", tiny, mode="jpeg", num_workers=0, progress=False)
    [advice] = dataset_info(tmp_path / "tiny.fssl").advice
    assert "--mode auto" in advice


def corrupt_copy(jpeg_dataset: Path, tmp_path: Path, bad: list[int]) -> Path:
    """A copy of the dataset with the JPEG payloads of samples ``bad`` overwritten after their SOI marker."""
    path = tmp_path / "corrupt.fssl"
    shutil.copy(jpeg_dataset, path)
    r = DatasetReader(path)
    offsets, sizes = r.offsets.copy(), r.sizes.copy()
    del r
    data = np.memmap(path, dtype=np.uint8, mode="r+")
    for i in bad:
        data[offsets[i] + 2: offsets[i] + sizes[i]] = 0
    data.flush()
    return path


def test_verify_lists_every_bad_sample(jpeg_dataset, tmp_path):
    assert verify_samples(jpeg_dataset, num_threads=2, progress=False) == []
    path = corrupt_copy(jpeg_dataset, tmp_path, [3, 17])
    bad = verify_samples(path, num_threads=2, progress=False)
    assert [i for i, _ in bad] == [3, 17] and all(reason for _, reason in bad)


def test_info_command(jpeg_dataset, tmp_path, capsys):
    assert main(["info", str(jpeg_dataset), "--verify", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "24 samples" in out and "verify: decoded all 24 samples, 0 bad" in out
    path = corrupt_copy(jpeg_dataset, tmp_path, [5])
    assert main(["info", str(path), "--verify", "--json", "--no-progress"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["num_samples"] == 24 and [b["index"] for b in doc["verify"]["bad"]] == [5]
    assert doc["storage"] == {"raw": 0, "jpeg": 24, "passthrough": 0}
    (tmp_path / "junk.fssl").write_bytes(b"junk" * 100)
    assert main(["info", str(tmp_path / "junk.fssl")]) == 2
    assert "junk.fssl" in capsys.readouterr().err


def test_info_on_real_photos(imagenet_sample_dir, tmp_path):
    from fastssl_loader.sources.imagefolder import convert_imagefolder
    convert_imagefolder(imagenet_sample_dir, tmp_path / "in.fssl", flat=True, mode="passthrough", num_workers=0,
                        progress=False)
    info = dataset_info(tmp_path / "in.fssl")
    assert info.storage["passthrough"] + info.storage["jpeg"] == info.num_samples == 1000
    assert info.num_labels == len(info.class_names) and info.jpeg_bytes_per_pixel > 0.1


def test_info_and_verify_of_a_manifest(jpeg_dataset, tmp_path, capsys):
    """A .fsslm manifest is summarised as one dataset: samples, bytes, storage and skipped summed over its files,
    a warning when they were written with different settings; --verify gives whole-dataset indices and says
    which file a bad sample is in."""
    from fastssl_loader.multi_reader import write_manifest
    source = [(natural_image(40 + k, 50, seed=k), k % 3) for k in range(10)]
    parts = [tmp_path / "part0.fssl", tmp_path / "part1.fssl"]
    write_dataset(parts[0], source, shard=(0, 2), mode="jpeg", jpeg_quality=90, num_workers=0, progress=False)
    write_dataset(parts[1], source, shard=(1, 2), mode="jpeg", jpeg_quality=80, num_workers=0, progress=False)
    write_manifest(tmp_path / "all.fsslm", parts)
    info = dataset_info(tmp_path / "all.fsslm")
    assert info.num_samples == 10 and info.files == [str(p) for p in parts]
    assert info.file_bytes == sum(p.stat().st_size for p in parts)
    assert info.storage == {"raw": 0, "jpeg": 10, "passthrough": 0} and info.label_range == (0, 2)
    assert len(info.warnings) == 1 and "different settings" in info.warnings[0] and "part1.fssl" in info.warnings[0]
    assert "10 samples" in format_info(info) and "in 2 files" in format_info(info)
    corrupt = corrupt_copy(parts[1], tmp_path, [2])
    write_manifest(tmp_path / "bad.fsslm", [parts[0], corrupt])
    assert main(["info", str(tmp_path / "bad.fsslm"), "--verify", "--json", "--no-progress"]) == 1
    [bad] = json.loads(capsys.readouterr().out)["verify"]["bad"]
    assert bad["index"] == 5 + 2 and "corrupt.fssl (sample 2 of that file)" in bad["reason"]
