"""Decode less of each JPEG: fast IDCT, region-limited decode, DCT scale, on stored-size files and big originals.

``python -m benches.decode_region [--data DIR] [--big DIR] [--out FILE]`` measures, one thread, each time
the minimum of ``--repeats`` decodes of the same item, interleaved per item across configurations (on a
shared machine whole-pass timings mostly measure the neighbours):

* ``fast_idct``: pixel effect of libjpeg-turbo's fast integer IDCT against the accurate one (max and mean
  absolute difference, PSNR) on the photos of ``--data`` re-encoded at q90, max ``--max-resolution`` px (what
  the writer stores) and on the originals, at each DCT scale;
* ``backends``: whether the TurboJPEG binding's full decode equals simplejpeg's (same pixels?);
* ``stored``: images/s of every decode configuration on the re-encoded files, each sample's region being the
  union of two RandomResizedCrop(224, scale 0.08-1) boxes (drawn by the loader's own sampler) and its DCT
  scale the largest both views allow, with the speed-up over a full simplejpeg decode and over the DCT-scaled
  one (today's loader with dct_scale=True);
* ``big``: per big photo of ``--big`` (e.g. Debian's mate-backgrounds, 1.3-18 MP), its size, bits/pixel,
  baseline/progressive, and ms per decode of the same configurations (mean over ``--draws`` box draws of the
  per-draw minimum).

Writes everything as JSON (``--out``, default bench_results/decode_region.json). Needs the ``[turbo]`` extra.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benches.report import machine_description, save_json

Decoder = Callable[[Any, int, np.ndarray, np.ndarray], Any]  # (data, scale, box, out)


def configurations() -> dict[str, tuple[Decoder, bool]]:
    """name -> (decode function, whether it uses the per-sample DCT scale)."""
    from fastssl_loader import jpeg, turbo

    return {
        "simplejpeg_full": (lambda d, s, b, o: jpeg.decode_jpeg(d, out=o), False),
        "turbo_full": (lambda d, s, b, o: turbo.decode(d, 1, None, o, False), False),
        "simplejpeg_full_fast_idct": (lambda d, s, b, o: jpeg.decode_jpeg(d, out=o, fast_idct=True), False),
        "region": (lambda d, s, b, o: jpeg.decode_region(d, 1, b, o), False),
        "region_fast_idct": (lambda d, s, b, o: jpeg.decode_region(d, 1, b, o, fast_idct=True), False),
        "simplejpeg_dct": (lambda d, s, b, o: jpeg.decode_jpeg(d, scale=s, out=o), True),
        "dct_region": (lambda d, s, b, o: jpeg.decode_region(d, s, b, o), True),
        "dct_region_fast_idct": (lambda d, s, b, o: jpeg.decode_region(d, s, b, o, fast_idct=True), True),
    }


def reencoded(files: Sequence[Path], max_resolution: int, quality: int = 90) -> list[bytes]:
    """The files as the writer's jpeg mode stores them: RGB, capped to ``max_resolution``, re-encoded."""
    from fastssl_loader.images import cap_resolution, to_rgb
    from fastssl_loader.jpeg import encode_jpeg

    return [encode_jpeg(cap_resolution(to_rgb(str(f), name=str(f)), max_resolution), quality) for f in files]


