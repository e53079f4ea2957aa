"""ViewPlan: composition, determinism, multi-size views, progressive resolution without recompiling, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from fastssl_loader import ops, presets
from fastssl_loader.ops.crop import apply_box
from fastssl_loader.ops.flip import flip_kernel
from fastssl_loader.plan import ViewPlan
from fastssl_loader.progressive import ProgressiveResolution

MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def flip_plan() -> ViewPlan:
    """RRC to a non-square size, flip, normalise: compiled once for the module."""
    return ViewPlan([ops.RandomResizedCrop((24, 20)), ops.RandomHorizontalFlip(0.5), ops.Normalize(MEAN, STD)])


def _batch(shapes: list[tuple[int, int]], seed: int = 0):
    """Images of different sizes packed in one flat buffer, as the loader passes them."""
    gen = np.random.default_rng(seed)
    images = [gen.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    sizes = [im.size for im in images]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    src = np.concatenate([im.reshape(-1) for im in images])
    heights = np.array([h for h, _ in shapes], np.int64)
    widths = np.array([w for _, w in shapes], np.int64)
    return images, src, offsets, heights, widths


SHAPES = [(40, 50), (31, 33), (64, 48), (20, 90), (50, 50), (37, 41)]


def _sample(plan: ViewPlan, ids, heights, widths, seed=0, epoch=0, view=1) -> np.ndarray:
    params = np.zeros((len(ids), plan.num_params))
    plan.sample(np.asarray(ids, np.int64), heights, widths, seed, epoch, view, params)
    return params


def test_columns_and_sizes(flip_plan: ViewPlan) -> None:
    assert flip_plan.param_names == ["top", "left", "height", "width", "flip"]
    assert flip_plan.num_params == 5
    assert flip_plan.output_size(0) == (24, 20) == flip_plan.max_output_size
    assert flip_plan.normalize == (MEAN, STD)


def test_params_depend_only_on_seed_epoch_sample_view(flip_plan: ViewPlan) -> None:
    _, _, _, heights, widths = _batch(SHAPES)
    ids = np.arange(100, 100 + len(SHAPES))
    whole = _sample(flip_plan, ids, heights, widths)
    # same rows whatever the batch composition and order
    order = np.array([3, 0, 5, 1, 4, 2])
    np.testing.assert_array_equal(_sample(flip_plan, ids[order], heights[order], widths[order]), whole[order])
    np.testing.assert_array_equal(_sample(flip_plan, ids[2:3], heights[2:3], widths[2:3]), whole[2:3])
    # other epoch, seed or view: other crops
    assert not np.array_equal(_sample(flip_plan, ids, heights, widths, epoch=1), whole)
    assert not np.array_equal(_sample(flip_plan, ids, heights, widths, seed=1), whole)
    assert not np.array_equal(_sample(flip_plan, ids, heights, widths, view=2), whole)


def test_crop_boxes_are_the_sampled_boxes(flip_plan: ViewPlan) -> None:
    _, _, _, heights, widths = _batch(SHAPES)
    params = _sample(flip_plan, np.arange(len(SHAPES)), heights, widths)
    boxes = flip_plan.crop_boxes(params)
    assert boxes.dtype == np.int64
    np.testing.assert_array_equal(boxes, params[:, :4].astype(np.int64))
    assert np.all(boxes[:, 0] + boxes[:, 2] <= heights) and np.all(boxes[:, 1] + boxes[:, 3] <= widths)


def _reference(images, params, size) -> np.ndarray:
    """The same view op by op: geometry kernel, flip kernel, then HWC -> CHW."""
    out = []
    for img, row in zip(images, params):
        work = np.zeros(size + (3,), np.uint8)
        apply_box(img.reshape(-1), 0, img.shape[0], img.shape[1], img.shape[0], img.shape[1], row[:4], work,
                  True, False, True)
        flip_kernel(work, row[4:5])
        out.append(work.transpose(2, 0, 1))
    return np.stack(out)


def test_apply_equals_ops_one_by_one_and_torchvision(flip_plan: ViewPlan) -> None:
    images, src, offsets, heights, widths = _batch(SHAPES)
    params = _sample(flip_plan, np.arange(len(SHAPES)), heights, widths)
    params[:, 4] = np.arange(len(SHAPES)) % 2  # the kernels read the row: exercise both branches of the flip
    out = np.zeros((len(SHAPES), 3, 24, 20), np.uint8)
    flip_plan.apply(src, offsets, heights, widths, heights, widths, params, out, 0)
    np.testing.assert_array_equal(out, _reference(images, params, (24, 20)))
    for img, row, ours in zip(images, params, out):
        top, left, h, w = (int(v) for v in row[:4])
        ref = F.resized_crop(torch.from_numpy(img).permute(2, 0, 1), top, left, h, w, [24, 20], antialias=True)
        if row[4]:
            ref = F.horizontal_flip(ref)
        assert np.abs(ref.numpy().astype(int) - ours.astype(int)).max() <= 2


def test_float_output_is_torchvision_normalize(flip_plan: ViewPlan) -> None:
    _, src, offsets, heights, widths = _batch(SHAPES)
    params = _sample(flip_plan, np.arange(len(SHAPES)), heights, widths)
    out8 = np.zeros((len(SHAPES), 3, 24, 20), np.uint8)
    out32 = np.zeros((len(SHAPES), 3, 24, 20), np.float32)
    flip_plan.apply(src, offsets, heights, widths, heights, widths, params, out8, 0)
    flip_plan.apply(src, offsets, heights, widths, heights, widths, params, out32, 0)
    ref = F.normalize(torch.from_numpy(out8).float() / 255, list(MEAN), list(STD))
    np.testing.assert_allclose(out32, ref.numpy(), atol=1e-5, rtol=0)


def test_float_output_without_normalize_is_unit_range() -> None:
    plan = ViewPlan([ops.CenterCrop(16)])
    _, src, offsets, heights, widths = _batch([(16, 16), (20, 18)])
    params = _sample(plan, [0, 1], heights, widths)
    out8 = np.zeros((2, 3, 16, 16), np.uint8)
    out32 = np.zeros((2, 3, 16, 16), np.float32)
    plan.apply(src, offsets, heights, widths, heights, widths, params, out8, 0)
    plan.apply(src, offsets, heights, widths, heights, widths, params, out32, 0)
    assert plan.normalize is None
    np.testing.assert_allclose(out32, out8 / np.float32(255), atol=1e-6)


def test_downscaled_source_reads_mapped_boxes(flip_plan: ViewPlan) -> None:
    """src may be a 1/2-scale decode: the output stays close to the full-resolution one."""
    y, x = np.mgrid[0:64, 0:80]
    img = np.stack([y * 3, x * 2, (x + y) * 1.5], axis=-1).astype(np.uint8)
    half = img.reshape(32, 2, 40, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    heights, widths = np.array([64]), np.array([80])
    params = _sample(flip_plan, [7], heights, widths)
    full = np.zeros((1, 3, 24, 20), np.uint8)
    reduced = np.zeros((1, 3, 24, 20), np.uint8)
    flip_plan.apply(img.reshape(-1), np.array([0]), heights, widths, heights, widths, params, full, 0)
    flip_plan.apply(half.reshape(-1), np.array([0]), np.array([32]), np.array([40]), heights, widths, params,
                    reduced, 0)
    assert np.abs(full.astype(int) - reduced.astype(int)).mean() < 2.0


def test_progressive_resolution_does_not_recompile() -> None:
    schedule = ProgressiveResolution(16, 32, start_epoch=0, end_epoch=4, multiple_of=8)
    plan = ViewPlan([ops.RandomResizedCrop(schedule), ops.RandomHorizontalFlip()])
    assert plan.max_output_size == (32, 32)
    _, src, offsets, heights, widths = _batch(SHAPES[:3])
    buffer = np.zeros((3, 3) + plan.max_output_size, np.uint8)  # allocated once at the largest size
    sizes = []
    for epoch in range(6):
        h, w = plan.output_size(epoch)
        sizes.append(h)
        out = buffer.reshape(-1)[:3 * 3 * h * w].reshape(3, 3, h, w)
        params = _sample(plan, np.arange(3), heights, widths, epoch=epoch)
        plan.apply(src, offsets, heights, widths, heights, widths, params, out, epoch)
        assert out.any()
    assert sizes == [16, 16, 24, 32, 32, 32]  # 28 / 8 = 3.5 rounds half to even: 32
    assert len(plan._apply[np.dtype(np.uint8)].signatures) == 1
    assert len(plan._sample.signatures) == 1


def test_multi_size_views_from_one_buffer() -> None:
    """DINO-style: one decoded image, views of different sizes, each plan writes its own batch."""
    views = presets.dino(global_size=32, local_size=16, n_local=1, normalize=False, cifar=True)
    plans = [ViewPlan([v[0], v[1]]) for v in [views[0], views[2]]]
    _, src, offsets, heights, widths = _batch(SHAPES[:2])
    for plan, size in zip(plans, [(32, 32), (16, 16)]):
        assert plan.output_size(0) == size
        out = np.zeros((2, 3) + size, np.uint8)
        params = _sample(plan, [0, 1], heights, widths)
        plan.apply(src, offsets, heights, widths, heights, widths, params, out, 0)
        assert out.std() > 10


def test_full_byol_view_runs_and_records_every_op() -> None:
    """A complete BYOL view 2 (jitter, gray, blur, solarize) compiles into one plan and fills every column."""
    view = presets.byol(32, cifar=False)[1]
    plan = ViewPlan(view)
    assert plan.param_names[:5] == ["top", "left", "height", "width", "flip"]
    assert {"jitter", "gray", "blur", "solarize"} <= set(plan.param_names)
    shapes = [(40, 50)] * 8
    _, src, offsets, heights, widths = _batch(shapes)
    params = _sample(plan, np.arange(8), heights, widths)
    out = np.zeros((8, 3, 32, 32), np.float32)
    plan.apply(src, offsets, heights, widths, heights, widths, params, out, 0)
    assert np.isfinite(out).all() and out.std() > 0.1


def test_plan_rejects_bad_views() -> None:
    rrc = ops.RandomResizedCrop(8)
    flip = ops.RandomHorizontalFlip()
    norm = ops.Normalize()
    with pytest.raises(ValueError, match="geometry op"):
        ViewPlan([flip])
    with pytest.raises(ValueError, match="at least"):
        ViewPlan([])
    with pytest.raises(ValueError, match="second geometry"):
        ViewPlan([rrc, ops.CenterCrop(4)])
    with pytest.raises(ValueError, match="last"):
        ViewPlan([rrc, norm, flip])
    with pytest.raises(TypeError, match="not a fastssl_loader op"):
        ViewPlan([rrc, "flip"])



def test_apply_and_sample_reject_bad_buffers(flip_plan: ViewPlan) -> None:
    _, src, offsets, heights, widths = _batch(SHAPES[:2])
    params = _sample(flip_plan, [0, 1], heights, widths)
    with pytest.raises(ValueError, match=r"\[2, 3, 24, 20\]"):
        flip_plan.apply(src, offsets, heights, widths, heights, widths, params, np.zeros((2, 3, 20, 24), np.uint8), 0)
    with pytest.raises(ValueError, match="dtype"):
        flip_plan.apply(src, offsets, heights, widths, heights, widths, params, np.zeros((2, 3, 24, 20)), 0)
    with pytest.raises(ValueError, match="outside src"):
        flip_plan.apply(src[:100], offsets, heights, widths, heights, widths, params,
                        np.zeros((2, 3, 24, 20), np.uint8), 0)
    with pytest.raises(ValueError, match="float64"):
        flip_plan.sample(np.arange(2), heights, widths, 0, 0, 1, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="empty image"):
        flip_plan.sample(np.arange(2), np.array([5, 0]), widths, 0, 0, 1, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="view must be"):
        flip_plan.sample(np.arange(2), heights, widths, 0, 0, -1, np.zeros((2, 5)))


_CACHE_SCRIPT = """
import sys, numpy as np
from fastssl_loader import ops
from fastssl_loader.plan import ViewPlan
plan = ViewPlan([ops.RandomResizedCrop(8), ops.RandomHorizontalFlip(float(sys.argv[1]))])
params = np.zeros((16, plan.num_params))
sizes = np.full(16, 12, np.int64)
plan.sample(np.arange(16), sizes, sizes, 0, 0, 0, params)
print(int(params[:, 4].sum()), sum(plan._sample.stats.cache_hits.values()))
"""


@pytest.mark.slow
def test_driver_cache_is_reused_across_processes_and_keyed_by_arguments(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, FASTSSL_LOADER_CACHE=str(tmp_path))

    def run(p: str) -> tuple[int, int]:
        done = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT, p], env=env, capture_output=True, text=True,
                              timeout=300, check=True)
        flips, hits = done.stdout.split()
        return int(flips), int(hits)

    assert run("0.0") == (0, 0)       # compiled and written
    assert run("0.0") == (0, 1)       # loaded from the cache
    assert run("1.0") == (16, 0)      # other argument: other driver, never the stale one


_RAND_LINE = "    return float(next_u64(state) >> np.uint64(11)) * _TO_UNIT\n"


@pytest.mark.slow
def test_editing_a_helper_module_never_runs_stale_compiled_code(tmp_path) -> None:
    """rng.rand is two calls away from the flip sampler's driver (driver -> coin sampler -> sample_coin in
    ops/base.py -> rng.rand) and lives in another file: editing it must change the next process's result."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import fastssl_loader

    package = tmp_path / "copy" / "fastssl_loader"
    shutil.copytree(Path(fastssl_loader.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, FASTSSL_LOADER_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(package.parent))

    def flips() -> int:
        done = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT, "0.5"], env=env, capture_output=True,
                              text=True, timeout=300, check=True, cwd=tmp_path)
        return int(done.stdout.split()[0])

    before = flips()
    assert 0 < before < 16
    rng_file = package / "rng.py"
    assert _RAND_LINE in rng_file.read_text()
    rng_file.write_text(rng_file.read_text().replace(_RAND_LINE, "    return 0.0 * float(next_u64(state))\n"))
    assert flips() == 16  # rand() is now always 0 < p: every flip fires
    rng_file.write_text(rng_file.read_text().replace("    return 0.0 * float(next_u64(state))\n", _RAND_LINE))
    assert flips() == before  # and back


