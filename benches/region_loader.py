"""Prototype: the loader's batch building with region-limited decoding (``jpeg.decode_region``), to port.

``RegionLoader`` is :class:`fastssl_loader.Loader` whose ``_build`` decodes, per JPEG sample, only the union
of its views' crop boxes at the DCT scale every view allows, then runs the unchanged view kernels on that
region. It exists to measure the loader-level gain and to show the batch builder exactly how to call
``decode_region``; it overrides private methods of ``Loader`` and is not part of the package API.

The mapping (what a builder must do), per JPEG sample i with stored size H x W and DCT scale s:

1. ``box = jpeg.union_box([plan.crop_boxes(p) for each view])[i]`` (stored pixels); use ``None`` (whole image)
   when some view's geometry op has ``clamp_to_box == False`` (Resize / CenterCrop read outside the box).
2. ``image, (ry, rx) = jpeg.decode_region(payload, s, box, out=dest, fast_idct=..., expect_shape=(H, W))``
   with ``dest`` sized for the whole scaled image (``jpeg.scaled_shape(H, W, s)``; the region never exceeds
   it, so the scratch layout need not wait for the decode).
3. Hand the kernels ``src_heights[i], src_widths[i] = image.shape[:2]`` AND ``heights[i], widths[i] =
   image.shape[:2]`` (so their src/stored ratio is exactly 1), and a COPY of the parameter rows whose crop
   box columns are mapped into the region: ``top' = top * (sh / H) - ry``, ``left' = left * (sw / W) - rx``,
   ``height' = height * (sh / H)``, ``width' = width * (sw / W)`` with (sh, sw) = ``scaled_shape(H, W, s)``
   (the same float expressions the kernel evaluates, shifted by an integer, so the taps are the same pixels).
   The caller's ``params`` (``return_params=True``) stay in stored-image coordinates.

``python -m benches.region_loader --data DIR [--mode jpeg|passthrough] [--max-resolution N]`` converts the
folder once and measures images/s of two BYOL views (224 px, float32, CPU) for Loader with dct_scale off and
on and RegionLoader (DCT + region, with and without the fast IDCT), interleaved epochs, median; it also
reports how many output values RegionLoader changes against Loader (DCT on, fast IDCT off). JSON to --out.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastssl_loader import jpeg
from fastssl_loader.errors import CorruptSampleError
from fastssl_loader.format import STORAGE_JPEG
from fastssl_loader.loader import Loader


class RegionLoader(Loader):
    """``Loader`` decoding only each sample's crop union (see the module docstring); ``fast_idct`` opt-in."""

    def __init__(self, *args, fast_idct: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_idct = bool(fast_idct)
        self._all_crop = all(plan.geometry.clamp_to_box for plan in self.plans)
        self._box_columns = [list(plan.geometry.crop_box_columns()) for plan in self.plans]

    def _build(self, buffers, outs, ids, epoch):
        reader, n = self.reader, len(ids)
        heights, widths = reader.heights[ids], reader.widths[ids]
        params = [p[:n] for p in buffers.params]
        for plan, p in zip(self.plans, params):
            plan.sample(ids, heights, widths, self.seed, epoch, p)
        is_jpeg = reader.storage[ids] == STORAGE_JPEG
        if not is_jpeg.any():  # all raw: read in place, as Loader does
            src, offsets, src_h, src_w = reader.data, reader.offsets[ids], heights, widths
            view_h, view_w, view_params = heights, widths, params
        else:
            src, offsets, src_h, src_w, view_h, view_w, view_params = self._decode_regions(
                buffers, ids, heights, widths, params, epoch, is_jpeg)
        views = []
        for plan, p, flat in zip(self.plans, view_params, outs):
            h, w = plan.output_size(epoch)
            out = flat[:n * 3 * h * w].reshape(n, 3, h, w)
            plan.apply(src, offsets, src_h, src_w, view_h, view_w, p, out, epoch)
            views.append(out)
        return views, params

    def _decode_regions(self, buffers, ids: np.ndarray, heights: np.ndarray, widths: np.ndarray,
                        params: Sequence[np.ndarray], epoch: int, is_jpeg: np.ndarray):
        reader = self.reader
        scales = self._dct_scales(params, epoch) if self.dct_scale else np.ones(len(ids), dtype=np.int64)
        boxes = jpeg.union_box([plan.crop_boxes(p) for plan, p in zip(self.plans, params)])
        full_h, full_w = heights.copy(), widths.copy()  # per sample: the whole (scaled) image's size
        for i in np.flatnonzero(is_jpeg):
            full_h[i], full_w[i] = jpeg.scaled_shape(heights[i], widths[i], int(scales[i]))
        nbytes = full_h * full_w * 3
        offsets = np.concatenate(([0], np.cumsum(nbytes)[:-1])).astype(np.int64)
        scratch = buffers.scratch(int(nbytes.sum()))
        src_h, src_w = heights.copy(), widths.copy()
        view_params = [p.copy() for p in params]
        for i, sample in enumerate(ids):
            start, size = int(reader.offsets[sample]), int(reader.sizes[sample])
            payload, dest = reader.data[start:start + size], scratch[offsets[i]:offsets[i] + nbytes[i]]
            if not is_jpeg[i]:
                dest[:] = payload
                continue
            box = boxes[i] if self._all_crop else None
            try:
                image, (ry, rx) = jpeg.decode_region(payload, int(scales[i]), box, dest, fast_idct=self.fast_idct,
                                                     expect_shape=(int(heights[i]), int(widths[i])))
            except ValueError as exc:
                raise CorruptSampleError(int(sample), str(exc), str(reader.path)) from exc
            src_h[i], src_w[i] = image.shape[:2]
            sy, sx = full_h[i] / heights[i], full_w[i] / widths[i]
            for p, (top, left, bh, bw) in zip(view_params, self._box_columns):
                p[i, top] = p[i, top] * sy - ry
                p[i, left] = p[i, left] * sx - rx
                p[i, bh] *= sy
                p[i, bw] *= sx
        src = scratch.view()
        src.flags.writeable = False
        return src, offsets, src_h, src_w, src_h, src_w, view_params


def _epoch(loader: Loader) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def agreement(path: str, batch_size: int, size: int) -> dict[str, Any]:
    """Max |difference| and fraction of differing uint8 values, RegionLoader vs Loader, one epoch."""
    import torch

    from fastssl_loader import presets

    kw = {"batch_size": batch_size, "views": presets.byol(size), "num_workers": 1, "order": "sequential",
          "dtype": torch.uint8, "drop_last": False, "seed": 3}
    worst, differ, total = 0, 0, 0
    for (a, _), (b, _) in zip(Loader(path, **kw), RegionLoader(path, **kw)):
        for va, vb in zip(a, b):
            d = (va.int() - vb.int()).abs()
            worst, differ, total = max(worst, int(d.max())), differ + int((d > 0).sum()), total + d.numel()
    return {"max_abs_diff": worst, "fraction_differing": differ / total, "values": total}


def _progressive(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as im:
        return bool(im.info.get("progressive", 0))


def _rule_source(path: Path) -> Any:
    """What the writer's auto mode would store under the proposed rule: the path (passed through) or the
    decoded pixels (re-encoded at the writer's quality)."""
    from PIL import Image

    from fastssl_loader.images import to_rgb
    from fastssl_loader.reencode import reencode_pays

    with Image.open(path) as im:
        height, width = im.height, im.width
    if reencode_pays(height, width, path.stat().st_size, _progressive(path)):
        return to_rgb(str(path), name=str(path))
    return str(path)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from benches.report import machine_description, save_json
    from fastssl_loader import presets, write_dataset

    ap = argparse.ArgumentParser(description="Loader vs RegionLoader images/s (two BYOL views)")
    ap.add_argument("--data", type=Path, required=True, help="folder of JPEGs (other files are ignored)")
    ap.add_argument("--mode", choices=("jpeg", "passthrough", "rule"), default="jpeg",
                    help="rule: pass through, except the originals reencode.reencode_pays picks (re-encoded)")
    ap.add_argument("--baseline-only", action="store_true", help="skip progressive JPEGs of --data")
    ap.add_argument("--copies", type=int, default=1, help="each photo this many times (longer epochs)")
    ap.add_argument("--max-resolution", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work-dir", type=Path, default=Path("bench_results/region_loader"))
    ap.add_argument("--out", type=Path, default=Path("bench_results/region_loader.json"))
    a = ap.parse_args(argv)
    files = sorted(p for p in a.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:a.limit]
    if a.baseline_only:
        files = [f for f in files if not _progressive(f)]
    files = files * a.copies
    path = a.work_dir / f"{a.data.name}-{a.mode}-{a.max_resolution}-{a.baseline_only}-{len(files)}.fssl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = [(_rule_source(f) if a.mode == "rule" else str(f), 0) for f in files]
        write_dataset(path, samples, mode="auto" if a.mode == "rule" else a.mode, max_resolution=a.max_resolution,
                      progress=False)
    kw = {"batch_size": a.batch_size, "views": presets.byol(a.size), "num_workers": a.workers, "drop_last": False}
    loaders = {"dct_off": Loader(path, dct_scale=False, **kw), "dct_on": Loader(path, **kw),
               "dct_region": RegionLoader(path, **kw), "dct_region_fast_idct": RegionLoader(path, fast_idct=True, **kw)}
    for loader in loaders.values():
        _epoch(loader)  # compile + warm-up
    times: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(a.rounds):
        for name, loader in loaders.items():
            times[name].append(_epoch(loader))
    rates = {name: len(files) / statistics.median(t) for name, t in times.items()}
    doc = {"machine": machine_description(), "args": {k: str(v) for k, v in vars(a).items()}, "images": len(files),
           "images_per_s": rates, "speedup_vs_dct_on": {k: v / rates["dct_on"] for k, v in rates.items()},
           "speedup_vs_dct_off": {k: v / rates["dct_off"] for k, v in rates.items()},
           "epoch_s": times, "agreement_with_loader": agreement(str(path), a.batch_size, a.size)}
    for name, rate in rates.items():
        print(f"{name:22s} {rate:8.1f} img/s  x{doc['speedup_vs_dct_on'][name]:.2f} vs dct_on")
    print("RegionLoader vs Loader (uint8):", doc["agreement_with_loader"])
    save_json(a.out, doc)
    return doc


if __name__ == "__main__":
    main()
