"""fastssl_loader.sources: the label rule, WebDataset shards and list files (Hugging Face: test_source_huggingface).

Each source is checked end to end through write_dataset: sample order, labels and class names, JPEG bytes
passed through untouched, pixels, per-sample errors under on_error raise/skip, and worker processes.
"""
from __future__ import annotations

import io
import json
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fastssl_loader import DatasetReader
from fastssl_loader.images import to_rgb
from fastssl_loader.sources.labels import encode_labels
from fastssl_loader.sources.listfile import convert_listfile, listfile_samples
from fastssl_loader.sources.webdataset import convert_webdataset, expand_shards, webdataset_samples
from tests.source_data import convert, jpeg_files, png_bytes  # noqa: F401 - jpeg_files is a fixture


def test_label_rule():
    assert encode_labels([3, "1", " -2 ", None]) == ([3, 1, -2, None], None)
    assert encode_labels(["dog", "cat", None, "dog"]) == ([1, 0, None, 1], ["cat", "dog"])
    assert encode_labels(["3", "cat"]) == ([0, 1], ["3", "cat"])  # a mix is all names, sorted as text


# ---- list files --------------------------------------------------------------------------------------------

def write_images(folder: Path, jpeg_files) -> list[str]:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for name, data in jpeg_files:
        (folder / "img" / name).write_bytes(data)
    return [f"img/{name}" for name, _ in jpeg_files]


def test_listfile_csv_with_header_and_int_labels(tmp_path, jpeg_files):
    paths = write_images(tmp_path, jpeg_files)
    lines = ["path,label", "# a comment", ""] + [f"{p},{i % 3}" for i, p in enumerate(paths)]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    samples, classes = listfile_samples(tmp_path / "list.csv")
    assert classes is None and len(samples) == len(paths)
    assert [samples[i] for i in range(len(samples))] == [(str(tmp_path / p), i % 3) for i, p in enumerate(paths)]
    report = convert_listfile(tmp_path / "list.csv", tmp_path / "l.fssl", mode="passthrough", num_workers=0,
                              progress=False)
    r = DatasetReader(tmp_path / "l.fssl")
    assert report.written == len(paths) and list(r.labels) == [i % 3 for i in range(len(paths))]
    assert [r.encoded(i) for i in range(len(r))] == [data for _, data in jpeg_files]
    assert r.schema["description"] == {"source": "listfile", "list": "list.csv", "classes": None}


def test_listfile_tsv_class_names_without_header(tmp_path, jpeg_files):
    paths = write_images(tmp_path, jpeg_files)
    names = [name.split("_")[0] for name, _ in jpeg_files]
    (tmp_path / "list.tsv").write_text("".join(f"{p}\t{n}\n" for p, n in zip(paths, names)))
    samples, classes = listfile_samples(tmp_path / "list.tsv")
    assert classes == sorted(set(names)) and len(samples) == len(paths)
    assert list(samples.labels) == [classes.index(n) for n in names]


def test_listfile_bad_rows_name_the_line(tmp_path, jpeg_files):
    paths = write_images(tmp_path, jpeg_files[:3])
    (tmp_path / "list.csv").write_text(f"{paths[0]},0\n{paths[1]}\n{paths[2]},1\nmissing.jpg,1\n")
    samples, _ = listfile_samples(tmp_path / "list.csv")
    with pytest.raises(ValueError, match=r"list.csv line 2: no label"):
        samples[1]
    with pytest.raises(ValueError, match=r"list.csv line 2: no label") as info:  # the source's own error
        convert(samples, tmp_path / "a.fssl")
    assert "samples[1]" in "".join(getattr(info.value, "__notes__", [])) or sys.version_info < (3, 11)
    report, path = convert(samples, tmp_path / "b.fssl", on_error="skip")
    assert [i for i, _ in report.skipped] == [1, 3] and "missing.jpg" in report.skipped[1][1]
    assert list(DatasetReader(path).labels) == [0, 1]
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match="no sample rows"):
        listfile_samples(tmp_path / "empty.csv")
    with pytest.raises(FileNotFoundError):
        listfile_samples(tmp_path / "nope.csv")


# ---- WebDataset ----------------------------------------------------------------------------------------

