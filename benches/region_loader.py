"""Loader images/s with region-limited decoding on/off and the fast IDCT on/off, side by side, plus the decode limit.

Configurations (each the real :class:`fastssl_loader.Loader`, DCT scaling on, float32 CPU output):
``whole`` (``region_decode=False``), ``whole_fast_idct``, ``region`` (the default when the ``turbojpeg`` wheel is
installed), ``region_fast_idct``, and optionally ``baseline``: the Loader of another checkout of the project
(``--baseline-tree``, e.g. ``git archive <commit> | tar -x -C DIR``) with its defaults, to compare releases.

Every measurement runs in its own process (the baseline's package cannot share a process with this one):
compile (cached plans), one warm-up epoch, then ``--epochs`` timed epochs. Rounds interleave every
configuration and rung, and each round also measures the 2-thread accurate full-size decode limit of the
stored JPEGs (:func:`benches.decode_limit.decode_rate`), so every figure of a round shares the machine's
state; the report gives medians over rounds, and paired figures (per round: the best epoch's rate over the
reference's, or over that round's decode limit; then the median over rounds), which a shared machine's
changing load disturbs less, and the CPU time per image (process time of the loader's threads), which that
load disturbs least. The output
agreement check (one epoch, uint8, 1 worker) compares region against whole decoding (expected: identical)
and the fast IDCT against the accurate one.

``python -m benches.region_loader --data ../shared/data/imagenet-sample --limit 512 --baseline-tree DIR``
converts the first ``--limit`` JPEGs once (``--mode jpeg --max-resolution 512 --quality 90`` by default)
and writes JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {"whole": {"region_decode": False}, "whole_fast_idct": {"region_decode": False, "jpeg_fast_idct": True},
           "region": {"region_decode": True}, "region_fast_idct": {"region_decode": True, "jpeg_fast_idct": True}}

# Run in a child process whose PYTHONPATH is the tree under test: prints {"epoch_s": [...], "epoch_cpu_s": [...],
# "decoder": ...}; epoch_cpu_s is the process's CPU time (all threads), less sensitive to other processes' load.
_CHILD = """
import json, sys, time
from benches.ladder import byol_rung
import fastssl_loader as fsl
cfg = json.loads(sys.argv[1])
loader = fsl.Loader(cfg["path"], cfg["batch_size"], byol_rung(cfg["rung"], cfg["size"]), num_workers=cfg["workers"],
                    order="random", seed=0, drop_last=False, **cfg["loader_kw"])
loader.warmup()
times, cpu = [], []
for _ in range(1 + cfg["epochs"]):
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in loader:
        pass
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)
print(json.dumps({"epoch_s": times[1:], "epoch_cpu_s": cpu[1:],
                  "decoder": getattr(loader, "decoder", "simplejpeg (no region decoding)")}))
"""


def measure(tree: Path, path: Path, rung: int, loader_kw: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    """One child process's timed epochs of the Loader of ``tree`` on ``path``."""
    cfg = {"path": str(path), "batch_size": a.batch_size, "rung": rung, "size": a.size, "workers": a.workers,
           "epochs": a.epochs, "loader_kw": loader_kw}
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], env=env, cwd=tree, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"loader child ({tree}, {loader_kw}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(path: Path, size: int) -> dict[str, Any]:
    """Per pair of configurations: max |difference| and fraction of differing uint8 values over one epoch."""
    import torch

    from fastssl_loader import Loader, presets

    kw = {"batch_size": 64, "views": presets.byol(size), "num_workers": 1, "order": "sequential", "seed": 3,
          "dtype": torch.uint8, "drop_last": False}
    pairs = {"region_vs_whole": ({"region_decode": True}, {"region_decode": False}),
             "fast_idct_vs_accurate": ({"jpeg_fast_idct": True}, {"jpeg_fast_idct": False})}
    result = {}
    for name, (kw_a, kw_b) in pairs.items():
        worst, differ, total = 0, 0, 0
        for (va, _), (vb, _) in zip(Loader(path, **kw, **kw_a), Loader(path, **kw, **kw_b)):
            for a, b in zip(va, vb):
                d = (a.int() - b.int()).abs()
                worst, differ, total = max(worst, int(d.max())), differ + int((d > 0).sum()), total + d.numel()
        result[name] = {"max_abs_diff": worst, "fraction_differing": differ / total, "values": total}
    return result