def draw_views(shapes: np.ndarray, size: int = 224, views: int = 2, seed: int = 0,
               epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(union boxes int64 [n, 4], DCT scales int64 [n]) of ``views`` RandomResizedCrop(size) views per image."""
    from fastssl_loader import jpeg, ops
    from fastssl_loader.plan import compiled_plan

    n = len(shapes)
    ids, heights, widths = np.arange(n, dtype=np.int64), shapes[:, 0].copy(), shapes[:, 1].copy()
    boxes, ratio = [], np.full(n, np.inf)
    plan = compiled_plan([ops.RandomResizedCrop(size, scale=(0.08, 1.0))])
    for v in range(views):
        params = np.zeros((n, plan.num_params))
        plan.sample(ids, heights, widths, seed, epoch, v, params)
        box = plan.crop_boxes(params)
        boxes.append(box)
        ratio = np.minimum(ratio, np.minimum(box[:, 2] / size, box[:, 3] / size))
    return jpeg.union_box(boxes), jpeg.largest_scale(ratio)


def fast_idct_effect(payloads: Sequence[bytes], scales: Sequence[int] = (1, 2, 4, 8)) -> dict[str, Any]:
    """Per scale: max / mean |fast - accurate| over all pixels, PSNR of all pixels, worst image PSNR."""
    from fastssl_loader.jpeg import decode_jpeg

    out = {}
    for scale in scales:
        sq, ab, count, worst, mx, changed = 0.0, 0.0, 0, np.inf, 0, 0
        for data in payloads:
            a = decode_jpeg(data, scale=scale).astype(np.int16)
            d = np.abs(decode_jpeg(data, scale=scale, fast_idct=True).astype(np.int16) - a)
            mse = float(np.mean(d.astype(np.float64) ** 2))
            sq, ab, count = sq + mse * d.size, ab + float(d.sum()), count + d.size
            mx, changed = max(mx, int(d.max())), changed + int(mse > 0)
            if mse > 0:
                worst = min(worst, 10 * np.log10(255 ** 2 / mse))
        total_mse = sq / count
        out[str(scale)] = {"images": len(payloads), "images_changed": changed, "max_abs_diff": mx,
                           "mean_abs_diff": ab / count,
                           "psnr_db": 10 * np.log10(255 ** 2 / total_mse) if total_mse else None,
                           "worst_image_psnr_db": worst if np.isfinite(worst) else None}
    return out


def backend_identity(payloads: Sequence[bytes], scales: Sequence[int] = (1, 2, 4, 8)) -> dict[str, Any]:
    """How many images the TurboJPEG binding decodes exactly as simplejpeg, per scale and IDCT."""
    from fastssl_loader import jpeg, turbo

    res = {}
    for fast in (False, True):
        for scale in scales:
            same = sum(np.array_equal(turbo.decode(d, scale, None, None, fast)[0],
                                      jpeg.decode_jpeg(d, scale=scale, fast_idct=fast)) for d in payloads)
            res[f"scale{scale}{'_fast_idct' if fast else ''}"] = {"identical": int(same), "images": len(payloads)}
    return res


def min_times(configs: dict[str, tuple[Decoder, bool]], payloads: Sequence[bytes], scales: np.ndarray,
              boxes: np.ndarray, repeats: int) -> dict[str, np.ndarray]:
    """Seconds per (configuration, item): the minimum of ``repeats`` timed decodes after one untimed one.

    Interleaved per item (every configuration decodes item k, then every one decodes it again, ...), and the
    minimum keeps the undisturbed run: on a shared machine a whole-pass timing mostly measures the neighbours.
    """
    from fastssl_loader.jpeg import jpeg_shape

    out = np.empty(max(int(np.prod(jpeg_shape(d))) for d in payloads) * 3, np.uint8)
    best = {name: np.full(len(payloads), np.inf) for name in configs}
    for k, (data, box) in enumerate(zip(payloads, boxes)):
        for round_ in range(repeats + 1):
            for name, (decode, dct) in configs.items():
                start = time.perf_counter()
                decode(data, int(scales[k]) if dct else 1, box, out)
                t = time.perf_counter() - start
                if round_:
                    best[name][k] = min(best[name][k], t)
    return best


def stored_rates(payloads: Sequence[bytes], boxes: np.ndarray, scales: np.ndarray, repeats: int) -> dict[str, Any]:
    """images/s per configuration (sum over images of the per-image minimum time) and speed-ups."""
    from fastssl_loader.jpeg import jpeg_shape

    shapes = np.array([jpeg_shape(d) for d in payloads])
    best = min_times(configurations(), payloads, scales, boxes, repeats)
    rates = {name: len(payloads) / float(t.sum()) for name, t in best.items()}
    area = boxes[:, 2] * boxes[:, 3] / shapes.prod(1)
    return {"images": len(payloads), "mean_megapixels": float(shapes.prod(1).mean() / 1e6),
            "union_area_fraction_mean": float(area.mean()),
            "dct_scale_counts": {str(s): int((scales == s).sum()) for s in (1, 2, 4, 8)},
            "images_per_s": rates,
            "speedup_vs_simplejpeg_full": {k: v / rates["simplejpeg_full"] for k, v in rates.items()},
            "speedup_vs_simplejpeg_dct": {k: v / rates["simplejpeg_dct"] for k, v in rates.items()},
            "median_per_image_speedup_vs_simplejpeg_full": {
                k: float(np.median(best["simplejpeg_full"] / t)) for k, t in best.items()},
            "repeats_per_image": repeats}


BIG_CONFIGS = ("simplejpeg_full", "simplejpeg_dct", "dct_region", "dct_region_fast_idct")


def big_photos(files: Sequence[Path], draws: int, repeats: int, quality: int = 90) -> list[dict[str, Any]]:
    """Per photo: size, bits/pixel, layout, and ms per decode (mean over draws) of BIG_CONFIGS on the
    original and (``reencoded_*``) on the same pixels re-encoded as the writer's jpeg mode does (baseline,
    4:2:0, ``quality``, same size)."""
    from fastssl_loader import turbo
    from fastssl_loader.jpeg import decode_jpeg, encode_jpeg

    rows = []
    configs = {name: c for name, c in configurations().items() if name in BIG_CONFIGS}
    for f in files:
        data = f.read_bytes()
        head = turbo.header(data)
        h, w = head["height"], head["width"]
        boxes, scales = draw_views(np.array([[h, w]] * draws, np.int64), seed=1)
        best = min_times(configs, [data] * draws, scales, boxes, repeats)
        again = encode_jpeg(decode_jpeg(data), quality)
        best.update({f"reencoded_{k}": v for k, v in min_times(configs, [again] * draws, scales, boxes,
                                                                 repeats).items()})
        ms = {name: 1e3 * float(t.mean()) for name, t in best.items()}
        rows.append({"file": f.name, "height": h, "width": w, "megapixels": h * w / 1e6,
                     "bits_per_pixel": 8 * len(data) / (h * w), "progressive": bool(head["progressive"]),
                     "reencoded_bits_per_pixel": 8 * len(again) / (h * w),
                     "subsampling": ["444", "422", "420", "gray", "440", "411", "441"][head["subsampling"]]
                     if 0 <= head["subsampling"] < 7 else "unknown",
                     "dct_scales": [int(s) for s in scales],
                     "union_area_fraction_mean": float(np.mean(boxes[:, 2] * boxes[:, 3]) / (h * w)),
                     "ms_per_decode": ms,
                     "speedup_vs_full": {k: ms["simplejpeg_full"] / v for k, v in ms.items()},
                     "speedup_vs_dct": {k: ms["simplejpeg_dct"] / v for k, v in ms.items()}})
        print(f"{f.name:28s} {h*w/1e6:5.1f} MP {rows[-1]['bits_per_pixel']:4.2f} bpp "
              f"{'prog' if head['progressive'] else 'base'}  full {ms['simplejpeg_full']:7.1f} ms  "
              f"dct {ms['simplejpeg_dct']:6.1f}  dct+region {ms['dct_region']:6.1f}  "
              f"+fast {ms['dct_region_fast_idct']:6.1f}  re-encoded q{quality}: full "
              f"{ms['reencoded_simplejpeg_full']:6.1f} dct+region {ms['reencoded_dct_region']:6.1f}", flush=True)
    return rows


def policy_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per group of big photos (progressive / baseline above / below the re-encode threshold): the geometric
    mean speed-up over a full and a DCT-scaled decode of DCT + region on the original and on the re-encoded
    file, and of what :func:`fastssl_loader.reencode.reencode_pays` chooses."""
    from fastssl_loader.reencode import REENCODE_MIN_BITS_PER_PIXEL, reencode_pays

    def group(r: dict[str, Any]) -> str:
        if r["progressive"]:
            return "progressive"
        return "baseline_high_bpp" if r["bits_per_pixel"] > REENCODE_MIN_BITS_PER_PIXEL else "baseline_low_bpp"

    out: dict[str, Any] = {}
    for name in ("progressive", "baseline_high_bpp", "baseline_low_bpp", "all"):
        members = [r for r in rows if name in ("all", group(r))]
        if not members:
            continue
        res: dict[str, Any] = {"photos": [r["file"] for r in members]}
        for ref in ("simplejpeg_full", "simplejpeg_dct"):
            for label, pick in (("dct_region", lambda r: "dct_region"),
                                ("reencoded_dct_region", lambda r: "reencoded_dct_region"),
                                ("rule", lambda r: "reencoded_dct_region" if reencode_pays(
                                    r["height"], r["width"], round(r["bits_per_pixel"] * r["megapixels"] * 1e6 / 8),
                                    r["progressive"]) else "dct_region")):
                ratios = [r["ms_per_decode"][ref] / r["ms_per_decode"][pick(r)] for r in members]
                res[f"{label}_vs_{ref}"] = float(np.exp(np.mean(np.log(ratios))))
        out[name] = res
    return out


