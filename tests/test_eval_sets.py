"""Evaluation helpers moved out of train_ref.py: fixed subsets, shifted eval copies, kNN + probe evaluation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastssl_loader import ssl_eval
from fastssl_loader.eval_sets import (ReaderImages, folder_samples, make_shifted_sets, num_classes_of, source_items,
                                      subset_indices)


def test_subsets_are_fixed_sorted_and_checked():
    a = subset_indices(100, 10)
    assert len(a) == 10 and np.all(np.diff(a) > 0) and np.array_equal(a, subset_indices(100, 10))
    assert np.array_equal(subset_indices(5, None), np.arange(5)) and np.array_equal(subset_indices(5, 9), np.arange(5))
    with pytest.raises(ValueError, match=">= 1"):
        subset_indices(5, 0)


def test_items_of_a_folder_and_of_a_converted_file(tiny_imagefolder: Path, tmp_path: Path):
    from fastssl_loader import write_dataset

    items = source_items(tiny_imagefolder, 5)
    assert len(items) == 5 and all(Path(p).is_file() and 0 <= y < 3 for p, y in items)
    assert num_classes_of(tiny_imagefolder) == 3
    path = tmp_path / "sub.fssl"
    write_dataset(path, items, mode="raw", num_workers=0, progress=False)
    reader_items = source_items(path, 3)
    assert isinstance(reader_items, ReaderImages) and len(reader_items) == 3
    img, label = reader_items[0]
    assert img.dtype == np.uint8 and img.ndim == 3 and 0 <= label < 3
    assert num_classes_of(path) == max(y for _, y in items) + 1


def test_shifted_sets_keep_names_and_classes(tiny_imagefolder: Path, tmp_path: Path):
    named = make_shifted_sets(tiny_imagefolder, ["gray", "blur", "jpeg"], tmp_path, build=False)
    assert not any(p.exists() for p in named)  # build=False only names them
    gray, blur, jpeg = make_shifted_sets(tiny_imagefolder, ["gray", "blur", "jpeg"], tmp_path)
    samples, classes = folder_samples(tiny_imagefolder)
    originals = sorted(f"{classes[y]}/{Path(p).stem}" for p, y in samples)  # class folder / file name
    for copy in (gray, blur, jpeg):
        files = sorted(p.relative_to(copy).with_suffix("").as_posix() for p in copy.rglob("*") if p.is_file())
        assert files == originals
    g = np.asarray(Image.open(next(gray.rglob("*.png"))))
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    assert all(p.suffix == ".jpg" for p in jpeg.rglob("*") if p.is_file())
    with pytest.raises(ValueError, match="unknown shift"):
        make_shifted_sets(tiny_imagefolder, ["noise"], tmp_path)
    with pytest.raises(ValueError, match="ImageFolder"):
        make_shifted_sets(tmp_path / "x.fssl", ["gray"], tmp_path)


def test_evaluate_scores_a_separable_feature_space():
    """Identity backbone on class-coloured points: kNN is exact; a probe that copies the features is too."""
    torch.manual_seed(0)
    centres = torch.eye(3) * 5

    def batches(n: int) -> list:
        labels = torch.arange(n) % 3
        x = centres[labels] + 0.1 * torch.randn(n, 3)
        return [([x[i:i + 4]], labels[i:i + 4]) for i in range(0, n, 4)]

    probe = torch.nn.Linear(3, 3)
    with torch.no_grad():
        probe.weight.copy_(torch.eye(3))
        probe.bias.zero_()
    results = ssl_eval.evaluate(torch.nn.Identity(), probe, batches(30), {"a": batches(12), "b": batches(8)}, 3,
                                k=5, temperature=0.1)
    for name in ("a", "b"):
        assert results[f"{name}/knn_top1"] == 100.0 and results[f"{name}/probe_top1"] == 100.0
    with torch.no_grad():
        probe.weight.copy_(torch.eye(3).roll(1, dims=0))  # predicts the wrong class every time
    wrong = ssl_eval.evaluate(torch.nn.Identity(), probe, batches(30), {"a": batches(12)}, 3, k=5)
    assert wrong["a/probe_top1"] == 0.0 and wrong["probe_top1"] == 0.0 and wrong["knn_top1"] == 100.0
    assert set(results) >= {"knn_top1", "knn_top5", "probe_top1", "probe_top5"}