def test_an_unwritable_cache_warns_once_and_compiles_in_memory(tmp_path, monkeypatch) -> None:
    from fastssl_loader import plan as plan_module

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FASTSSL_LOADER_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(plan_module, "_warned_uncached", False)
    with pytest.warns(RuntimeWarning, match="not writable") as record:
        first = ViewPlan([ops.RandomResizedCrop(8), ops.RandomHorizontalFlip(0.5)])
        second = ViewPlan([ops.RandomResizedCrop(8), ops.RandomHorizontalFlip(0.25)])
    assert len([w for w in record if "not writable" in str(w.message)]) == 1
    assert first.driver_paths == [None, None, None] == second.driver_paths
    ids = np.arange(64)
    sizes = np.full(64, 12, np.int64)
    params = _sample(second, ids, sizes, sizes)
    assert 0 < params[:, 4].sum() < 64  # the in-memory driver runs


def test_plan_source_is_the_generated_driver(flip_plan: ViewPlan) -> None:
    assert "def sample_all(" in flip_plan.source and "def apply_all(" in flip_plan.source
    assert "kernel_1(work, row[4:5])" in flip_plan.source  # the flip's kernel on its column
    sample_path, *apply_paths = flip_plan.driver_paths  # the cached modules hold the same text
    assert "def sample_all(" in sample_path.read_text() and sample_path.name.startswith("fastssl_plan_sample_all_")
    for path, store in zip(apply_paths, ["store_uint8", "store_float"]):
        assert f"{store}(work, out[i], scale, shift)" in path.read_text()


