"""Microseconds per image of each colour/blur op at 224 and 96 px, one core, per git revision, beside torchvision v2.

Question answered: what does each pixel op cost per view, is it small next to a JPEG decode, and did a change
to the kernels make it cheaper? Each op is timed on a natural photo (from ``../shared/data/imagenet-sample``
when present, else a smooth synthetic image) resized to the size, with its parameters fixed to "fired" (blur
sigma 0.5, 1.0 and 2.0, the middle and top of the SSL range (0.1, 2): the blur skips taps worth < 1e-4 levels,
so its cost grows with sigma). The working image is refreshed from the source before every call (the ops work
in place); that copy is timed alone and subtracted. Reported: the minimum thread CPU time and the median wall
time over repeats (compile or cache-load time of the first call reported separately); on a shared machine
trust the CPU-time column more. torchvision v2 functional on a uint8 CHW tensor with one torch thread is timed
the same way for reference.

``--rev A --rev B`` times each git revision's ``fastssl_loader`` in its own single-threaded process (see
:mod:`benches.revisions`), keeping each figure's minimum over ``--rounds`` alternating rounds, and prints
the ratio of the first revision's time to the others'. ``WORKTREE`` (the default) is the working tree. Every
revision must have ``jitter_kernel``, ``grayscale_kernel``, ``solarize_image`` and ``blur_image`` (true since
the ops were written).

Run: ``python -m benches.op_costs [--rev 682adc4 --rev WORKTREE] [--repeats N] [--rounds R]
[--out bench_results/op_costs.json]``
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from benches.report import save_json, timings_us
from benches.revisions import REPO, best_of_rounds, git_commit, parse_arguments, revision_parser, run_worker

# ../shared/data as tests/conftest.py finds it (FASTSSL_SHARED_DATA overrides, e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("FASTSSL_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_DIR = SHARED_DATA / "imagenet-sample"
SIZES = (224, 96)


def source_image(size: int) -> np.ndarray:
    """A natural photo resized to size x size (or a smooth synthetic image when no sample data exists)."""
    photos = sorted(SAMPLE_DIR.glob("*.JPEG")) if SAMPLE_DIR.is_dir() else []
    if photos:
        bgr = cv2.imread(str(photos[0]), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1])
    yy, xx = np.mgrid[0:size, 0:size] / size
    noise = np.random.default_rng(0).normal(0, 12, (size, size, 3))
    img = np.stack([200 * xx + 30, 180 * yy + 40, 120 * (1 - xx * yy) + 60], axis=-1) + noise
    return np.clip(img, 0, 255).astype(np.uint8)


def jitter_params(**factors: float) -> np.ndarray:
    """A fired ColorJitter parameter row with the given factors, steps in the order b, c, s, h."""
    row = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0, 1, 2, 3], dtype=np.float64)
    for i, name in enumerate(("brightness", "contrast", "saturation", "hue")):
        if name in factors:
            row[1 + i] = factors[name]
    return row


def ours() -> dict[str, Callable[[np.ndarray], None]]:
    """Our kernels (of whichever ``fastssl_loader`` is importable), each a function of the working image."""
    from fastssl_loader.ops.blur import blur_image
    from fastssl_loader.ops.color import grayscale_kernel, jitter_kernel, solarize_image

    full = jitter_params(brightness=1.3, contrast=0.7, saturation=1.15, hue=0.08)
    return {
        "brightness": lambda x: jitter_kernel(x, jitter_params(brightness=1.3)),
        "contrast": lambda x: jitter_kernel(x, jitter_params(contrast=0.7)),
        "saturation": lambda x: jitter_kernel(x, jitter_params(saturation=1.15)),
        "hue": lambda x: jitter_kernel(x, jitter_params(hue=0.08)),
        "jitter_all4": lambda x: jitter_kernel(x, full),
        "grayscale": lambda x: grayscale_kernel(x, np.ones(1)),
        "solarize": lambda x: solarize_image(x, 128.0),
        "blur_k23_s0.5": lambda x: blur_image(x, 23, 0.5),
        "blur_k23": lambda x: blur_image(x, 23, 1.0),
        "blur_k23_s2": lambda x: blur_image(x, 23, 2.0),
        "blur_k9": lambda x: blur_image(x, 9, 1.0),
    }


def theirs() -> dict[str, Callable]:
    """torchvision v2 functional equivalents on a uint8 CHW tensor."""
    import torchvision.transforms.v2.functional as TF

    def all4(t):
        t = TF.adjust_brightness(t, 1.3)
        t = TF.adjust_contrast(t, 0.7)
        t = TF.adjust_saturation(t, 1.15)
        return TF.adjust_hue(t, 0.08)

    return {
        "brightness": lambda t: TF.adjust_brightness(t, 1.3),
        "contrast": lambda t: TF.adjust_contrast(t, 0.7),
        "saturation": lambda t: TF.adjust_saturation(t, 1.15),
        "hue": lambda t: TF.adjust_hue(t, 0.08),
        "jitter_all4": all4,
        "grayscale": lambda t: TF.rgb_to_grayscale(t, num_output_channels=3),
        "solarize": lambda t: TF.solarize(t, 128),
        "blur_k23_s0.5": lambda t: TF.gaussian_blur(t, [23, 23], [0.5, 0.5]),
        "blur_k23": lambda t: TF.gaussian_blur(t, [23, 23], [1.0, 1.0]),
        "blur_k23_s2": lambda t: TF.gaussian_blur(t, [23, 23], [2.0, 2.0]),
        "blur_k9": lambda t: TF.gaussian_blur(t, [9, 9], [1.0, 1.0]),
    }


def our_timings(repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per size and op: our minimum CPU and median wall microseconds per image, and the first call's ms."""
    results: dict = {}
    for size in SIZES:
        src = source_image(size)
        work = src.copy()
        copy_wall, copy_cpu = timings_us(lambda: np.copyto(work, src), repeats)
        rows = {}
        for name, kernel in ours().items():
            t0 = time.perf_counter()
            kernel(work)  # first call: compile or load from the Numba cache
            first_ms = (time.perf_counter() - t0) * 1e3

            def step() -> None:
                np.copyto(work, src)
                kernel(work)

            wall, cpu = timings_us(step, repeats)
            rows[name] = {"cpu_min_us": round(max(cpu - copy_cpu, 0.0), 1),
                          "wall_median_us": round(max(wall - copy_wall, 0.0), 1), "first_call_ms": round(first_ms, 1)}
        results[f"{size}x{size}"] = rows
    return results


