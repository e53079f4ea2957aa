"""fastssl_loader.preview and ``fastssl preview``: the tiles are the Loader's views, the PNG has the grid's size."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from fastssl_loader import Loader, presets
from fastssl_loader.commands import preview as preview_command
from fastssl_loader.cli import main
from fastssl_loader.ops import IMAGENET_MEAN, IMAGENET_STD
from fastssl_loader.preview import (describe_params, preview_samples, preview_size_px, render_preview,
                                    resolve_views)

pytest.importorskip("matplotlib")

VIEWS_FILE = "from fastssl_loader import presets\nVIEWS = presets.byol(32, cifar=False)\n"


@pytest.fixture(scope="module")
def views_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "my_views.py"
    path.write_text(VIEWS_FILE)
    return path


def first_batch(path, views, n, seed, epoch, dtype):
    loader = Loader(path, batch_size=n, views=views, num_workers=2, seed=seed, epoch=epoch, drop_last=False,
                    dtype=dtype, return_indices=True, return_params=True)
    with loader:
        outputs, _, indices, params = next(iter(loader))
        return [o.clone().numpy() for o in outputs], indices.tolist(), params


def test_tiles_are_the_loaders_views(jpeg_dataset, views_file):
    views = resolve_views(str(views_file))
    assert repr(views) == repr(presets.byol(32, cifar=False))
    samples = preview_samples(jpeg_dataset, views, 5, seed=3, epoch=2)
    floats, indices, params = first_batch(jpeg_dataset, views, 5, 3, 2, torch.float32)
    uint8, _, _ = first_batch(jpeg_dataset, views, 5, 3, 2, torch.uint8)
    assert [s.index for s in samples] == indices
    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    for k, sample in enumerate(samples):
        for v, tile in enumerate(sample.tiles):
            expected = np.clip(floats[v][k] * std + mean, 0, 1).transpose(1, 2, 0)
            np.testing.assert_allclose(tile, expected, atol=1e-6)
            np.testing.assert_allclose(tile * 255, uint8[v][k].transpose(1, 2, 0), atol=0.01)
            top, left, height, width = params[v][k][:4]
            assert sample.boxes[v] == (top, left, height, width)
            assert ("flip" in sample.captions[v].split()) == bool(params[v][k][4])


def test_png_has_the_grid_size(jpeg_dataset, views_file, tmp_path):
    samples = preview_samples(jpeg_dataset, resolve_views(str(views_file)), 3, seed=0, epoch=0)
    size = render_preview(samples, tmp_path / "v.png", class_names=["a", "b", "c", "d"])
    with Image.open(tmp_path / "v.png") as png:
        png.load()
        assert png.format == "PNG" and png.size == size == preview_size_px(3, 2)
        assert np.asarray(png.convert("L")).std() > 10  # images were drawn, not a blank canvas
    assert render_preview(samples, tmp_path / "w.png", tile_px=130) == preview_size_px(3, 2, 130)
    with Image.open(tmp_path / "w.png") as png:
        assert png.size == preview_size_px(3, 2, 130)
    with pytest.raises(ValueError, match="tile_px"):
        render_preview(samples, tmp_path / "x.png", tile_px=50)


def test_describe_params():
    names = ["top", "left", "height", "width", "flip", "jitter", "brightness", "contrast", "saturation", "hue",
             "jitter_order0", "jitter_order1", "jitter_order2", "jitter_order3", "gray", "blur", "blur_sigma",
             "solarize"]
    row = np.array([3, 4, 20, 30, 1, 1, 1.1, 0.9, 1.2, -0.05, 3, 1, 0, 2, 0, 1, 1.5, 1], dtype=np.float64)
    assert describe_params(names, row) == ("crop 20x30 at 3,4\njitter hcbs b1.10 c0.90\ns1.20 h-0.050\n"
                                           "flip solarize blur σ1.50")
    row[[4, 5, 15, 17]] = 0
    assert describe_params(names, row) == "crop 20x30 at 3,4\nno jitter\nno flip/gray/blur/solarize"


def test_resolve_views_presets_and_errors(tmp_path):
    assert repr(resolve_views("byol", 96)) == repr(presets.byol(96))
    assert repr(resolve_views("dino", 160)) == repr(presets.dino(global_size=160))
    assert len(resolve_views("eval_view", 64)) == 1
    with pytest.raises(ValueError, match="neither a preset"):
        resolve_views("no_such_preset")
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(ValueError, match="defines no VIEWS"):
        resolve_views(str(tmp_path / "empty.py"))


def test_preview_command(jpeg_dataset, views_file, tmp_path, capsys):
    out = tmp_path / "views.png"
    assert main(["preview", str(jpeg_dataset), "--views", str(views_file), "--n", "2",
                                             "--out", str(out)]) == 0
    assert out.is_file() and "2 samples x 2 views" in capsys.readouterr().out
    assert main(["preview", str(jpeg_dataset), "--views", "nope", "--out", str(out)]) == 2
    assert "neither a preset" in capsys.readouterr().err


def test_preview_of_a_manifest(jpeg_dataset, views_file, tmp_path):
    """A manifest of two files previews like the Loader over both: the same indices, and each tile's stored
    image is the multi-file reader's image of that index."""
    from fastssl_loader.multi_reader import MultiDatasetReader, write_manifest
    copy = shutil.copy(jpeg_dataset, tmp_path / "copy.fssl")
    write_manifest(tmp_path / "two.fsslm", [jpeg_dataset, copy])
    views = resolve_views(str(views_file))
    samples = preview_samples(tmp_path / "two.fsslm", views, 4, seed=1, epoch=0)
    _, indices, _ = first_batch(str(tmp_path / "two.fsslm"), views, 4, 1, 0, torch.float32)
    assert [s.index for s in samples] == indices
    reader = MultiDatasetReader([jpeg_dataset, copy])
    for sample in samples:
        np.testing.assert_array_equal(sample.image, reader.image(sample.index))