def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, jpeg_files, per_shard: int = 3, labels=None, missing_label: int | None = None,
                 use_json: bool = False) -> list[tuple[str, bytes, object]]:
    """Shards folder/shard-00000{0..}.tar; returns (key, image bytes, label) per sample in order."""
    expected = []
    items = [(f"s{k:03d}", data, ext) for k, ((_, data), ext) in
             enumerate(zip(jpeg_files, ["jpg", "jpeg"] * len(jpeg_files)))] + [("s_png", png_bytes(1), "png")]
    for shard in range(0, len(items), per_shard):
        with tarfile.open(folder / f"shard-{shard // per_shard:06d}.tar", "w") as tar:
            for k, (key, data, ext) in enumerate(items[shard:shard + per_shard], start=shard):
                label = labels[k] if labels else k % 2
                add_member(tar, f"{key}.{ext}", data)
                if k != missing_label:
                    if use_json:
                        add_member(tar, f"{key}.json", json.dumps({"y": label, "caption": "x"}).encode())
                    else:
                        add_member(tar, f"{key}.cls", f"{label}\n".encode())
                add_member(tar, f"{key}.txt", b"a caption")
                expected.append((key, data, label))
    return expected


def test_webdataset_reads_shards_in_place(tmp_path, jpeg_files):
    expected = write_shards(tmp_path, jpeg_files)
    n_shards = len(list(tmp_path.glob("shard-*.tar")))
    pattern = str(tmp_path / f"shard-{{000000..{n_shards - 1:06d}}}.tar")
    assert expand_shards(pattern) == sorted(str(p) for p in tmp_path.glob("shard-*.tar"))
    samples, classes = webdataset_samples(pattern)
    assert classes is None and samples.keys == [key for key, _, _ in expected]
    assert [samples[i] for i in range(len(samples))] == [(data, label) for _, data, label in expected]
    clone = pickle.loads(pickle.dumps(samples))
    assert clone[2] == samples[2]
    report = convert_webdataset(pattern, tmp_path / "w.fssl", mode="auto", num_workers=2, progress=False)
    r = DatasetReader(tmp_path / "w.fssl")
    assert report.written == len(expected) and list(r.labels) == [label for _, _, label in expected]
    for i, (_, data, _) in enumerate(expected[:-1]):
        assert r.encoded(i) == data  # JPEG bytes passed through untouched
    np.testing.assert_array_equal(r.image(len(r) - 1), to_rgb(expected[-1][1]))
    assert r.schema["description"]["shards"][0] == "shard-000000.tar"


def test_webdataset_json_label_with_class_names(tmp_path, jpeg_files):
    names = ["zebra", "ant", "zebra", "moth", "ant", "ant", "moth"]
    write_shards(tmp_path, jpeg_files, labels=names, use_json=True)
    samples, classes = webdataset_samples(sorted(tmp_path.glob("shard-*.tar")), json_label="y")
    assert classes == ["ant", "moth", "zebra"]
    assert list(samples.labels) == [classes.index(n) for n in names[:len(samples)]]
    with pytest.raises(ValueError, match=r"shard-000000.tar: sample 's000'.*no key 'label'"):
        webdataset_samples(tmp_path / "shard-000000.tar", json_label="label")[0][0]


def test_webdataset_missing_label_raise_or_skip(tmp_path, jpeg_files):
    expected = write_shards(tmp_path, jpeg_files, missing_label=4)
    samples, _ = webdataset_samples(str(tmp_path / "shard-{000000..000002}.tar"))
    with pytest.raises(ValueError, match=r"shard-000001.tar: sample 's004': no label \(no .cls member\)"):
        convert(samples, tmp_path / "a.fssl")
    assert not (tmp_path / "a.fssl").exists()
    report, path = convert(samples, tmp_path / "b.fssl", on_error="skip")
    assert [i for i, _ in report.skipped] == [4] and "s004" in report.skipped[0][1]
    assert len(DatasetReader(path)) == len(expected) - 1


def test_webdataset_unlabelled_shards(tmp_path, jpeg_files):
    """labels=False (``--no-labels``): shards without label members convert whole, every label -1."""
    from fastssl_loader.cli import main
    with tarfile.open(tmp_path / "plain-0.tar", "w") as tar:
        for k, (_, data) in enumerate(jpeg_files):
            add_member(tar, f"img{k:03d}.jpg", data)
    with pytest.raises(ValueError, match=r"sample 'img000': no label \(no .cls member\)"):
        convert_webdataset(tmp_path / "plain-0.tar", tmp_path / "labelled.fssl", num_workers=0, progress=False)
    samples, classes = webdataset_samples(tmp_path / "plain-0.tar", labels=False)
    assert classes is None and [samples[i] for i in range(len(samples))] == [(d, -1) for _, d in jpeg_files]
    assert main(["convert", "webdataset", str(tmp_path / "plain-0.tar"), str(tmp_path / "u.fssl"), "--no-labels",
                 "--workers", "0", "--no-progress"]) == 0
    r = DatasetReader(tmp_path / "u.fssl")
    assert list(r.labels) == [-1] * len(jpeg_files)
    assert [r.encoded(i) for i in range(len(r))] == [d for _, d in jpeg_files]
    with pytest.raises(ValueError, match="labels=False"):
        webdataset_samples(tmp_path / "plain-0.tar", labels=False, json_label="y")


