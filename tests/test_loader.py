"""Loader: coverage, determinism (workers, world size, epochs), decode-once, DCT scaling, multi-size views,
progressive resolution, output dtypes, exact pixels through the whole pipeline, argument validation.

Compiling a view takes seconds, so the tests share a few views (equal views compile once per process).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numba.core.event import install_recorder

from fastssl_loader import DatasetReader, Loader, ProgressiveResolution, jpeg, write_dataset
from fastssl_loader.errors import DatasetFormatError
from fastssl_loader.format import STORAGE_JPEG, STORAGE_RAW
from fastssl_loader.plan import compiled_plan
from fastssl_loader.ops import CenterCrop, Normalize, RandomHorizontalFlip, RandomResizedCrop
from tests.conftest import write_mixed_dataset

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
BIG = [RandomResizedCrop(32), RandomHorizontalFlip(), Normalize(MEAN, STD)]
SMALL = [RandomResizedCrop(16, scale=(0.05, 0.4)), RandomHorizontalFlip()]
CENTER = [CenterCrop(24), Normalize(MEAN, STD)]
N = 46  # samples in mixed_file: not a multiple of the batch size 8 nor of the world size 3


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory) -> str:
    """N samples of varied sizes; mode auto stores <= 64x64 raw and the larger ones as JPEG."""
    path = write_mixed_dataset(str(tmp_path_factory.mktemp("loader") / "mixed.fssl"), N, seed=0, small_every=3,
                               classes=7)
    storage = DatasetReader(path).storage
    assert (storage == STORAGE_RAW).any() and (storage == STORAGE_JPEG).any()
    return path


def _epoch(loader: Loader) -> list[tuple]:
    """One epoch with every tensor cloned (CPU batches are only valid until the next one)."""
    return [([v.clone() for v in b[0]],) + tuple(x.clone() if torch.is_tensor(x) else x for x in b[1:])
            for b in loader]


@pytest.mark.parametrize("order", ["sequential", "random", "quasi_random"])
def test_epoch_covers_every_sample_once_with_matching_labels(mixed_file, order):
    loader = Loader(mixed_file, 8, [SMALL], num_workers=2, order=order, drop_last=False, return_indices=True)
    labels_of = DatasetReader(mixed_file).labels
    for epoch in range(2):
        batches = _epoch(loader)
        assert len(batches) == len(loader) == math.ceil(N / 8)
        indices = torch.cat([b[2] for b in batches]).numpy()
        np.testing.assert_array_equal(np.sort(indices), np.arange(N))
        np.testing.assert_array_equal(torch.cat([b[1] for b in batches]).numpy(), labels_of[indices])
        assert all(b[1].dtype == torch.int64 for b in batches)
        if order == "sequential":
            np.testing.assert_array_equal(indices, np.arange(N))
    assert loader.epoch == 1


def test_drop_last_drops_the_incomplete_batch(mixed_file):
    loader = Loader(mixed_file, 8, SMALL, num_workers=1, return_indices=True)  # one view given as an op list
    batches = _epoch(loader)
    assert len(batches) == len(loader) == N // 8
    assert all(len(b[2]) == 8 for b in batches)
    assert len(np.unique(torch.cat([b[2] for b in batches]).numpy())) == N // 8 * 8


def test_same_seed_same_batches_whatever_num_workers(mixed_file):
    runs = [_epoch(Loader(mixed_file, 8, [BIG, SMALL], num_workers=w, seed=3, drop_last=False,
                          return_indices=True, return_params=True)) for w in (1, 2)]
    assert len(runs[0]) == len(runs[1]) == math.ceil(N / 8)
    for a, b in zip(*runs):
        for va, vb in zip(a[0], b[0]):
            assert torch.equal(va, vb)
        assert torch.equal(a[2], b[2])
        for pa, pb in zip(a[3], b[3]):
            np.testing.assert_array_equal(pa, pb)


@pytest.mark.slow
def test_per_sample_augmentation_is_independent_of_world_size(mixed_file):
    """Each sample's parameters and pixels are the same on 1 rank and sharded over 3 ranks."""
    def per_sample(world: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        found = {}
        for rank in range(world):
            loader = Loader(mixed_file, 4, [SMALL], num_workers=1, seed=5, epoch=2, drop_last=False,
                            distributed=world > 1, rank=rank if world > 1 else None,
                            world_size=world if world > 1 else None, return_indices=True, return_params=True)
            for views, _, idx, params in _epoch(loader):
                for k, i in enumerate(idx.tolist()):
                    found[i] = (views[0][k].numpy(), params[0][k])
        return found

    one, three = per_sample(1), per_sample(3)
    assert set(one) == set(three) == set(range(N))
    for i in range(N):
        np.testing.assert_array_equal(one[i][1], three[i][1])
        np.testing.assert_array_equal(one[i][0], three[i][0])


def test_epochs_change_augmentations_and_set_epoch_replays(mixed_file):
    loader = Loader(mixed_file, 8, [SMALL], num_workers=2, order="sequential", return_params=True)
    first, second = _epoch(loader), _epoch(loader)  # epochs 0 then 1 (automatic advance)
    assert loader.epoch == 1
    assert not np.array_equal(first[0][2][0], second[0][2][0])
    loader.set_epoch(0)
    replay = _epoch(loader)
    assert loader.epoch == 0
    for a, b in zip(first, replay):
        assert torch.equal(a[0][0], b[0][0])
        np.testing.assert_array_equal(a[2][0], b[2][0])
    assert _epoch(loader) and loader.epoch == 1  # continues from the epoch that was set


@pytest.mark.parametrize("region_decode", [False, True])
def test_each_sample_is_decoded_once_for_all_views(mixed_file, monkeypatch, region_decode):
    reader = DatasetReader(mixed_file)
    start_of = {int(o): i for i, o in enumerate(reader.offsets)}
    decoded: list[int] = []
    loader = Loader(reader, 8, [BIG, SMALL, SMALL], num_workers=2, drop_last=False, return_indices=True,
                    region_decode=region_decode)
    if region_decode and loader.decoder != "turbojpeg-region":
        pytest.skip("turbojpeg wheel (extra [turbo]) not installed")
    name = "decode_region" if region_decode else "decode_jpeg"
    real = getattr(jpeg, name)

    def counting(data, *args, **kwargs):
        decoded.append(start_of[data.ctypes.data - reader.data.ctypes.data])
        return real(data, *args, **kwargs)

    loader.warmup()
    monkeypatch.setattr(jpeg, name, counting)
    _epoch(loader)
    assert sorted(decoded) == sorted(np.flatnonzero(reader.storage == STORAGE_JPEG).tolist())


def test_dct_scaling_decodes_smaller_and_keeps_the_picture(mixed_file, monkeypatch):
    """Views much smaller than their crops decode at 1/2..1/8 scale; pixels stay close to a full decode."""
    scales: list[int] = []
    real = jpeg.decode_jpeg

    def recording(data, *, scale=1, **kwargs):
        scales.append(scale)
        return real(data, scale=scale, **kwargs)

    runs = {}
    for dct in (False, True):  # whole-image decodes: region decoding gives the same pixels (test_region_loader)
        loader = Loader(mixed_file, 8, [SMALL], num_workers=1, dct_scale=dct, drop_last=False, region_decode=False)
        loader.warmup()
        scales.clear()
        monkeypatch.setattr(jpeg, "decode_jpeg", recording)
        runs[dct] = torch.cat([b[0][0] for b in _epoch(loader)])
        monkeypatch.setattr(jpeg, "decode_jpeg", real)
        assert (max(scales) > 1) == dct
    assert (runs[False] - runs[True]).abs().mean() < 4.0 / 255


def test_multi_size_views_in_one_batch(mixed_file):
    loader = Loader(mixed_file, 8, [BIG, SMALL, SMALL], num_workers=2)
    views, labels = next(iter(loader))
    assert [tuple(v.shape) for v in views] == [(8, 3, 32, 32)] + [(8, 3, 16, 16)] * 2
    assert labels.shape == (8,)
    assert not torch.equal(views[1], views[2])  # two views with the same ops draw different crops
    assert loader.param_names(0)[:4] == ["top", "left", "height", "width"]


def test_progressive_resolution_changes_size_without_reallocating(mixed_file):
    view = [RandomResizedCrop(ProgressiveResolution(16, 32, start_epoch=0, end_epoch=2, multiple_of=8))]
    loader = Loader(mixed_file, 8, [view], num_workers=1)
    sizes, pointers = [next(iter(loader))[0][0].shape[-1]], [loader._slots[0][0].ctypes.data]
    with install_recorder("numba:compile") as compiles:
        for _ in range(2):
            sizes.append(next(iter(loader))[0][0].shape[-1])
            pointers.append(loader._slots[0][0].ctypes.data)
    assert sizes == [16, 24, 32]
    assert pointers[0] == pointers[1] == pointers[2]  # the same buffers, reshaped
    assert not compiles.buffer, "a new output size recompiled a kernel"


def test_dtypes_and_layout_agree(mixed_file):
    def first(**kw) -> torch.Tensor:
        loader = Loader(mixed_file, 8, [CENTER], num_workers=1, **kw)
        return next(iter(loader))[0][0].clone()

    raw, f32 = first(dtype=torch.uint8), first()
    assert raw.dtype == torch.uint8 and f32.dtype == torch.float32
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(f32, (raw.float() / 255 - mean) / std, atol=1e-5, rtol=0)
    half = first(dtype=torch.float16, channels_last=True)
    assert half.dtype == torch.float16 and half.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(half.float(), f32, atol=2e-3, rtol=1e-3)
    bf16 = first(dtype=torch.bfloat16)
    torch.testing.assert_close(bf16.float(), f32, atol=3e-2, rtol=1e-2)


def _assert_exact_center_crops(path: str) -> None:
    """uint8 CenterCrop output == the decoded image's centre pixels, sample by sample."""
    reader, size = DatasetReader(path), CENTER[0].output_size(0)[0]
    loader = Loader(reader, 16, [CENTER], num_workers=2, order="random", dtype=torch.uint8,
                    drop_last=False, return_indices=True, return_params=True)
    names = loader.param_names(0)
    count = 0
    for views, _, idx, params in loader:
        for k, i in enumerate(idx.tolist()):
            top, left = (int(params[0][k, names.index(c)]) for c in ("top", "left"))
            expected = reader.image(i)[top:top + size, left:left + size].transpose(2, 0, 1)
            np.testing.assert_array_equal(views[0][k].numpy(), expected, err_msg=f"sample {i}")
            count += 1
    assert count == len(reader)


def test_pixels_are_exact_through_the_pipeline(mixed_file):
    _assert_exact_center_crops(mixed_file)


def test_pixels_are_exact_on_cifar(tmp_path, cifar10_dir):
    files = sorted(cifar10_dir.glob("train/*/*.jpg"))[::500][:60]
    assert files, f"no CIFAR-10 JPEGs under {cifar10_dir}/train"
    path = str(tmp_path / "cifar.fssl")
    write_dataset(path, [(f, i) for i, f in enumerate(files)], mode="jpeg", num_workers=0, progress=False)
    _assert_exact_center_crops(path)


def test_equal_views_share_one_compiled_plan():
    plan = compiled_plan([RandomResizedCrop(16, scale=(0.05, 0.4)), RandomHorizontalFlip()])
    assert compiled_plan(SMALL) is plan  # new op objects, same values
    assert compiled_plan([RandomResizedCrop(16, scale=(0.05, 0.5)), RandomHorizontalFlip()]) is not plan


def test_equal_views_of_one_loader_share_a_plan_but_not_their_randomness(mixed_file):
    loader = Loader(mixed_file, 8, [SMALL, list(SMALL), BIG], num_workers=1, order="sequential",
                    dtype=torch.uint8, return_params=True)
    assert loader.plans[0] is loader.plans[1] is compiled_plan(SMALL) and loader.plans[2] is not loader.plans[0]
    views, _, params = next(iter(loader))
    assert not np.array_equal(params[0], params[1])  # view 0 and view 1 draw from their own streams
    assert not torch.equal(views[0], views[1])
    # the view index keys the stream exactly as before plans were shared: (seed, epoch, sample, view)
    ids = np.arange(8, dtype=np.int64)
    reader = loader.reader
    for view in (0, 1):
        expected = np.zeros_like(params[view])
        compiled_plan(SMALL).sample(ids, reader.heights[ids], reader.widths[ids], 0, 0, view, expected)
        np.testing.assert_array_equal(params[view], expected)


def test_warmup_reports_compile_time_separately(mixed_file):
    loader = Loader(mixed_file, 8, [SMALL], num_workers=1)
    seconds = loader.warmup()
    assert seconds > 0 and loader.stats["compile_s"] == seconds
    assert loader.warmup() == seconds  # once per loader
    _epoch(loader)
    assert loader.stats["batches"] == len(loader)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size"),
    ({"order": "shuffled"}, "unknown order 'shuffled'"),
    ({"num_workers": 0}, "num_workers"),
    ({"seed": -1}, "seed"),
    ({"batches_ahead": 0}, "batches_ahead"),
    ({"views": []}, "views"),
    ({"views": [[]]}, r"views\[0\]"),
    ({"distributed": True}, "init_process_group"),
    ({"distributed": True, "rank": 2, "world_size": 2}, "rank must be < world_size"),
    ({"rank": 1}, "distributed=True"),
    ({"dtype": torch.int32}, "dtype"),
    ({"device": "tpu"}, "device"),
])
def test_bad_arguments_are_named(mixed_file, kwargs, message):
    args = {"batch_size": 4, "views": [SMALL], **kwargs}
    with pytest.raises(ValueError, match=message):
        Loader(mixed_file, **args)


def test_a_file_that_is_not_a_dataset_is_named(tmp_path):
    bogus = tmp_path / "notes.fssl"
    bogus.write_bytes(b"not a dataset at all" * 20)
    with pytest.raises(DatasetFormatError, match="notes.fssl"):
        Loader(str(bogus), 4, [SMALL])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_match_cpu(mixed_file):
    kwargs = {"batch_size": 8, "views": [BIG, SMALL], "num_workers": 2, "seed": 1, "batches_ahead": 1}
    cpu = _epoch(Loader(mixed_file, **kwargs))
    gpu = Loader(mixed_file, device="cuda", **kwargs)
    for _ in range(2):  # twice: slot reuse across epochs must not corrupt in-flight copies
        gpu.set_epoch(0)
        for a, (views, _) in zip(cpu, gpu):
            for va, vb in zip(a[0], views):
                assert vb.is_cuda
                torch.testing.assert_close(vb.cpu(), va, atol=1e-5, rtol=0)
