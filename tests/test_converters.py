"""converters/: ImageFolder labels equal torchvision's, CIFAR pickles, NumPy arrays, the command line."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converters.__main__ import main
from fastssl_loader.sources.cifar import convert_cifar, load_cifar
from fastssl_loader.sources.imagefolder import convert_imagefolder, list_flat_samples, list_samples
from fastssl_loader.sources.numpy_arrays import convert_numpy
from fastssl_loader import DatasetReader
from fastssl_loader.images import plain_jpeg_shape

REPO = Path(__file__).resolve().parent.parent


def torchvision_samples(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    from torchvision.datasets import ImageFolder
    folder = ImageFolder(str(root))
    return folder.samples, folder.classes


def test_imagefolder_order_equals_torchvision(tiny_imagefolder):
    samples, classes = list_samples(tiny_imagefolder)
    expected_samples, expected_classes = torchvision_samples(tiny_imagefolder)
    assert classes == expected_classes == ["Dog", "bird", "cat"]
    assert samples == expected_samples
    assert not any(path.endswith(".txt") for path, _ in samples)


def test_imagefolder_conversion(tiny_imagefolder, tmp_path):
    report = convert_imagefolder(tiny_imagefolder, tmp_path / "f.fssl", mode="passthrough", num_workers=0,
                                 progress=False)
    r = DatasetReader(tmp_path / "f.fssl")
    expected, classes = torchvision_samples(tiny_imagefolder)
    np.testing.assert_array_equal(r.labels, [label for _, label in expected])
    assert r.schema["description"]["classes"] == classes and report.written == len(expected)
    for i, (path, _) in enumerate(expected):
        if path.lower().endswith((".jpg", ".jpeg")):
            assert r.encoded(i) == Path(path).read_bytes()
        else:
            assert r.image(i).shape == np.asarray(Image.open(path)).shape


def test_imagefolder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_samples(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        list_samples(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(FileNotFoundError, match="empty_class"):
        list_samples(tmp_path)


def test_cifar10_test_folder_labels_equal_torchvision(cifar10_dir, tmp_path):
    root = cifar10_dir / "test"
    samples, classes = list_samples(root)
    expected, expected_classes = torchvision_samples(root)
    assert samples == expected and classes == expected_classes and len(samples) == 10_000
    subset = samples[::50]  # 200 files, every class
    from fastssl_loader import write_dataset
    write_dataset(tmp_path / "c.fssl", subset, mode="auto", num_workers=0, progress=False)
    r = DatasetReader(tmp_path / "c.fssl")
    assert (r.storage == 0).all()  # 32 x 32: raw under auto
    np.testing.assert_array_equal(r.labels, [label for _, label in subset])
    for i in (0, 57, 199):
        np.testing.assert_array_equal(r.image(i), np.asarray(Image.open(subset[i][0]).convert("RGB")))


def test_imagenet_sample_flat_passthrough(imagenet_sample_dir, tmp_path):
    samples, classes = list_flat_samples(imagenet_sample_dir)
    assert len(samples) == len(classes) == 1000 and classes == sorted(classes)
    subset = samples[:: 100]
    from fastssl_loader import write_dataset
    write_dataset(tmp_path / "i.fssl", subset, mode="passthrough", num_workers=0, progress=False)
    r = DatasetReader(tmp_path / "i.fssl")
    for i, (path, label) in enumerate(subset):
        assert r.labels[i] == label
        if plain_jpeg_shape(Path(path).read_bytes()) is not None:  # plain JPEGs are stored untouched, others re-encoded
            assert r.encoded(i) == Path(path).read_bytes()
    assert r.schema["image"]["storage_counts"]["passthrough"] >= 1


def _write_cifar10(root: Path, per_batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images, labels = [], []
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, per_batch).tolist()
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": y, b"data": data,
                         b"filenames": [b"x.png"] * per_batch}, f)
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def test_cifar10_pickles(tmp_path):
    images, labels = _write_cifar10(tmp_path, per_batch=4)
    report = convert_cifar(tmp_path, tmp_path / "train.fssl", split="train", mode="raw", num_workers=0,
                           progress=False)
    assert report.written == 20
    r = DatasetReader(tmp_path / "train.fssl")
    np.testing.assert_array_equal(r.labels, labels[:20])
    for i in (0, 7, 19):
        np.testing.assert_array_equal(r.image(i), images[i])
    test_images, test_labels = load_cifar(tmp_path, "test")
    np.testing.assert_array_equal(test_images, images[20:])
    np.testing.assert_array_equal(test_labels, labels[20:])


def test_cifar100_fine_and_coarse(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, (3, 3072), dtype=np.uint8)
    for name in ("train", "test"):
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": [5, 99, 0], b"coarse_labels": [1, 19, 0]}, f)
    assert load_cifar(tmp_path, "train", "fine")[1].tolist() == [5, 99, 0]
    assert load_cifar(tmp_path, "test", "coarse")[1].tolist() == [1, 19, 0]


def test_cifar_refuses_code_and_bad_arguments(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(ValueError, match="refusing to load"):
        load_cifar(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_cifar(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="no CIFAR"):
        load_cifar(tmp_path / "missing")


def test_numpy_npy_and_npz(tmp_path, make_image):
    images = np.stack([make_image(10, 12, seed=i) for i in range(6)])
    labels = np.arange(6) % 2
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", labels)
    np.savez(tmp_path / "d.npz", images=images[..., 0], labels=labels)
    convert_numpy(tmp_path / "x.npy", tmp_path / "a.fssl", labels=tmp_path / "y.npy", mode="raw",
                  num_workers=0, progress=False)
    convert_numpy(tmp_path / "d.npz", tmp_path / "b.fssl", mode="raw", num_workers=0, progress=False)
    a, b = DatasetReader(tmp_path / "a.fssl"), DatasetReader(tmp_path / "b.fssl")
    np.testing.assert_array_equal(a.labels, labels)
    np.testing.assert_array_equal(a.image(3), images[3])
    np.testing.assert_array_equal(b.image(3)[..., 2], images[3, ..., 0])


def test_numpy_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4, 3), np.uint8))
    np.save(tmp_path / "y.npy", np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="labels must be 3 integers"):
        convert_numpy(tmp_path / "x.npy", tmp_path / "a.fssl", labels=tmp_path / "y.npy", progress=False)
    with pytest.raises(ValueError, match="need a labels"):
        convert_numpy(tmp_path / "x.npy", tmp_path / "a.fssl", progress=False)
    np.savez(tmp_path / "d.npz", pixels=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="missing keys"):
        convert_numpy(tmp_path / "d.npz", tmp_path / "a.fssl", progress=False)
    assert not (tmp_path / "a.fssl").exists()


def test_cli_main(tiny_imagefolder, tmp_path, capsys):
    dst = tmp_path / "cli.fssl"
    assert main(["imagefolder", str(tiny_imagefolder), str(dst), "--mode", "jpeg", "--max-resolution", "16",
                 "--jpeg-quality", "80", "--workers", "0", "--no-progress"]) == 0
    r = DatasetReader(dst)
    assert r.schema["image"]["jpeg_quality"] == 80 and r.heights.max() <= 16 and r.widths.max() <= 16
    assert "wrote 12 samples" in capsys.readouterr().out
    assert main(["imagefolder", str(tmp_path / "nope"), str(dst)]) == 2
    assert "nope" in capsys.readouterr().err


def test_cli_skip_reports_bad_file(tiny_imagefolder, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    buf = io.BytesIO()
    Image.new("RGB", (9, 9)).save(buf, "PNG")
    (src / "a" / "ok.png").write_bytes(buf.getvalue())
    assert main(["imagefolder", str(src), str(tmp_path / "d.fssl"), "--on-error", "skip", "--workers", "0",
                 "--no-progress"]) == 0
    assert "bad.jpg" in capsys.readouterr().out and len(DatasetReader(tmp_path / "d.fssl")) == 1


def test_cli_help_documents_every_option():
    for kind, options in {"imagefolder": ["--flat"], "cifar": ["--split", "--label"], "numpy": ["--labels"]}.items():
        out = subprocess.run([sys.executable, "-m", "converters", kind, "--help"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
        for option in options + ["--mode", "--max-resolution", "--max-pixels", "--jpeg-quality", "--workers",
                                 "--on-error", "--shard"]:
            assert option in out, (kind, option)
