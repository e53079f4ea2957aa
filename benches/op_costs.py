"""Microseconds per image of each colour/blur op at 224x224 and 96x96, on one core, beside torchvision v2.

Question answered: what does each pixel op cost per view, and is it small next to a JPEG decode?
Each op is timed on a natural photo (from ``../shared/data/imagenet-sample`` when present, else a smooth
synthetic image) resized to the size, with its parameters fixed to "fired" (blur sigma 1.0, and 2.0 for the
worst case of the SSL range (0.1, 2): the blur skips taps worth < 1e-4 levels, so its cost grows with sigma). The working image is refreshed
from the source before every call (the ops work in place); that copy is timed alone and subtracted.
Reported: the minimum thread CPU time and the median wall time over repeats (compile or cache-load time of
the first call reported separately); on a shared machine trust the CPU-time column more. torchvision v2 functional
on a uint8 CHW tensor with one torch thread is timed the same way for reference.

Run: ``python -m benches.op_costs [--repeats N] [--out bench_results/op_costs.json]``
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from benches.report import save_json
from fastssl_loader.ops.blur import blur_image
from fastssl_loader.ops.color import grayscale_kernel, jitter_kernel, solarize_image

SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample"
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


def timings_us(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median wall time, minimum thread CPU time) of ``fn()`` in microseconds.

    On a shared machine the wall median includes time slices lost to other processes; the thread CPU time
    minimum is the better estimate of the op's own cost, so both are reported.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    return float(np.median(wall) * 1e6), float(np.min(cpu) * 1e6)


def ours(src: np.ndarray) -> dict[str, Callable[[np.ndarray], None]]:
    """Our kernels, each a function of the working image."""
    full = jitter_params(brightness=1.3, contrast=0.7, saturation=1.15, hue=0.08)
    return {
        "brightness": lambda x: jitter_kernel(x, jitter_params(brightness=1.3)),
        "contrast": lambda x: jitter_kernel(x, jitter_params(contrast=0.7)),
        "saturation": lambda x: jitter_kernel(x, jitter_params(saturation=1.15)),
        "hue": lambda x: jitter_kernel(x, jitter_params(hue=0.08)),
        "jitter_all4": lambda x: jitter_kernel(x, full),
        "grayscale": lambda x: grayscale_kernel(x, np.ones(1)),
        "solarize": lambda x: solarize_image(x, 128.0),
        "blur_k23": lambda x: blur_image(x, 23, 1.0),
        "blur_k23_s2": lambda x: blur_image(x, 23, 2.0),
        "blur_k9": lambda x: blur_image(x, 9, 1.0),
    }


def theirs() -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """torchvision v2 functional equivalents on a uint8 CHW tensor."""
    def all4(t: torch.Tensor) -> torch.Tensor:
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
        "blur_k23": lambda t: TF.gaussian_blur(t, [23, 23], [1.0, 1.0]),
        "blur_k23_s2": lambda t: TF.gaussian_blur(t, [23, 23], [2.0, 2.0]),
        "blur_k9": lambda t: TF.gaussian_blur(t, [9, 9], [1.0, 1.0]),
    }


def measure(repeats: int) -> dict:
    """Per size and op: our microseconds per image and torchvision's."""
    torch.set_num_threads(1)
    results: dict = {}
    for size in SIZES:
        src = source_image(size)
        work = src.copy()
        tensor = torch.from_numpy(src).permute(2, 0, 1).contiguous()
        copy_wall, copy_cpu = timings_us(lambda: np.copyto(work, src), repeats)
        rows = {}
        reference = theirs()
        for name, kernel in ours(src).items():
            t0 = time.perf_counter()
            kernel(work)  # first call: compile or load from the Numba cache
            first_ms = (time.perf_counter() - t0) * 1e3

            def step() -> None:
                np.copyto(work, src)
                kernel(work)

            wall, cpu = timings_us(step, repeats)
            tv_wall, tv_cpu = timings_us(lambda: reference[name](tensor), max(repeats // 4, 5))
            ours_cpu = max(cpu - copy_cpu, 0.0)
            rows[name] = {"ours_cpu_min_us": round(ours_cpu, 1),
                          "ours_wall_median_us": round(max(wall - copy_wall, 0.0), 1),
                          "torchvision_cpu_min_us": round(tv_cpu, 1), "torchvision_wall_median_us": round(tv_wall, 1),
                          "speedup_cpu": round(tv_cpu / ours_cpu, 1) if ours_cpu > 0 else None,
                          "first_call_ms": round(first_ms, 1)}
        results[f"{size}x{size}"] = rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per op and size (median)")
    parser.add_argument("--out", default="bench_results/op_costs.json", help="where to save the JSON")
    args = parser.parse_args()
    results = measure(args.repeats)
    for size, rows in results.items():
        print(f"\n{size}  (us per image, one thread; CPU-time min and wall median of {args.repeats} calls)")
        print(f"{'op':<12}{'ours cpu':>10}{'ours wall':>11}{'tv cpu':>10}{'tv wall':>10}{'speedup':>9}"
              f"{'first call ms':>15}")
        for name, r in rows.items():
            print(f"{name:<12}{r['ours_cpu_min_us']:>10.1f}{r['ours_wall_median_us']:>11.1f}"
                  f"{r['torchvision_cpu_min_us']:>10.1f}{r['torchvision_wall_median_us']:>10.1f}"
                  f"{r['speedup_cpu'] or 0:>8.1f}x{r['first_call_ms']:>15.1f}")
    report = {"what": "microseconds per image per op, one thread, in-place uint8 HxWx3; torchvision v2 on CHW uint8",
              "jitter_all4": "brightness 1.3, contrast 0.7, saturation 1.15, hue 0.08, in that order",
              "repeats": args.repeats, "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                                   "load_avg": os.getloadavg()},
              "results": results}
    print(f"\nsaved {save_json(args.out, report)}")


if __name__ == "__main__":
    main()