def torchvision_timings(repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per size and op: torchvision v2's minimum CPU and median wall microseconds per image, one torch thread."""
    import torch

    torch.set_num_threads(1)
    results: dict = {}
    for size in SIZES:
        tensor = torch.from_numpy(source_image(size)).permute(2, 0, 1).contiguous()
        rows = {}
        for name, fn in theirs().items():
            fn(tensor)
            wall, cpu = timings_us(lambda: fn(tensor), repeats)
            rows[name] = {"cpu_min_us": round(cpu, 1), "wall_median_us": round(wall, 1)}
        results[f"{size}x{size}"] = rows
    return results


def measure(repeats: int) -> dict:
    """Per size and op, in this process (the importable ``fastssl_loader``): ours and torchvision's figures."""
    mine, reference = our_timings(repeats), torchvision_timings(max(repeats // 4, 5))
    results: dict = {}
    for size, rows in mine.items():
        results[size] = {}
        for name, r in rows.items():
            tv = reference[size][name]
            results[size][name] = {"ours_cpu_min_us": r["cpu_min_us"], "ours_wall_median_us": r["wall_median_us"],
                                   "torchvision_cpu_min_us": tv["cpu_min_us"],
                                   "torchvision_wall_median_us": tv["wall_median_us"],
                                   "speedup_cpu": round(tv["cpu_min_us"] / r["cpu_min_us"], 1)
                                   if r["cpu_min_us"] > 0 else None,
                                   "first_call_ms": r["first_call_ms"]}
    return results


def main() -> None:
    parser = revision_parser(__doc__, out="bench_results/op_costs.json", rounds=2)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per op and size (minimum CPU time)")
    args = parse_arguments(parser, lambda args: our_timings(args.repeats))
    revs = args.rev
    worker_args = ["--repeats", str(args.repeats)]
    results = best_of_rounds(revs, args.rounds, lambda root: run_worker(__file__, root, worker_args, one_thread=True))
    reference = torchvision_timings(max(args.repeats // 4, 5))
    for size in results[revs[0]]:
        print(f"\n{size}  (us per image, one thread; CPU-time min of {args.repeats} calls x {args.rounds} rounds)")
        print(f"{'op':<15}" + "".join(f"{rev[:12]:>14}" for rev in revs)
              + "".join(f"{'ratio ' + rev[:7]:>15}" for rev in revs[1:]) + f"{'torchvision':>13}{'speedup':>9}")
        for name in results[revs[0]][size]:
            cpus = [results[rev][size][name]["cpu_min_us"] for rev in revs]
            tv = reference[size][name]["cpu_min_us"]
            print(f"{name:<15}" + "".join(f"{c:>14.1f}" for c in cpus)
                  + "".join(f"{cpus[0] / c if c > 0 else float('nan'):>14.2f}x" for c in cpus[1:])
                  + f"{tv:>13.1f}{tv / cpus[-1] if cpus[-1] > 0 else float('nan'):>8.1f}x")
    report = {"what": "microseconds per image per op, one thread, in-place uint8 HxWx3; torchvision v2 on CHW "
                      "uint8; ratio = first rev / rev; speedup = torchvision / last rev",
              "jitter_all4": "brightness 1.3, contrast 0.7, saturation 1.15, hue 0.08, in that order",
              "repeats": args.repeats, "rounds": args.rounds,
              "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
              "revisions": {rev: {"commit": git_commit(rev), "results": results[rev]} for rev in revs},
              "torchvision": reference}
    print(f"\nsaved {save_json(args.out, report)}")


if __name__ == "__main__":
    main()
