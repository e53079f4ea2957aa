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
