"""Microseconds per image of one view's compiled kernel (``ViewPlan.apply``), on one core, per git revision.

Question answered: what does each view cost after the (single) JPEG decode, and did a change to the kernels
make it faster? Views: RandomResizedCrop(224) alone, the rung-1 view (RandomResizedCrop + flip + Normalize)
and both BYOL views (``presets.byol(224)``), each with uint8 and float32 (normalised) output. Inputs are real
photos from ``../shared/data/imagenet-sample`` decoded at their stored size (~500 x 375; a smooth synthetic
image set when absent), parameters drawn once with seed 0, so every revision renders exactly the same work.

Timing: one ``apply`` call renders all images; the minimum thread CPU time over ``--repeats`` calls, divided
by the number of images, is reported (on a shared machine CPU time is steadier than wall time; the wall-time
median is saved too). ``--rev A --rev B`` measures each git revision's ``fastssl_loader`` in its own process
(see :mod:`benches.revisions`), keeping each figure's minimum over ``--rounds`` alternating rounds, then prints
the ratios against the first revision. ``WORKTREE`` (the default) is the working tree. Compilation (or cache
loading) happens before timing.

Run: ``python -m benches.view_costs [--rev HEAD~1 --rev WORKTREE] [--images 64] [--repeats 7]
[--rounds 2] [--out bench_results/view_costs.json]``
"""
from __future__ import annotations

import os

import numpy as np

from benches.report import save_json, timings_us
from benches.revisions import REPO, best_of_rounds, git_commit, parse_arguments, revision_parser, run_worker

SAMPLE_DIR = REPO.parent / "shared" / "data" / "imagenet-sample"
SIZE = 224


def load_images(count: int) -> list[np.ndarray]:
    """``count`` photos decoded at their stored size (or synthetic 375 x 500 images when no data exists)."""
    from fastssl_loader.jpeg import decode_jpeg

    photos = sorted(SAMPLE_DIR.glob("*.JPEG"))[:count] if SAMPLE_DIR.is_dir() else []
    if photos:
        return [decode_jpeg(p.read_bytes()) for p in photos]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500] / 500
    base = np.stack([200 * xx + 30, 180 * yy + 40, 120 * (1 - xx * yy) + 60], axis=-1)
    return [np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def views() -> dict[str, list]:
    """Name -> op list of every measured view."""
    from fastssl_loader import presets
    from fastssl_loader.ops import IMAGENET_MEAN, IMAGENET_STD, Normalize, RandomHorizontalFlip, RandomResizedCrop

    byol = presets.byol(SIZE)
    return {"rrc224": [RandomResizedCrop(SIZE)],
            "rung1": [RandomResizedCrop(SIZE), RandomHorizontalFlip(0.5), Normalize(IMAGENET_MEAN, IMAGENET_STD)],
            "byol_view1": byol[0], "byol_view2": byol[1]}


def measure(images: list[np.ndarray], repeats: int) -> dict[str, dict[str, float]]:
    """Per view and output dtype: minimum CPU and median wall microseconds per image of ``apply``."""
    import inspect

    from fastssl_loader.plan import ViewPlan

    # revisions before plan sharing bound the view index at construction; later ones take it in sample()
    view_bound = "view_index" in inspect.signature(ViewPlan).parameters

    src = np.concatenate([im.reshape(-1) for im in images])
    sizes = np.array([im.size for im in images], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    heights = np.array([im.shape[0] for im in images], np.int64)
    widths = np.array([im.shape[1] for im in images], np.int64)
    n = len(images)
    results: dict[str, dict[str, float]] = {}
    for view_index, (name, ops) in enumerate(views().items()):
        view = view_index % 2
        plan = ViewPlan(ops, view) if view_bound else ViewPlan(ops)
        params = np.zeros((n, plan.num_params), np.float64)
        ids = np.arange(n, dtype=np.int64)
        if view_bound:
            plan.sample(ids, heights, widths, 0, 0, params)
        else:
            plan.sample(ids, heights, widths, 0, 0, view, params)
        for dtype in (np.uint8, np.float32):
            out = np.empty((n, 3, *plan.output_size(0)), dtype)

            def run() -> None:
                plan.apply(src, offsets, heights, widths, heights, widths, params, out, 0)

            run()  # compile or load from the cache
            wall_us, cpu_us = timings_us(run, repeats)
            results[f"{name}/{np.dtype(dtype).name}"] = {"cpu_min_us": cpu_us / n, "wall_median_us": wall_us / n}
    return results


def main() -> None:
    parser = revision_parser(__doc__, out="bench_results/view_costs.json", rounds=2)
    parser.add_argument("--images", type=int, default=64, help="photos rendered per apply call")
    parser.add_argument("--repeats", type=int, default=7, help="timed apply calls per view (minimum CPU time)")
    args = parse_arguments(parser, lambda args: measure(load_images(args.images), args.repeats))
    revs = args.rev
    worker_args = ["--images", str(args.images), "--repeats", str(args.repeats)]
    results = best_of_rounds(revs, args.rounds, lambda root: run_worker(__file__, root, worker_args, one_thread=True))
    keys = list(results[revs[0]])
    print(f"\nus per image per view (min thread CPU time of {args.repeats} calls x {args.rounds} rounds, "
          f"{args.images} photos, one thread)")
    print(f"{'view/out':<22}" + "".join(f"{rev[:14]:>16}" for rev in revs)
          + "".join(f"{'ratio ' + rev[:8]:>16}" for rev in revs[1:]))
    for key in keys:
        cpus = [results[rev][key]["cpu_min_us"] for rev in revs]
        print(f"{key:<22}" + "".join(f"{c:>16.1f}" for c in cpus)
              + "".join(f"{cpus[0] / c:>15.2f}x" for c in cpus[1:]))
    report = {"what": "microseconds per image of ViewPlan.apply (after decode), one thread; ratio = first rev / rev",
              "images": args.images, "repeats": args.repeats, "rounds": args.rounds,
              "machine": {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg()},
              "revisions": {rev: {"commit": git_commit(rev), "results": results[rev]} for rev in revs}}
    print(f"\nsaved {save_json(args.out, report)}")


if __name__ == "__main__":
    main()