def test_webdataset_bad_shards(tmp_path, jpeg_files):
    with pytest.raises(FileNotFoundError, match="shard-000009.tar"):
        webdataset_samples(str(tmp_path / "shard-000009.tar"))
    (tmp_path / "bad.tar").write_bytes(b"not a tar file" * 100)
    with pytest.raises(ValueError, match="bad.tar"):
        webdataset_samples(tmp_path / "bad.tar")
    with tarfile.open(tmp_path / "zipped.tar.gz", "w:gz") as tar:
        add_member(tar, "a.jpg", jpeg_files[0][1])
    with pytest.raises(ValueError, match="decompress"):
        webdataset_samples(tmp_path / "zipped.tar.gz")
    with tarfile.open(tmp_path / "noimage.tar", "w") as tar:
        add_member(tar, "a.cls", b"1")
        add_member(tar, "b.jpg", jpeg_files[0][1])
        add_member(tar, "b.cls", b"2")
    samples, _ = webdataset_samples(tmp_path / "noimage.tar")
    with pytest.raises(ValueError, match=r"noimage.tar: sample 'a': no image member"):
        samples[0]
    assert samples[1] == (jpeg_files[0][1], 2)


def test_undecodable_member_is_named_by_shard_and_key(tmp_path, jpeg_files):
    """An image member that is not a readable image is named by shard and key in the error and in the skip
    reason (the writer asks the samples where sample i comes from)."""
    with tarfile.open(tmp_path / "mixed-0.tar", "w") as tar:
        add_member(tar, "good.jpg", jpeg_files[0][1])
        add_member(tar, "good.cls", b"0")
        add_member(tar, "broken.jpg", jpeg_files[1][1][:40])  # a JPEG cut after its first bytes
        add_member(tar, "broken.cls", b"1")
    with pytest.raises(ValueError, match=r"cannot write sample 1: .*mixed-0.tar: sample 'broken': truncated JPEG"):
        convert_webdataset(tmp_path / "mixed-0.tar", tmp_path / "a.fssl", num_workers=0, progress=False)
    report = convert_webdataset(tmp_path / "mixed-0.tar", tmp_path / "b.fssl", on_error="skip", num_workers=0,
                                progress=False)
    [(index, reason)] = report.skipped
    assert index == 1 and "mixed-0.tar: sample 'broken'" in reason and report.written == 1


def test_source_speed_layouts_hold_the_same_samples(tmp_path, jpeg_files):
    """benches/source_speed compares sources on equal terms: every layout yields the folder's bytes and labels."""
    from benches.source_speed import build_layouts
    paths = write_images(tmp_path, jpeg_files)
    images = [(str(tmp_path / p), i % 2) for i, p in enumerate(paths)]
    layouts = build_layouts(images, tmp_path)
    expected = [(Path(p).read_bytes(), label) for p, label in images]
    assert {"list file", "webdataset"} <= layouts.keys()
    for name, make in layouts.items():
        samples = make()
        got = [samples[i] for i in range(len(samples))]
        got = [(Path(image).read_bytes() if isinstance(image, str) else image, label) for image, label in got]
        assert got == expected, name


def test_convert_command_reads_every_new_source(tmp_path, jpeg_files):
    """``fastssl convert webdataset|listfile`` give the same files as the library calls."""
    from fastssl_loader.cli import main

    expected = write_shards(tmp_path, jpeg_files)
    shards = sorted(str(p) for p in tmp_path.glob("shard-*.tar"))
    assert main(["convert", "webdataset", *shards, str(tmp_path / "cli.fssl"), "--workers", "0", "--no-progress"]) == 0
    convert_webdataset(shards, tmp_path / "lib.fssl", num_workers=0, progress=False)
    assert (tmp_path / "cli.fssl").read_bytes() == (tmp_path / "lib.fssl").read_bytes()
    assert len(DatasetReader(tmp_path / "cli.fssl")) == len(expected)

    names = write_images(tmp_path / "imgs", jpeg_files)
    (tmp_path / "imgs" / "list.csv").write_text("".join(f"{name},{k % 3}\n" for k, name in enumerate(names)))
    assert main(["convert", "listfile", str(tmp_path / "imgs" / "list.csv"), str(tmp_path / "list.fssl"),
                 "--no-header", "--workers", "0", "--no-progress"]) == 0
    assert list(DatasetReader(tmp_path / "list.fssl").labels) == [k % 3 for k in range(len(names))]