def convert(a: argparse.Namespace) -> Path:
    """The converted file of the first ``--limit`` JPEGs of ``--data`` (written once, then reused)."""
    from fastssl_loader import write_dataset

    files = sorted(p for p in a.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))[:a.limit]
    if not files:
        raise SystemExit(f"no JPEG files under {a.data}")
    path = a.work_dir / f"{a.data.name}-{a.mode}-{a.max_resolution}-q{a.quality}-{len(files)}.fssl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_dataset(path, [(str(f), 0) for f in files], mode=a.mode, max_resolution=a.max_resolution,
                      jpeg_quality=a.quality, progress=False)
    return path


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from benches.decode_limit import decode_rate, stored_jpegs
    from benches.report import machine_description, save_json

    ap = argparse.ArgumentParser(description="Loader images/s: region decoding and fast IDCT on/off (two BYOL views)")
    ap.add_argument("--data", type=Path, required=True, help="folder of JPEGs (other files are ignored)")
    ap.add_argument("--limit", type=int, default=512, help="first N JPEGs (sorted paths)")
    ap.add_argument("--mode", choices=("jpeg", "passthrough", "auto"), default="jpeg")
    ap.add_argument("--max-resolution", type=int, default=512)
    ap.add_argument("--quality", type=int, default=90)
    ap.add_argument("--rungs", default="1,5", help="ladder rungs (benches.ladder): 1 crop+flip, 5 full BYOL")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per process (after one warm-up epoch)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-tree", type=Path, default=None, help="another checkout to measure as 'baseline'")
    ap.add_argument("--work-dir", type=Path, default=Path("bench_results/region_loader"))
    ap.add_argument("--out", type=Path, default=Path("bench_results/region_loader.json"))
    a = ap.parse_args(argv)
    path = convert(a)
    rungs = [int(r) for r in a.rungs.split(",")]
    trees = {name: (REPO, kw) for name, kw in CONFIGS.items()}
    if a.baseline_tree is not None:
        trees = {"baseline": (a.baseline_tree.resolve(), {}), **trees}
    payloads = stored_jpegs(str(path))
    epochs: dict[str, dict[str, list[float]]] = {str(r): {name: [] for name in trees} for r in rungs}
    best: dict[str, dict[str, list[float]]] = {str(r): {name: [] for name in trees} for r in rungs}  # per round
    cpu: dict[str, dict[str, list[float]]] = {str(r): {name: [] for name in trees} for r in rungs}
    limit: list[float] = []
    decoders: dict[str, str] = {}
    for k in range(a.rounds):
        limit.append(decode_rate(payloads, 2, 1, passes=3)["images_per_s"])
        for rung in rungs:
            for name, (tree, kw) in trees.items():
                got = measure(tree, path, rung, kw, a)
                epochs[str(rung)][name] += got["epoch_s"]
                best[str(rung)][name].append(len(payloads) / min(got["epoch_s"]))
                cpu[str(rung)][name] += got["epoch_cpu_s"]
                decoders[name] = got["decoder"]
                print(f"round {k} rung {rung} {name:18s} {best[str(rung)][name][-1]:8.1f} img/s", flush=True)
    images = len(payloads)
    rates = {r: {name: images / statistics.median(t) for name, t in by.items()} for r, by in epochs.items()}
    limit_rate = statistics.median(limit)
    reference = "baseline" if a.baseline_tree is not None else "whole"

    def paired(r: str, name: str, against: list[float]) -> float:
        """Median over rounds of this round's best epoch rate / ``against`` of the same round."""
        return statistics.median(x / y for x, y in zip(best[r][name], against))
    doc = {"machine": machine_description(), "args": {k: str(v) for k, v in vars(a).items()}, "images": images,
           "decoders": decoders, "images_per_s": rates,
           f"speedup_vs_{reference}": {r: {n: v / by[reference] for n, v in by.items()} for r, by in rates.items()},
           "decode_limit_2_threads_accurate_full": {"images_per_s": limit_rate, "per_round": limit},
           "ratio_to_decode_limit": {r: {n: v / limit_rate for n, v in by.items()} for r, by in rates.items()},
           f"paired_speedup_vs_{reference}": {r: {n: paired(r, n, by[reference]) for n in by}
                                               for r, by in best.items()},
           "paired_ratio_to_decode_limit": {r: {n: paired(r, n, limit) for n in by} for r, by in best.items()},
           "cpu_ms_per_image": {r: {n: 1e3 * statistics.median(t) / images for n, t in by.items()}
                                for r, by in cpu.items()},
           "best_epoch_images_per_s_per_round": best, "epoch_s": epochs, "agreement": agreement(path, a.size)}
    for r, by in rates.items():
        for name, rate in by.items():
            print(f"rung {r} {name:18s} {rate:8.1f} img/s (median)  paired: x{paired(r, name, best[r][reference]):.2f} "
                  f"vs {reference}, {paired(r, name, limit):.2f} of the decode limit "
                  f"(median {limit_rate:.0f} img/s, 2 threads); {doc['cpu_ms_per_image'][r][name]:.2f} CPU ms/image")
    print("agreement:", doc["agreement"])
    save_json(a.out, doc)
    return doc


if __name__ == "__main__":
    main()