def _jpegs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/imagenet-sample")
    ap.add_argument("--big", type=Path, default=None, help="folder of big photos (e.g. mate-backgrounds)")
    ap.add_argument("--limit", type=int, default=1000, help="photos of --data used")
    ap.add_argument("--max-resolution", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--draws", type=int, default=4, help="box draws per big photo")
    ap.add_argument("--out", type=Path, default=Path("bench_results/decode_region.json"))
    a = ap.parse_args(argv)
    from fastssl_loader import jpeg, turbo

    if not turbo.available():
        raise SystemExit("benches.decode_region needs the turbojpeg wheel: pip install -e '.[turbo]'")
    doc: dict[str, Any] = {"machine": machine_description(), "args": {k: str(v) for k, v in vars(a).items()}}
    files = _jpegs(a.data)[:a.limit]
    if files:
        originals = [f.read_bytes() for f in files]
        stored = reencoded(files, a.max_resolution)
        doc["fast_idct"] = {"stored": fast_idct_effect(stored), "originals": fast_idct_effect(originals)}
        doc["backends"] = {"stored": backend_identity(stored), "originals": backend_identity(originals)}
        shapes = np.array([jpeg.jpeg_shape(d) for d in stored], np.int64)
        boxes, scales = draw_views(shapes)
        doc["stored"] = stored_rates(stored, boxes, scales, a.repeats)
        print("stored files, images/s (one thread):")
        for name, rate in doc["stored"]["images_per_s"].items():
            print(f"  {name:26s} {rate:8.0f}  x{doc['stored']['speedup_vs_simplejpeg_full'][name]:.2f} full"
                  f"  x{doc['stored']['speedup_vs_simplejpeg_dct'][name]:.2f} dct")
        save_json(a.out, doc)
        print("fast IDCT effect:", {k: {s: (v['max_abs_diff'], round(v['mean_abs_diff'], 3), v['psnr_db'] and
                                             round(v['psnr_db'], 1)) for s, v in d.items()}
                                    for k, d in doc["fast_idct"].items()})
    if a.big is not None:
        doc["big"] = big_photos(_jpegs(a.big), a.draws, a.repeats)
        doc["big_policy"] = policy_summary(doc["big"])
        print({k: {m: round(v, 2) for m, v in g.items() if m != "photos"} for k, g in doc["big_policy"].items()})
    save_json(a.out, doc)
    print(f"wrote {a.out}")
    return doc


if __name__ == "__main__":
    main()
