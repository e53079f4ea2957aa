"""fastssl_loader.sources.huggingface: save_to_disk folders (made with the real datasets library) and Parquet.

Checked end to end through write_dataset: order, ClassLabel and text labels, JPEG bytes passed through
untouched, pixel arrays, null labels/images under on_error raise/skip, worker processes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastssl_loader import DatasetReader
from tests.conftest import natural_image
from tests.source_data import convert, jpeg_files, png_bytes  # noqa: F401 - jpeg_files is a fixture

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from fastssl_loader.sources.huggingface import convert_huggingface, huggingface_samples  # noqa: E402


def image_structs(jpeg_files) -> list[dict]:
    return [{"bytes": data, "path": name} for name, data in jpeg_files] + [{"bytes": png_bytes(2), "path": "p.png"}]


def test_huggingface_save_to_disk_with_datasets_library(tmp_path, jpeg_files):
    datasets = pytest.importorskip("datasets")
    images = image_structs(jpeg_files)
    labels = [i % 3 for i in range(len(images))]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["b", "a", "c"])})
    dataset = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    dataset.save_to_disk(str(tmp_path / "saved"))
    samples, classes = huggingface_samples(tmp_path / "saved")
    assert classes == ["b", "a", "c"] and len(samples) == len(images)  # ClassLabel order, not sorted
    assert [samples[i] for i in range(len(samples))] == [(im["bytes"], y) for im, y in zip(images, labels)]
    report = convert_huggingface(tmp_path / "saved", tmp_path / "h.fssl", mode="auto", num_workers=0,
                                 progress=False)
    r = DatasetReader(tmp_path / "h.fssl")
    assert report.storage_counts["passthrough"] == len(jpeg_files) and list(r.labels) == labels
    assert [r.encoded(i) for i in range(len(jpeg_files))] == [data for _, data in jpeg_files]
    assert r.schema["description"]["classes"] == ["b", "a", "c"]

    datasets.DatasetDict({"train": dataset, "test": dataset.select([0, 1])}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(ValueError, match=r"splits \['train', 'test'\]"):
        huggingface_samples(tmp_path / "dict")
    assert len(huggingface_samples(tmp_path / "dict", split="test")[0]) == 2


def test_huggingface_unlabelled_dataset(tmp_path, jpeg_files):
    """An image column only (made with the real datasets library, and as Parquet): label_column=None /
    ``--no-labels`` converts every row with label -1; asking for the default label column names what is missing."""
    datasets = pytest.importorskip("datasets")
    from fastssl_loader.cli import main
    images = image_structs(jpeg_files)
    datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()})
                               ).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match=r"no column 'label'"):
        huggingface_samples(tmp_path / "saved")
    samples, classes = huggingface_samples(tmp_path / "saved", label_column=None)
    assert classes is None and [samples[i] for i in range(len(samples))] == [(im["bytes"], -1) for im in images]
    assert main(["convert", "huggingface", str(tmp_path / "saved"), str(tmp_path / "u.fssl"), "--no-labels",
                 "--mode", "auto", "--workers", "0", "--no-progress"]) == 0
    r = DatasetReader(tmp_path / "u.fssl")
    assert list(r.labels) == [-1] * len(images)
    assert [r.encoded(i) for i in range(len(jpeg_files))] == [data for _, data in jpeg_files]
    pq.write_table(pa.table({"image": images}), tmp_path / "only-images.parquet", row_group_size=2)
    report = convert_huggingface(tmp_path / "only-images.parquet", tmp_path / "p.fssl", label_column=None,
                                 num_workers=0, progress=False)
    assert report.written == len(images) and list(DatasetReader(tmp_path / "p.fssl").labels) == [-1] * len(images)


def test_huggingface_decoded_pixel_arrays(tmp_path):
    datasets = pytest.importorskip("datasets")
    arrays = [natural_image(12, 10, seed=k) for k in range(3)]
    features = datasets.Features({"img": datasets.Array3D((12, 10, 3), "uint8"), "y": datasets.Value("int64")})
    datasets.Dataset.from_dict({"img": arrays, "y": [5, 6, 7]}, features=features).save_to_disk(str(tmp_path / "a"))
    samples, classes = huggingface_samples(tmp_path / "a", "img", "y")
    assert classes is None
    _, path = convert(samples, tmp_path / "a.fssl", mode="raw")
    r = DatasetReader(path)
    assert list(r.labels) == [5, 6, 7]
    for i, array in enumerate(arrays):
        np.testing.assert_array_equal(r.image(i), array)


def write_parquet(folder: Path, jpeg_files, names: list[str | None]) -> list[str]:
    """Two files train-0000{0,1}-of-00002.parquet with row groups of 2 rows; image structs, text labels."""
    images = image_structs(jpeg_files)
    half = len(images) // 2
    files = []
    for k, (lo, hi) in enumerate([(0, half), (half, len(images))]):
        table = pa.table({"image": images[lo:hi], "name": names[lo:hi]})
        files.append(str(folder / f"train-{k:05d}-of-00002.parquet"))
        pq.write_table(table, files[-1], row_group_size=2)
    pq.write_table(pa.table({"image": images[:1], "name": ["x"]}), folder / "test-00000-of-00001.parquet")
    return files


def test_huggingface_parquet_written_by_pyarrow(tmp_path, jpeg_files):
    names = ["dog", "cat", "emu", "cat", "dog", "emu", "cat"][:len(jpeg_files) + 1]
    write_parquet(tmp_path, jpeg_files, names)
    samples, classes = huggingface_samples(tmp_path, "image", "name", split="train")
    assert classes == ["cat", "dog", "emu"] and len(samples) == len(names)
    assert list(samples.labels) == [classes.index(n) for n in names]
    assert len(samples.parts) > 2  # several row groups in two files
    report = convert_huggingface(tmp_path, tmp_path / "p.fssl", image_column="image", label_column="name",
                                 split="train", mode="passthrough", num_workers=2, progress=False)
    r = DatasetReader(tmp_path / "p.fssl")
    assert report.written == len(names) and list(r.labels) == list(samples.labels)
    assert [r.encoded(i) for i in range(len(jpeg_files))] == [data for _, data in jpeg_files]
    with pytest.raises(ValueError, match=r"no column 'label'.*\['image', 'name'\]"):
        huggingface_samples(tmp_path, split="train")


def test_huggingface_null_label_and_image(tmp_path, jpeg_files):
    images = image_structs(jpeg_files[:3])
    images[2] = None
    pq.write_table(pa.table({"image": images, "label": [0, None, 1, 1]}), tmp_path / "d.parquet")
    samples, _ = huggingface_samples(tmp_path / "d.parquet")
    with pytest.raises(ValueError, match=r"d.parquet: row 1: no label"):
        convert(samples, tmp_path / "a.fssl")
    report, path = convert(samples, tmp_path / "b.fssl", on_error="skip")
    assert [i for i, _ in report.skipped] == [1, 2] and "row 2: no image" in report.skipped[1][1]
    assert list(DatasetReader(path).labels) == [0, 1]
    with pytest.raises(FileNotFoundError):
        huggingface_samples(tmp_path / "missing")


def test_huggingface_binary_and_path_columns(tmp_path, jpeg_files):
    (tmp_path / "img").mkdir()
    for name, data in jpeg_files[:2]:
        (tmp_path / "img" / name).write_bytes(data)
    table = pa.table({"jpeg": [data for _, data in jpeg_files[:2]],
                      "file": [f"img/{name}" for name, _ in jpeg_files[:2]],
                      "struct": [{"bytes": None, "path": f"img/{jpeg_files[0][0]}"},
                                 {"bytes": None, "path": "gone.jpg"}],
                      "label": [1, 0]})
    pq.write_table(table, tmp_path / "t.parquet")
    expected = [data for _, data in jpeg_files[:2]]
    samples, _ = huggingface_samples(tmp_path / "t.parquet", "jpeg")
    assert [samples[i][0] for i in range(2)] == expected
    samples, _ = huggingface_samples(tmp_path / "t.parquet", "file")
    assert [Path(samples[i][0]).read_bytes() for i in range(2)] == expected
    samples, _ = huggingface_samples(tmp_path / "t.parquet", "struct")
    assert Path(samples[0][0]).read_bytes() == expected[0]
    with pytest.raises(ValueError, match=r"t.parquet: row 1: image file .*gone.jpg does not exist"):
        samples[1]
    samples, _ = huggingface_samples(tmp_path / "t.parquet", "label", "label")
    with pytest.raises(ValueError, match="is not an image"):
        samples[0]
