"""End-to-end runs of train_ref.py on a tiny generated ImageFolder: every method, both loaders, multi-crop,
evaluation-only, config files, resume, and clear errors for bad input."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train_ref as tr

CLASSES = ("blue", "green", "red", "yellow")
COLOURS = np.array([[40, 60, 200], [40, 190, 60], [210, 40, 40], [220, 210, 40]])


def make_image_folder(root: Path, n_train: int = 64, n_test: int = 16, size: int = 32) -> Path:
    """root/{train,test}/<class>/*.jpg: noisy images whose mean colour depends on the class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            label = i % len(CLASSES)
            img = np.clip(COLOURS[label] + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
            path = root / split / CLASSES[label] / f"{i:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(path, quality=90)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data"))


def run(data: Path, out: Path, *extra: str) -> dict:
    argv = ["--data", str(data), "--arch", "small", "--width", "4", "--projector", "32-16", "--predictor", "32-16",
            "--size", "32", "--epochs", "1", "--batch-size", "16", "--workers", "1", "--eval-batch-size", "32",
            "--knn-k", "5", "--threads", "1", "--no-progress", "--cache-dir", str(out.parent / "cache"),
            "--out", str(out), *extra]
    return tr.main(argv)


def log_records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


EPOCH_KEYS = {"epoch", "step", "lr", "loss", "probe_loss", "images_per_s", "data_wait_frac", "epoch_time_s",
              "knn_top1", "knn_top5", "probe_top1", "probe_top5", "test/knn_top1", "test/probe_top5"}


@pytest.mark.parametrize("method", tr.METHODS)
def test_each_method_trains_and_logs(data: Path, tmp_path: Path, method: str):
    out = tmp_path / method
    result = run(data, out, "--method", method, "--views", "simclr")  # one view list: the kernels compile once
    records = log_records(out)
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(epochs) == 1 and EPOCH_KEYS <= set(epochs[0])
    rec = epochs[0]
    assert rec["step"] == 64 // 16 and np.isfinite(rec["loss"])
    assert 0 < rec["data_wait_frac"] < 1 and rec["images_per_s"] > 0
    assert 0 <= rec["knn_top1"] <= rec["knn_top5"] <= 100
    assert records[-1]["type"] == "summary" and records[-1]["knn_top1"] == result["final"]["knn_top1"]
    assert (out / "checkpoint.pt").exists() and json.loads((out / "config.json").read_text())["method"] == method


@pytest.mark.parametrize("optimizer", ["lars", "adamw"])
def test_other_optimizers_train(data: Path, tmp_path: Path, optimizer: str):
    result = run(data, tmp_path / optimizer, "--views", "simclr", "--optimizer", optimizer, "--lr", "0.01")
    rec = result["history"][0]
    assert rec["step"] == 4 and np.isfinite(rec["loss"])


@pytest.mark.parametrize("arch,width,dim", [("small", 4, 32), ("cifar_resnet18", 8, 64), ("resnet18", 64, 512)])
def test_backbones_output_pooled_features(arch: str, width: int, dim: int):
    net = tr.build_backbone(arch, width)
    assert net.out_dim == dim and net(torch.randn(2, 3, 32, 32)).shape == (2, dim)
    if arch == "cifar_resnet18":  # CIFAR stem: 3x3 stride 1, no max-pool
        stem = net.features[0][0]
        assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
        assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())


def test_torchvision_loader_same_interface(data: Path, tmp_path: Path):
    out = tmp_path / "tv"
    # --tensorboard is optional: without the package the run warns and goes on
    run(data, out, "--loader", "torchvision", "--workers", "0", "--method", "byol", "--tensorboard")
    rec = [r for r in log_records(out) if r["type"] == "epoch"][0]
    assert EPOCH_KEYS <= set(rec) and rec["step"] == 4


def test_jitter_strength_scales_ranges_around_identity():
    from fastssl_loader import ops, presets
    flip = ops.RandomHorizontalFlip()
    op, kept = presets.scale_jitter([ops.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8), flip], 0.5)
    assert op.brightness == pytest.approx((0.6, 1.4)) and op.saturation == pytest.approx((0.6, 1.4))
    assert op.hue == pytest.approx((-0.1, 0.1)) and op.p == 0.8
    assert kept is flip
    args = tr.parse_args(["--method", "simclr", "--size", "32", "--jitter-strength", "0.5"])
    views, _ = tr.make_views(args)
    jitters = [o for v in views for o in v if isinstance(o, ops.ColorJitter)]
    assert len(jitters) == 2 and all(j.brightness == pytest.approx((0.6, 1.4)) for j in jitters)


@pytest.mark.slow  # compiles the multi-crop views' kernels (once per process)
@pytest.mark.parametrize("method", tr.METHODS)
def test_multicrop_and_shifted_evals(data: Path, tmp_path: Path, method: str):
    out = tmp_path / "mc"
    run(data, out, "--method", method, "--views", "dino", "--local-size", "16", "--n-local", "2",
        "--alpha", "0.3", "--make-shifted-evals", "gray", "jpeg")
    rec = [r for r in log_records(out) if r["type"] == "epoch"][0]
    assert {"loss_gg", "loss_gl"} <= set(rec)
    assert rec["loss"] == pytest.approx(0.3 * rec["loss_gg"] + 0.7 * rec["loss_gl"], rel=1e-4)
    for name in ("test", "test-gray", "test-jpeg"):
        assert f"{name}/knn_top1" in rec
    mean = np.mean([rec[f"{n}/knn_top1"] for n in ("test", "test-gray", "test-jpeg")])
    assert rec["knn_top1"] == pytest.approx(mean)


def test_real_cifar10_subset(cifar10_dir: Path, tmp_path: Path):
    out = tmp_path / "cifar"
    result = run(cifar10_dir, out, "--limit-train", "128", "--limit-eval", "64", "--views", "simclr")
    assert 0 <= result["final"]["test/knn_top1"] <= result["final"]["test/knn_top5"] <= 100
    from fastssl_loader import DatasetReader
    (cached,) = [p for p in (tmp_path / "cache").glob("train-128-*.fssl")]
    reader = DatasetReader(str(cached))
    assert len(reader) == 128 and reader.labels.max() <= 9 and len(set(reader.labels.tolist())) > 5
    assert reader.image(0).shape == (32, 32, 3)


def test_epochs_zero_evaluates_random_init(data: Path, tmp_path: Path):
    out = tmp_path / "e0"
    result = run(data, out, "--epochs", "0")
    assert result["history"][0]["epoch"] == 0 and "knn_top1" in result["final"]
    assert not (out / "checkpoint.pt").exists()


def test_resume_gives_the_same_next_steps(data: Path, tmp_path: Path):
    common = ("--method", "byol", "--views", "simclr", "--epochs", "2", "--log-every", "1", "--eval-every", "100")
    run(data, tmp_path / "full", *common)
    run(data, tmp_path / "first", *common, "--stop-after", "1")
    assert [r["epoch"] for r in log_records(tmp_path / "first") if r["type"] == "epoch"] == [1]
    run(data, tmp_path / "resumed", *common, "--resume", str(tmp_path / "first" / "checkpoint.pt"))
    full = {r["step"]: r["loss"] for r in log_records(tmp_path / "full") if r["type"] == "step"}
    resumed = {r["step"]: r["loss"] for r in log_records(tmp_path / "resumed") if r["type"] == "step"}
    assert sorted(resumed) == [5, 6, 7, 8]
    for s, loss in resumed.items():
        assert loss == pytest.approx(full[s], abs=1e-6), s


def step_losses(out: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in log_records(out) if r["type"] == "step"]


def test_resume_mid_epoch_gives_the_same_steps(data: Path, tmp_path: Path):
    common = ("--method", "byol", "--views", "simclr", "--epochs", "2", "--log-every", "1", "--eval-every", "100")
    full = run(data, tmp_path / "full", *common)
    cut = tmp_path / "cut"
    assert run(data, cut, *common, "--stop-after-steps", "2", "--ckpt-every-steps", "1")["history"] == []
    ckpt = torch.load(cut / "checkpoint.pt", weights_only=False)
    assert (ckpt["epoch"], ckpt["loader"]["epoch"], ckpt["loader"]["position"], ckpt["sums"]["steps"]) == (0, 0, 2, 2)
    resumed = run(data, cut, *common, "--resume", "auto")
    assert step_losses(cut) == step_losses(tmp_path / "full") and len(step_losses(cut)) == 8  # bit for bit
    for got, expected in zip(resumed["history"], full["history"]):  # epoch means over the whole epoch
        assert (got["step"], got["loss"], got["probe_loss"]) == (expected["step"], expected["loss"],
                                                                   expected["probe_loss"])
    starts = [r for r in log_records(cut) if r["type"] == "start"]
    assert [(r["start_epoch"], r["start_step"]) for r in starts] == [(0, 0), (0, 2)]


def test_a_manifest_of_shards_trains_as_the_one_file(data: Path, tmp_path: Path):
    from fastssl_loader import write_dataset, write_manifest
    from fastssl_loader.sources.imagefolder import list_samples
    samples, _ = list_samples(data / "train")
    write_dataset(tmp_path / "whole.fssl", samples, num_workers=0, progress=False)
    shards = [tmp_path / f"part-{k}.fssl" for k in range(2)]
    for k, path in enumerate(shards):
        write_dataset(path, samples, shard=(k, 2), num_workers=0, progress=False)
    write_manifest(tmp_path / "train.fsslm", shards)
    common = ("--views", "simclr", "--log-every", "1", "--eval", str(data / "test"))
    one = run(data, tmp_path / "one", *common, "--train", str(tmp_path / "whole.fssl"))
    many = run(tmp_path / "train.fsslm", tmp_path / "many", *common)
    assert step_losses(tmp_path / "many") == step_losses(tmp_path / "one") and len(step_losses(tmp_path / "one")) == 4
    assert many["final"]["test/knn_top1"] == one["final"]["test/knn_top1"]
    with pytest.raises(SystemExit):
        tr.parse_args(["--stop-after-steps", "3", "--loader", "torchvision"])


def test_config_file_and_cli_override(data: Path, tmp_path: Path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("method: barlow\nbarlow-lambda: 0.01\nepochs: 3\n")
    args = tr.parse_args(["--config", str(cfg), "--epochs", "1"])
    assert (args.method, args.barlow_lambda, args.epochs) == ("barlow", 0.01, 1)
    cfg.write_text('{"no_such_option": 1}')
    with pytest.raises(SystemExit):
        tr.parse_args(["--config", str(cfg)])


def test_yaml_config_without_pyyaml_says_what_to_install(tmp_path: Path, monkeypatch, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("epochs: 3\n")
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)  # import yaml now raises ImportError
    with pytest.raises(SystemExit):
        tr.parse_args(["--config", str(cfg)])
    err = capsys.readouterr().err
    assert "pip install pyyaml" in err and "fastssl_loader[train]" in err


def test_bad_input_errors_name_the_problem(data: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="missing"):
        run(tmp_path / "missing", tmp_path / "x")
    with pytest.raises(ValueError, match="batch"):
        run(data, tmp_path / "y", "--batch-size", "128")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        run(data, tmp_path / "z", "--resume", str(tmp_path / "nope.pt"))


def test_jpeg_fast_idct_flag_reaches_the_loader(data: Path, tmp_path: Path):
    """--jpeg-fast-idct builds the fastssl training loader with the fast IDCT (default: the accurate one)."""
    from fastssl_loader.ops import RandomResizedCrop
    from fastssl_loader.ssl_data import build_loader
    from fastssl_loader.writer import write_dataset
    source = tmp_path / "one.fssl"
    write_dataset(source, [(np.full((40, 40, 3), 90, np.uint8), 0)] * 4, mode="jpeg", num_workers=0, progress=False)
    for extra, expected in (([], False), (["--jpeg-fast-idct"], True)):
        args = tr.parse_args(["--data", str(data), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"),
                              "--batch-size", "2", "--workers", "1", *extra])
        loader = build_loader(args, source, None, [[RandomResizedCrop(16)]], True, torch.device("cpu"))
        assert loader.jpeg_fast_idct is expected
        loader.close()