_NO_JIT_SCRIPT = """
import sys, numpy as np
from fastssl_loader import DatasetReader, presets
from fastssl_loader.builder import BatchBuilder
from fastssl_loader.plan import compiled_plan
view = presets.byol(16, cifar=False)[1]  # every pixel op: flip, jitter, gray, blur, solarize
reader = DatasetReader(sys.argv[1])
builder = BatchBuilder(reader, [compiled_plan(view)], seed=3, dct_scale=True, batch_size=4)
out = np.empty(4 * 3 * 16 * 16, np.uint8)
built = builder.build(np.arange(4), 1, [out])
np.save(sys.argv[2], built.views[0])
np.save(sys.argv[3], built.params[0])
"""


@pytest.mark.slow
def test_a_batch_without_jit_equals_the_compiled_batch(tmp_path) -> None:
    """NUMBA_DISABLE_JIT=1 runs every kernel as plain Python (for pdb): the same uint8 pixels and parameters."""
    import os
    import subprocess
    import sys

    from fastssl_loader import write_dataset
    from tests.conftest import natural_image

    path = tmp_path / "tiny.fssl"
    write_dataset(path, [(natural_image(24 + 5 * i, 30 - 2 * i, seed=i), i) for i in range(4)], mode="jpeg",
                  num_workers=0, progress=False)
    results = {}
    for jit in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit)
        pixels, params = tmp_path / f"pixels{jit}.npy", tmp_path / f"params{jit}.npy"
        subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-c", _NO_JIT_SCRIPT, str(path),
                        str(pixels), str(params)], env=env, check=True, timeout=600, capture_output=True)
        results[jit] = np.load(pixels), np.load(params)
    compiled, python = results["0"], results["1"]
    assert compiled[0].shape == (4, 3, 16, 16) and compiled[0].std() > 5
    np.testing.assert_array_equal(python[1], compiled[1])
    np.testing.assert_array_equal(python[0], compiled[0])
