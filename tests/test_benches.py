"""Correctness of the benchmark code (not timings): synthetic data, baseline transforms, figures, reports."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benches import decode_limit, ladder, report, synthetic_data
from benches import torchvision_baseline as tvb
from fastssl_loader import ops, presets
from fastssl_loader.reference import BLURS
from tests.test_reference import our_steps, rounded, tv_steps
from benches.__main__ import PRESETS, Dataset, main, parse_args, save
from benches.results import (Results, fastest_torchvision, ffcv_ratios, format_peer_table, headline, peer_table,
                             report as bench_report, target_checks)
from benches.stored_export import export_stored_jpegs


# ---------------------------------------------------------------- synthetic data

def _jpeg_density(rgb: np.ndarray, quality: int = 90) -> float:
    from fastssl_loader.jpeg import encode_jpeg

    return len(encode_jpeg(rgb, quality)) / (rgb.shape[0] * rgb.shape[1])


def test_synthetic_images_are_deterministic_imagenet_sized_and_photo_dense():
    images = [synthetic_data.generate_image(0, i) for i in range(6)]
    assert np.array_equal(images[0], synthetic_data.generate_image(0, 0))
    assert not np.array_equal(synthetic_data.generate_image(1, 0)[:50, :50], images[0][:50, :50])
    for im in images:
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
        assert 400 <= max(im.shape[:2]) <= 560 and min(im.shape[:2]) >= 260
        assert im.std() > 20  # not flat colour
        # photo-like, not white noise: neighbouring pixels are strongly correlated
        g = im.astype(np.float64).mean(axis=2)
        corr = np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]
        assert corr > 0.8
    density = np.mean([_jpeg_density(im) for im in images])
    assert 0.3 < density < 0.8, density  # about 0.5 bytes/pixel at q90, like ImageNet photos
    assert len({im.shape for im in images}) > 1  # sizes vary


def test_synthetic_imagefolder_build_and_reuse(tmp_path):
    spec = synthetic_data.SyntheticSpec(num_images=12, seed=3)
    root = synthetic_data.build_synthetic_imagefolder(tmp_path, spec, workers=1, progress=False)
    files = synthetic_data.list_images(root)
    assert len(files) == 12
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [f"class_{c:02d}" for c in range(10)]
    info = json.loads((root / "dataset.json").read_text())
    assert info["num_images"] == 12 and "not ImageNet" in info["note"]
    assert info["bytes"] == sum(f.stat().st_size for f in files)
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert synthetic_data.build_synthetic_imagefolder(tmp_path, spec, workers=1, progress=False) == root
    assert [f.stat().st_mtime_ns for f in files] == mtimes  # reused, not rebuilt
    stats = synthetic_data.folder_stats(root)
    assert stats["images"] == 12 and 0.3 < stats["bytes_per_pixel"] < 0.8


def test_synthetic_rejects_bad_spec(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        synthetic_data.build_synthetic_imagefolder(tmp_path, synthetic_data.SyntheticSpec(num_images=0))
    with pytest.raises(ValueError, match="quality"):
        synthetic_data.build_synthetic_imagefolder(tmp_path, synthetic_data.SyntheticSpec(quality=0))


# ---------------------------------------------------------------- ladder and torchvision transforms

EXPECTED_KINDS = {
    1: ["crop", "flip", "to_float", "normalize"],
    2: ["crop", "flip", "blur", "to_float", "normalize"],
    3: ["crop", "flip", "gray", "blur", "to_float", "normalize"],
    4: ["crop", "flip", "gray", "blur", "solarize", "to_float", "normalize"],
    5: ["crop", "flip", "jitter", "gray", "blur", "solarize", "to_float", "normalize"],
}


@pytest.mark.parametrize("variant", tvb.VARIANTS)
@pytest.mark.parametrize("rung", sorted(ladder.RUNG_NAMES))
def test_torchvision_rung_transforms_are_the_intended_ones(rung, variant):
    views = ladder.byol_rung(rung, 224)
    assert len(views) == 2
    steps = [rounded(tv_steps(tvb.build_transform(v, variant, "torchvision"))) for v in views]
    for s, view in zip(steps, views):
        assert [x[0] for x in s] == EXPECTED_KINDS[rung]
        assert s == rounded(our_steps(view))
        assert s[0] == rounded(("crop", (224, 224), (0.08, 1.0), (3 / 4, 4 / 3), "bilinear", True))
        assert ("flip", 0.5) in s
        assert s[-1] == rounded(("normalize", ops.IMAGENET_MEAN, ops.IMAGENET_STD))
    by_kind = [{x[0]: x for x in s} for s in steps]
    if rung >= 2:  # BYOL asymmetric blur, kernel 23 at 224 px
        assert by_kind[0]["blur"] == ("blur", 1.0, 23, (0.1, 2.0))
        assert by_kind[1]["blur"] == ("blur", 0.1, 23, (0.1, 2.0))
    if rung >= 3:
        assert by_kind[0]["gray"] == by_kind[1]["gray"] == ("gray", 0.2)
    if rung >= 4:  # asymmetric solarize
        assert by_kind[0]["solarize"] == ("solarize", 0.0, 128.0)
        assert by_kind[1]["solarize"] == ("solarize", 0.2, 128.0)
    if rung == 5:
        expected = ("jitter", 0.8, ((0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1)))
        assert by_kind[0]["jitter"] == by_kind[1]["jitter"] == expected


def test_top_rung_and_dino_views_are_the_library_presets():
    assert [our_steps(v) for v in ladder.byol_rung(5, 224)] == [our_steps(v) for v in presets.byol(224)]
    assert [our_steps(v) for v in ladder.dino_views()] == [our_steps(v) for v in presets.dino()]
    # small sides keep the blur (the presets' CIFAR flavour would drop it)
    assert any(isinstance(op, ops.GaussianBlur) for op in ladder.byol_rung(2, 32)[0])


def test_pil_blur_variant_and_dino_views():
    view = ladder.byol_rung(2)[1]
    steps = tv_steps(tvb.build_transform(view, "v1-pil", "pil"))
    assert ("blur", 0.1, "pil", (0.1, 2.0)) in steps
    dino = ladder.dino_views()
    assert ladder.view_sizes(dino) == [224, 224] + [96] * 6
    assert ladder.views_config(dino) == {"n_views": 8, "views": "2x224 + 6x96"}
    kernels = [[op.kernel_size for op in v if isinstance(op, ops.GaussianBlur)] for v in dino]
    assert kernels[0] == [23] and kernels[6] == [9]
    with pytest.raises(ValueError, match="rung"):
        ladder.byol_rung(6)
    with pytest.raises(ValueError, match="variant"):
        tvb.build_transform(view, "v3", "pil")
    with pytest.raises(ValueError, match="blur"):
        tvb.build_transform(view, "v1-pil", "box")


def _write_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        h, w = int(rng.integers(60, 120)), int(rng.integers(60, 120))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 20.0, 235.0)[..., None] * np.ones(3)  # dark in every crop
        img = np.clip(base + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
        f = folder / f"img_{i}.jpg"
        Image.fromarray(img).save(f, quality=90)
        files.append(f)
    return files


@pytest.mark.parametrize("variant", tvb.VARIANTS)
def test_torchvision_loader_outputs_normalised_float_views(tmp_path, variant):
    torch.manual_seed(0)
    files = _write_jpegs(tmp_path, 3)
    views = ladder.byol_rung(5, 64)
    loader = tvb.make_loader(files, [0, 1, 2], views, variant, "pil", batch_size=2, workers=0)
    (v1, v2), label = loader.dataset[1]
    assert label == 1
    for v in (v1, v2):
        assert v.dtype == torch.float32 and tuple(v.shape) == (3, 64, 64)
        assert v.min() < -0.5  # normalised (dark pixels in every crop), not in [0, 1]
    assert report.count_images(loader, progress=False) == 3
    with pytest.raises(ValueError, match="img_9"):
        tvb.make_loader([tmp_path / "img_9.jpg"], [0], views, variant, "pil", 1, 0).dataset[0]
    with pytest.raises(ValueError, match="labels"):
        tvb.make_loader(files, [0], views, variant, "pil", 1, 0)


def test_choose_blur_times_both_implementations(tmp_path):
    files = _write_jpegs(tmp_path, 2)
    best, timings = tvb.choose_blur(files, ladder.byol_rung(2, 32)[0], "v2-tensor", samples=2)
    assert best in BLURS and set(timings) == set(BLURS)
    assert timings[best] == min(timings.values()) and all(v > 0 for v in timings.values())
    with pytest.raises(ValueError, match="GaussianBlur"):
        tvb.choose_blur(files, ladder.byol_rung(1, 32)[0], "v2-tensor")


# ---------------------------------------------------------------- figures and reports

def _fig(loader, rung, epoch_s, images=100, storage=None, group="ladder"):
    cfg = {"rung": rung, "size": 224}
    if storage:
        cfg["storage"] = storage
    return report.Figure(group, loader, cfg, images, list(epoch_s), warmup_s=5.0, peak_rss_mb=123.0)


def test_figure_statistics_and_json(tmp_path):
    f = _fig("fastssl", 1, [1.0, 2.0, 4.0], storage="jpeg")
    assert f.rates == [100.0, 50.0, 25.0]
    assert f.images_per_s == 50.0
    doc = f.to_json()
    assert doc["images_per_s_min"] == 25.0 and doc["images_per_s_max"] == 100.0 and doc["epoch_s_median"] == 2.0
    path = report.write_json(tmp_path / "sub" / "b.json", [f], machine={"cpu_model": "x"})
    loaded = json.loads(path.read_text())
    assert loaded["figures"][0]["images_per_s"] == 50.0 and loaded["machine"] == {"cpu_model": "x"}


def test_measure_epochs_counts_warmup_separately():
    calls = []

    def epoch():
        calls.append(1)
        return 7

    warm, times, images, rss = report.measure_epochs(epoch, 3)
    assert len(calls) == 4 and len(times) == 3 and images == 7 and rss > 0 and warm >= 0
    sizes = iter([7, 6])
    with pytest.raises(RuntimeError, match="6 images"):
        report.measure_epochs(lambda: next(sizes), 1)
    with pytest.raises(ValueError, match="epochs"):
        report.measure_epochs(epoch, 0)


def test_table_headline_and_chart(tmp_path):
    figs = [_fig("torchvision-v1-pil", 1, [2.0]), _fig("torchvision-v2-tensor", 1, [1.0]),
            _fig("fastssl", 1, [0.25], storage="jpeg"), _fig("fastssl", 1, [0.1], storage="raw"),
            _fig("torchvision-v1-pil", 5, [4.0]), _fig("torchvision-v2-tensor", 5, [5.0]),
            _fig("fastssl", 5, [0.5], storage="jpeg")]
    assert fastest_torchvision(figs, "ladder", {"rung": 1}).loader == "torchvision-v2-tensor"
    rows = headline(figs, {"rates": [{"threads": 2, "scale": 1, "images_per_s": 800.0}]}, workers=2)
    by = {(r["rung"], r["storage"]): r for r in rows}
    assert by[(1, "jpeg")]["speedup_vs_fastest_torchvision"] == pytest.approx(4.0)  # 400 / 100, not / 50
    assert by[(1, "raw")]["speedup_vs_fastest_torchvision"] == pytest.approx(10.0)
    assert by[(5, "jpeg")]["fastest_torchvision"] == "torchvision-v1-pil"
    assert by[(5, "jpeg")]["speedup_vs_fastest_torchvision"] == pytest.approx(8.0)
    assert by[(1, "jpeg")]["fraction_of_decode_limit"] == pytest.approx(0.5)
    assert by[(1, "raw")]["fraction_of_decode_limit"] is None
    # rung 5 (200 img/s) over rung 1 (400 img/s) with 2 workers: 2 * (1/200 - 1/400) s = 5000 core-us per image
    assert by[(5, "jpeg")]["added_core_us_per_image"] == pytest.approx(5000.0)
    assert by[(1, "jpeg")]["added_core_us_per_image"] is None
    checks = {c["target"]: c for c in target_checks(rows, {"2view_fastssl_over_ffcv": 1.5})}
    assert checks["jpeg rung 1: two views / all-core decode limit"]["met"] is False  # 0.5 < 0.8
    assert checks["jpeg rung 1: x fastest torchvision"]["met"] is True  # 4.0 >= 3
    rung5 = checks["jpeg rung 5: x fastest torchvision"]
    assert rung5["goal"] == 5.0 and rung5["met"]
    assert checks["raw rung 1: x fastest torchvision"]["met"] is True  # 10 >= 5
    assert checks["two views: x FFCV two pipelines"]["met"] is False
    assert "one view: x FFCV one view" not in checks  # not measured: not reported
    table = report.format_table(figs)
    assert len(table.splitlines()) == len(figs) + 2
    assert "torchvision-v2-tensor" in table and "rung=5" in table
    png = report.plot_ladder(tmp_path / "c.png", figs, "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.plot_ladder(tmp_path / "d.png", [_fig("x", 1, [1.0], group="dino")], "t") is None


def test_results_are_saved_and_reported_from_the_records(tmp_path):
    figs = [_fig("torchvision-v2-tensor", 1, [1.0]), _fig("fastssl", 1, [0.25], storage="jpeg")]
    limits = {"jpeg_images": 100, "rates": [{"threads": 2, "scale": 1, "images_per_s": 800.0,
                                             "images_per_s_min": 790.0, "images_per_s_max": 810.0}]}
    rows = headline(figs, limits, workers=2)
    results = Results(machine={"cpu_model": "cpu-x"}, settings={"batch_size": 8, "workers": 2},
                      dataset={"name": "set-a", "images": 100}, figures=figs, decode_limit=limits,
                      torchvision_blur={}, ffcv_status="not requested", ffcv_ratios={}, headline=rows,
                      targets=target_checks(rows, {}), op_costs={"224": {"blur": {"ours_cpu_min_us": 300.0,
                                                                                  "torchvision_cpu_min_us": 900.0}}},
                      total_seconds=3.0)
    text = bench_report(results)
    assert text.startswith("== set-a: 100 images, batch 8, 2 workers, cpu-x")
    assert "scale 1/1  2 thread(s): 800 (min 790, max 810)" in text
    assert "4.00x" in text and "0.50" in text  # speedup 400/100 and fraction of the decode limit 400/800
    assert "MISSED jpeg rung 1: two views / all-core decode limit: 0.50 (goal >= 0.8)" in text
    assert "224: blur 300 (torchvision 900)" in text
    json_path, png = save(results, tmp_path)
    doc = json.loads(json_path.read_text())
    assert doc["headline"][0]["speedup_vs_fastest_torchvision"] == pytest.approx(4.0)
    assert doc["ffcv"] == {"status": "not requested"} and len(doc["figures"]) == 2 and png.is_file()


def test_machine_description_names_cpu_cores_and_versions():
    m = report.machine_description()
    assert m["cpu_model"] and m["usable_cores"] >= 1
    assert m["versions"]["torch"] == torch.__version__.split("+")[0]
    import fastssl_loader

    assert m["versions"]["fastssl_loader"] == fastssl_loader.__version__
    assert m["versions"]["numba"] and m["versions"]["torchvision"] and "git_commit" in m


# ---------------------------------------------------------------- decode limit

def test_decode_limit_on_stored_files(tmp_path):
    from fastssl_loader import write_dataset

    rng = np.random.default_rng(0)
    images = [(rng.integers(0, 255, (40 + 8 * i, 64, 3), dtype=np.uint8), i) for i in range(5)]
    jpeg = tmp_path / "j.fssl"
    write_dataset(jpeg, images, mode="jpeg", jpeg_quality=90, num_workers=0, progress=False)
    payloads = decode_limit.stored_jpegs(str(jpeg))
    assert len(payloads) == 5
    rate = decode_limit.decode_rate(payloads, threads=2, scale=2, passes=2)
    assert rate["images"] == 5 and rate["images_per_s_min"] <= rate["images_per_s"] <= rate["images_per_s_max"]
    limits = decode_limit.decode_limits(str(jpeg), threads=2, passes=1)
    assert {(r["threads"], r["scale"]) for r in limits["rates"]} == {(1, 1), (2, 1), (1, 2), (2, 2)}
    assert decode_limit.limit_rate(limits, 2) == next(r["images_per_s"] for r in limits["rates"]
                                                      if r["threads"] == 2 and r["scale"] == 1)
    raw = tmp_path / "r.fssl"
    write_dataset(raw, images, mode="raw", num_workers=0, progress=False)
    assert decode_limit.stored_jpegs(str(raw)) == []
    with pytest.raises(ValueError, match="raw"):
        decode_limit.decode_rate([], threads=1)


# ---------------------------------------------------------------- FFCV and the entry point

def test_ffcv_skips_cleanly_when_not_importable(tmp_path):
    from benches import ffcv_baseline

    if ffcv_baseline.ffcv_importable():
        pytest.skip("ffcv is importable here")
    figs, status = ffcv_baseline.ffcv_figures(["a.jpg"], [0], tmp_path, size=224, batch_size=8, workers=1,
                                              epochs=1)
    assert figs == [] and status.startswith("skipped") and "--ffcv-python" in status


def test_ffcv_ratios_compare_same_view_counts():
    def fig(loader, n_views, seconds):
        return report.Figure("ffcv", loader, {"n_views": n_views, "views": f"{n_views}x224"}, 100, [seconds], 1.0)

    figs = [fig("ffcv-1view", 1, 1.0), fig("ffcv-2view", 2, 2.0), fig("fastssl", 1, 0.5), fig("fastssl", 2, 0.5)]
    assert ffcv_ratios(figs) == {"1view_fastssl_over_ffcv": 2.0, "2view_fastssl_over_ffcv": 4.0}
    assert ffcv_ratios(figs[:2]) == {}


def test_export_of_a_raw_file_encodes_each_sample(tmp_path):
    from fastssl_loader import write_dataset
    from fastssl_loader.jpeg import decode_jpeg

    rng = np.random.default_rng(1)
    images = [(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), 7 - i) for i in range(3)]
    raw = tmp_path / "r.fssl"
    write_dataset(raw, images, mode="raw", num_workers=0, progress=False)
    samples = export_stored_jpegs(raw, tmp_path / "export", quality=90)
    assert [lab for _, lab in samples] == [7, 6, 5]
    for f, _ in samples:
        assert decode_jpeg(Path(f).read_bytes()).shape == (30, 40, 3)


def test_export_writes_the_stored_jpeg_payloads_byte_for_byte(jpeg_dataset, auto_dataset, tmp_path):
    from fastssl_loader.format import STORAGE_JPEG
    from fastssl_loader.reader import DatasetReader

    for path in (jpeg_dataset, auto_dataset):
        r = DatasetReader(path)
        dst = tmp_path / path.stem
        samples = export_stored_jpegs(path, dst)
        assert [lab for _, lab in samples] == r.labels.tolist()
        assert [Path(f).name for f, _ in samples] == [f"{i:07d}.jpg" for i in range(len(r))]
        stored = [i for i in range(len(r)) if r.storage[i] == STORAGE_JPEG]
        assert stored  # both files hold JPEG-stored samples
        for i in stored:
            assert Path(samples[i][0]).read_bytes() == r.encoded(i)
        # a stale file of the same name (another dataset exported there before) is replaced
        Path(samples[stored[0]][0]).write_bytes(b"stale")
        export_stored_jpegs(path, dst)
        assert Path(samples[stored[0]][0]).read_bytes() == r.encoded(stored[0])


def test_dataset_file_sets_name_original_and_stored_files():
    data = Dataset("d", ["a.JPEG"], [0], {"jpeg": "j.fssl"}, {}, stored_files=["0000000.jpg"])
    assert data.file_sets() == {"original": ["a.JPEG"], "stored": ["0000000.jpg"]}
    assert Dataset("d", ["a.JPEG"], [0], {"raw": "r.fssl"}, {}).file_sets() == {"original": ["a.JPEG"]}
    given = Dataset("d", ["0000000.jpg"], [0], {"file": "x.fssl"}, {}, stored_files=["0000000.jpg"])
    assert given.file_sets() == {"stored": ["0000000.jpg"]}


# ---------------------------------------------------------------- peers: DALI and SPDL

def test_peer_spec_describes_every_op_of_the_views():
    top = ladder.peer_spec(ladder.byol_rung(5, 224))
    assert [v["size"] for v in top] == [224, 224]
    for v in top:
        assert v["scale"] == [0.08, 1.0] and v["ratio"] == pytest.approx([3 / 4, 4 / 3]) and v["flip"] == 0.5
        assert v["jitter"] == {"p": 0.8, "brightness": [0.6, 1.4], "contrast": [0.6, 1.4],
                               "saturation": [0.8, 1.2], "hue": [-0.1, 0.1]}
        assert v["gray"] == 0.2 and v["normalize"]["mean"] == list(ops.IMAGENET_MEAN)
    assert [v["blur"] for v in top] == [{"p": 1.0, "kernel": 23, "sigma": [0.1, 2.0]},
                                        {"p": 0.1, "kernel": 23, "sigma": [0.1, 2.0]}]
    assert [v["solarize"] for v in top] == [{"p": 0.0, "threshold": 128.0}, {"p": 0.2, "threshold": 128.0}]
    crop = ladder.peer_spec(ladder.byol_rung(1, 96))
    assert all(v[k] is None for v in crop for k in ("jitter", "gray", "blur", "solarize"))
    assert ladder.peer_spec([[ops.RandomResizedCrop(64), ops.GaussianBlur("auto")]])[0]["blur"]["kernel"] == 7
    json.dumps(top)  # plain data for the peer's interpreter
    with pytest.raises(ValueError, match="RandomResizedCrop"):
        ladder.peer_spec([[ops.Resize(64, crop=64)]])


def test_dali_skips_or_fails_cleanly_without_dali(tmp_path):
    from benches.dali_baseline import dali_figures

    spec = ladder.peer_spec(ladder.byol_rung(1, 32))
    kw = dict(batch_size=2, workers=1, epochs=1, group="ladder", config={"rung": 1})
    if importlib.util.find_spec("nvidia") is None or importlib.util.find_spec("nvidia.dali") is None:
        figs, status = dali_figures(["a.jpg"], [0], spec, tmp_path, python=None, **kw)
        assert figs == [] and status.startswith("skipped") and "--dali-python" in status
        figs, status = dali_figures(["a.jpg"], [0], spec, tmp_path, python=sys.executable, **kw)
        assert figs == [] and status.startswith("failed") and "nvidia" in status
    figs, status = dali_figures(["a.jpg"], [0], spec, tmp_path, python=str(tmp_path / "no-python"), **kw)
    assert figs == [] and status.startswith("failed") and "no-python" in status


def test_spdl_skips_cleanly_and_runs_crop_views_only(tmp_path):
    from benches import spdl_baseline

    kw = dict(batch_size=2, workers=1, epochs=1, group="ladder", config={"rung": 1})
    with pytest.raises(ValueError, match="view 0 has jitter"):
        spdl_baseline.spdl_figures(["a.jpg"], [0], ladder.peer_spec(ladder.byol_rung(5, 32)), tmp_path,
                                   python=None, **kw)
    spec = ladder.peer_spec(ladder.byol_rung(1, 32))
    if importlib.util.find_spec("spdl") is None:
        figs, status = spdl_baseline.spdl_figures(["a.jpg"], [0], spec, tmp_path, python=None, **kw)
        assert figs == [] and status.startswith("skipped") and "--spdl-python" in status
        figs, status = spdl_baseline.spdl_figures(["a.jpg"], [0], spec, tmp_path, python=sys.executable, **kw)
        assert figs == [] and status.startswith("failed") and "spdl" in status


def test_spdl_crop_boxes_follow_torchvision_get_params():
    from benches.spdl_baseline import crop_box, filter_desc

    from scipy.stats import ks_2samp
    from torchvision.transforms import RandomResizedCrop

    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    for h, w in [(375, 500), (512, 341), (64, 64)]:
        boxes = np.array([crop_box(rng, h, w, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(2000)])
        top, left, bh, bw = boxes.T
        assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
        image = torch.zeros(1, h, w)
        ref = np.array([RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(2000)])
        for ours, theirs in [(bh * bw, ref[:, 2] * ref[:, 3]), (bw / bh, ref[:, 3] / ref[:, 2]), (top, ref[:, 0])]:
            assert ks_2samp(ours, theirs).pvalue > 1e-3
    # no box fits a very long image: centred fallback at the largest allowed ratio, like torchvision
    assert crop_box(np.random.default_rng(0), 10, 400, (0.9, 1.0), (3 / 4, 4 / 3)) == (0, 193, 10, 13)
    assert filter_desc((5, 6, 70, 80), 32, True) == ("crop=80:70:6:5,scale=32:32:flags=bilinear,hflip,"
                                                     "format=pix_fmts=rgb24")


def test_peer_listing_round_trip_and_bad_names(tmp_path):
    from benches.peer_runner import read_listing, write_listing

    path = write_listing(["/a b/x.jpg", "y.jpg"], [3, 4], tmp_path / "l.tsv")
    assert read_listing(path) == (["/a b/x.jpg", "y.jpg"], [3, 4])
    with pytest.raises(ValueError, match="tab"):
        write_listing(["a\tb.jpg"], [0], tmp_path / "m.tsv")
    with pytest.raises(ValueError, match="labels"):
        write_listing(["a.jpg"], [], tmp_path / "m.tsv")


def _peer_python(env: str) -> str:
    python = os.environ.get(env)
    if not python:
        pytest.skip(f"{env} is not set (the interpreter of the peer's own venv)")
    return python


def _stored_files(tmp_path: Path, n: int) -> list[str]:
    from fastssl_loader import write_dataset

    jpeg = tmp_path / "j.fssl"
    write_dataset(jpeg, [(str(f), 0) for f in _write_jpegs(tmp_path / "src", n)], mode="jpeg", num_workers=0,
                  progress=False)
    return [f for f, _ in export_stored_jpegs(jpeg, tmp_path / "stored")]


@pytest.mark.slow
def test_dali_tiny_run_in_its_venv(tmp_path):
    from benches.dali_baseline import dali_figures

    python = _peer_python("FASTSSL_DALI_PYTHON")
    files = _stored_files(tmp_path, 5)
    for rung in (1, 5):
        figs, status = dali_figures(files, [0, 1, 2, 0, 1], ladder.peer_spec(ladder.byol_rung(rung, 32)),
                                    tmp_path / "work", python=python, batch_size=2, workers=1, epochs=1,
                                    group="ladder", config={"rung": rung, "files": "stored"})
        assert status.startswith("ran: dali"), status
        assert [f.loader for f in figs] == ["dali-decode-once", "dali-roi-decode"]
        for f in figs:
            assert f.images == 5 and len(f.epoch_s) == 1 and f.config["rung"] == rung
            assert f.config["files"] == "stored" and f.config["batches"] == 3 and f.images_per_s > 0


@pytest.mark.slow
def test_spdl_tiny_run_in_its_venv(tmp_path):
    from benches.spdl_baseline import spdl_figures

    python = _peer_python("FASTSSL_SPDL_PYTHON")
    files = _stored_files(tmp_path, 5)
    figs, status = spdl_figures(files, [0] * 5, ladder.peer_spec(ladder.byol_rung(1, 32)), tmp_path / "work",
                                python=python, batch_size=2, workers=2, epochs=1, group="one-view",
                                config={"rung": 1})
    assert status.startswith("ran: spdl"), status
    assert len(figs) == 1 and figs[0].loader == "spdl" and figs[0].images == 5 and figs[0].group == "one-view"


def test_peer_table_and_chart_handle_missing_peers(tmp_path):
    def fig(loader, rung, seconds, **cfg):
        return report.Figure("ladder", loader, {"rung": rung, "size": 224, "views": "2x224", **cfg}, 100,
                             [seconds], 1.0)

    figs = [fig("fastssl", 1, 0.1, storage="jpeg"), fig("torchvision-v2-tensor", 1, 1.0, files="original"),
            fig("torchvision-v2-tensor", 1, 0.5, files="stored"), fig("dali-decode-once", 1, 0.4, files="stored",
                                                                      storage="jpeg"),
            fig("spdl", 1, 0.25, files="stored"), fig("fastssl", 5, 0.2, storage="jpeg"),
            fig("torchvision-v2-tensor", 5, 2.0, files="stored"),
            report.Figure("one-view", "fastssl", {"rung": 1, "views": "1x224", "storage": "jpeg"}, 100, [0.05], 1)]
    rows = peer_table(figs)
    assert [(r["group"], r["rung"]) for r in rows] == [("ladder", 1), ("ladder", 5), ("one-view", 1)]
    assert rows[0]["images_per_s"] == {"fastssl (jpeg)": 1000.0, "torchvision-v2-tensor (original files)": 100.0,
                                       "torchvision-v2-tensor (stored files)": 200.0,
                                       "dali-decode-once (stored files)": 250.0, "spdl (stored files)": 400.0}
    assert set(rows[1]["images_per_s"]) == {"fastssl (jpeg)", "torchvision-v2-tensor (stored files)"}
    text = format_peer_table(rows).splitlines()
    assert "dali-decode-once (stored files)" in text[0] and "torchvision-v2-tensor (original files)" in text[0]
    assert text[2].split()[-5:] == ["500", "-", "50", "-", "-"]  # rung 5: only ours and torchvision stored
    # the headline compares with the fastest torchvision figure and says which files it read
    row = headline(figs, None, workers=2)[0]
    assert row["fastest_torchvision"] == "torchvision-v2-tensor" and row["torchvision_files"] == "stored"
    assert row["speedup_vs_fastest_torchvision"] == pytest.approx(5.0)
    assert report.plot_ladder(tmp_path / "c.png", figs, "t").is_file()
    results = Results(machine={"cpu_model": "c"}, settings={"batch_size": 8, "workers": 2},
                      dataset={"name": "s", "images": 100}, figures=figs, decode_limit=None, torchvision_blur={},
                      ffcv_status="not requested", ffcv_ratios={}, headline=[row], targets=[], op_costs=None,
                      total_seconds=1.0, peers={"dali": "ran: dali 2.4.0", "spdl": "failed in x (exit 1): why"})
    printed = bench_report(results)
    assert "Every loader side by side" in printed and "SPDL: failed in x (exit 1): why" in printed
    assert "torchvision-v2-tensor (stored files) (200)" in printed
    doc = json.loads(save(results, tmp_path)[0].read_text())
    assert doc["peers"]["status"]["spdl"].startswith("failed") and len(doc["peers"]["table"]) == 3


def test_parse_args_presets_and_errors(tmp_path):
    a = parse_args(["--quick"])
    assert a.images == PRESETS["quick"]["images"] and a.rungs == [1, 5] and a.epochs == 1
    a = parse_args(["--full", "--epochs", "5", "--storage", "raw"])
    assert a.epochs == 5 and a.storage == ["raw"] and a.sizes == [224, 160] and a.dino and a.scaling
    a = parse_args([])
    assert a.rungs == [1, 2, 3, 4, 5] and not a.images_given
    assert parse_args(["--loaders", "dali,spdl"]).loaders == ["dali", "spdl"]
    assert parse_args([]).torchvision_files == ["original", "stored"] and not parse_args([]).one_view
    for bad in (["--rungs", "1,9"], ["--loaders", "mxnet"], ["--torchvision-files", "copies"], ["--epochs", "0"],
                ["--data", str(tmp_path / "no")], ["--quick", "--full"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


@pytest.mark.slow
def test_main_tiny_run_writes_table_json_and_chart(tmp_path, capsys):
    folder = tmp_path / "flat"
    _write_jpegs(folder, 6)
    out = tmp_path / "out"
    missing = str(tmp_path / "no-such-python")
    rc = main(["--data", str(folder), "--quick", "--rungs", "1,5", "--batch-size", "4", "--workers", "1",
               "--work-dir", str(tmp_path / "work"), "--out", str(out), "--loaders", "fastssl,torchvision,dali,spdl",
               "--variants", "v2-tensor", "--storage", "jpeg,raw", "--no-progress", "--one-view",
               "--dali-python", missing, "--spdl-python", missing])
    assert rc == 0
    doc = json.loads((out / "bench.json").read_text())
    got = {(f["group"], f["loader"], f["config"]["rung"], f["config"].get("storage") or f["config"]["files"])
           for f in doc["figures"]}
    assert got == {(group, loader, rung, where) for group, rungs in (("ladder", (1, 5)), ("one-view", (1,)))
                   for rung in rungs for loader, where in (("torchvision-v2-tensor", "original"),
                                                           ("torchvision-v2-tensor", "stored"),
                                                           ("fastssl", "jpeg"), ("fastssl", "raw"))}
    assert {f["config"]["n_views"] for f in doc["figures"] if f["group"] == "one-view"} == {1}
    assert all(f["images"] == 6 and len(f["epoch_s"]) == 1 for f in doc["figures"])
    stored = sorted((tmp_path / "work").rglob("*.export/*.jpg"))
    assert len(stored) == 6  # torchvision's "stored files": the payloads of our jpeg file
    assert all(doc["peers"]["status"][p].startswith("failed") and "no-such-python" in doc["peers"]["status"][p]
               for p in ("dali", "spdl"))
    assert [(r["group"], r["rung"]) for r in doc["peers"]["table"]] == [("ladder", 1), ("ladder", 5),
                                                                        ("one-view", 1)]
    assert doc["machine"]["usable_cores"] >= 1 and doc["dataset"]["images"] == 6
    assert len(doc["headline"]) == 4 and doc["decode_limit"]["jpeg_images"] == 6
    assert {c["target"] for c in doc["targets"]} >= {"jpeg rung 1: two views / all-core decode limit",
                                                      "raw rung 5: x fastest torchvision"}
    assert (out / "ladder.png").is_file()
    printed = capsys.readouterr().out
    assert "Headline" in printed and "JPEG decode limit" in printed and "Speed goals" in printed
    assert "Every loader side by side" in printed and "DALI: failed" in printed
    assert "issue" not in printed.lower() and "issue" not in (out / "bench.json").read_text().lower()
    import psutil

    # DataLoader worker processes were shut down (multiprocessing's process-wide forkserver and resource
    # tracker, started by earlier conversions with workers, live as long as this process and are not workers)
    helpers = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")
    workers = [c for c in psutil.Process().children() if not any(h in " ".join(c.cmdline()) for h in helpers)]
    assert not workers


def test_imagenet_sample_is_listed_as_a_flat_folder(imagenet_sample_dir):
    from benches.__main__ import _source_samples

    a = parse_args(["--data", str(imagenet_sample_dir), "--images", "5"])
    name, samples, info = _source_samples(a)
    assert len(samples) == 5 and info["layout"] == "flat" and name.endswith("-n5")
    assert all(Path(f).suffix == ".JPEG" for f, _ in samples)


def test_multi_file_speed_smoke_run(tiny_imagefolder, tmp_path, capsys):
    from benches import multi_file_speed

    out = tmp_path / "multi.json"
    result = multi_file_speed.main(["--data", str(tiny_imagefolder), "--shards", "3", "--size", "16",
                                    "--batch-size", "2", "--workers", "1", "--repeats", "2", "--max-resolution", "64",
                                    "--work-dir", str(tmp_path / "work"), "--out", str(out)])
    assert result["images_per_epoch"] == {"one_file": 12, "3_files": 12}  # 12 images, batches of 2
    assert [len(s) for s in result["epoch_seconds"].values()] == [2, 2]
    assert json.loads(out.read_text())["ratio_files_over_one"] == result["ratio_files_over_one"] > 0
    assert len(list((tmp_path / "work").rglob("part-*-of-3.fssl"))) == 3
    assert "3 files / one file" in capsys.readouterr().out


def test_best_of_rounds_keeps_each_figures_best_round(capsys):
    """benches.revisions: per figure, nested at any depth, the lowest value over the rounds, except rates
    (``higher_is_better``), the highest; a figure a round lacks keeps its best so far."""
    from benches.revisions import WORKTREE, best_of_rounds
    rounds = iter([{"1": {"images_per_s": 900.0, "cpu_us_per_image": 2000.0}, "open_ms": 70.0},
                   {"1": {"images_per_s": 1000.0, "cpu_us_per_image": 2100.0}, "open_ms": 65.0},
                   {"1": {"images_per_s": 950.0, "cpu_us_per_image": 1900.0}}])
    best = best_of_rounds([WORKTREE], 3, lambda root: next(rounds), higher_is_better=("images_per_s",))
    assert best == {WORKTREE: {"1": {"images_per_s": 1000.0, "cpu_us_per_image": 1900.0}, "open_ms": 65.0}}
