"""A file larger than the page cache: ``random`` against ``quasi_random`` order, images/s and bytes read from disk.

    python -m benches.beyond_ram --data big.fssl --cache-mib 512 --out bench_results/beyond_ram.json

Each run loads ``--batches`` batches (2 BYOL rung-1 views at 224 px) in a child process placed in its own
memory cgroup (cgroup v1, created under this process's memory cgroup). The child builds its Loader, takes
the first round of batches (compilation, buffers), then sets the cgroup's limit to its current usage plus
``--cache-mib``: from then on at most that much of the file can stay in its page cache. Before every run the
file's pages are evicted (``posix_fadvise(DONTNEED)``), so both orders start cold. Reported per run:
images/s and ``read_bytes`` from ``/proc/self/io`` (what the storage device delivered), also per image and
as a multiple of the bytes of the samples delivered (read amplification). The child first runs its code once
on a tiny file and locks what is mapped by then (``mlockall``), so that evicted library pages are not what
the limit makes it re-read. The orders alternate for
``--repeats`` rounds.

Without ``--data`` a file of ``--samples`` samples is built by repeating ``--photos`` (converted once: JPEG
q90, long side at most 512) and deleted at the end unless ``--keep``. Where no writable cgroup v1 memory
controller exists (not root, cgroup v2 only, a container without it) the script writes a JSON that says
so, prints why, and exits with status 0: it measures nothing then.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
_RESULT_TAG = "BEYOND_RAM_RESULT "


def own_memory_cgroup() -> Path | None:
    """This process's cgroup v1 memory folder if it exists and new groups can be made in it, else None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = CGROUP_ROOT / rel.lstrip("/")
            if (folder / "memory.limit_in_bytes").is_file() and os.access(folder, os.W_OK):
                return folder
    return None


def read_bytes() -> int:
    """Bytes this process caused to be fetched from the storage layer (``/proc/self/io``)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no read_bytes line")


def _warm_up_code(views: list) -> None:
    """Compile the views and run every code path once on a tiny throw-away file (JPEG decode included)."""
    import numpy as np

    from fastssl_loader import Loader, write_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warm.fssl"
        write_dataset(path, [(np.full((80, 96, 3), 40 * i, np.uint8), 0) for i in range(4)], mode="jpeg",
                      num_workers=0, progress=False)
        loader = Loader(str(path), 2, views, num_workers=1)
        for _ in loader:
            pass
        loader.close()


def _lock_memory() -> bool:
    """mlockall(MCL_CURRENT | MCL_ONFAULT): the code and memory mapped so far (torch, numba, compiled kernels)
    stay resident, so under the cgroup limit only the dataset file's pages compete for the page cache (without
    it, evicted library pages are read back from disk and swamp read_bytes). Mappings made later, such as the
    dataset's, are not locked. Returns False where the call is refused."""
    import ctypes

    mcl_current, mcl_onfault = 1, 4
    return ctypes.CDLL(None, use_errno=True).mlockall(mcl_current | mcl_onfault) == 0


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run inside ``args.cgroup`` (see the module docstring); returns the figures."""
    cgroup = Path(args.cgroup)
    (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    from benches.ladder import byol_rung
    from fastssl_loader import Loader

    views = byol_rung(1, 224)
    _warm_up_code(views)
    locked = _lock_memory()
    loader = Loader(args.data, args.batch_size, views, num_workers=args.workers, order=args.child,
                    seed=args.seed, return_indices=True)
    it = iter(loader)
    for _ in range(args.workers):  # the first round: buffers, threads
        next(it)
    usage = int((cgroup / "memory.usage_in_bytes").read_text())
    limit = usage + args.cache_mib * 2 ** 20
    (cgroup / "memory.limit_in_bytes").write_text(str(limit))
    io0, images, payload = read_bytes(), 0, 0
    start = time.perf_counter()
    for _ in range(args.batches):
        views, _labels, ids = next(it)
        images += int(views[0].shape[0])
        payload += int(loader.reader.sizes[ids.numpy()].sum())
    seconds = time.perf_counter() - start
    io = read_bytes() - io0
    loader.close()
    return {"order": args.child, "memory_locked": locked, "images": images, "seconds": seconds,
            "images_per_s": images / seconds,
            "read_mib": io / 2 ** 20, "read_kib_per_image": io / images / 1024,
            "payload_mib": payload / 2 ** 20, "read_amplification": io / payload if payload else None,
            "cgroup_limit_mib": limit / 2 ** 20, "usage_before_mib": usage / 2 ** 20,
            "max_usage_mib": int((cgroup / "memory.max_usage_in_bytes").read_text()) / 2 ** 20}


def run_child(args: argparse.Namespace, parent: Path, order: str, data: str, index: int) -> dict[str, Any]:
    """Make a fresh cgroup, evict the file, run one child measurement in it, remove the cgroup."""
    from benches.scale import drop_from_page_cache

    cgroup = parent / f"fsl-beyond-ram-{os.getpid()}-{index}"
    cgroup.mkdir()
    try:
        drop_from_page_cache(data)
        cmd = [sys.executable, "-m", "benches.beyond_ram", "--child", order, "--cgroup", str(cgroup), "--data", data,
               "--cache-mib", str(args.cache_mib), "--batches", str(args.batches), "--batch-size",
               str(args.batch_size), "--workers", str(args.workers), "--seed", str(index)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s,
                              cwd=Path(__file__).resolve().parent.parent)
        line = next((x for x in proc.stdout.splitlines() if x.startswith(_RESULT_TAG)), None)
        if proc.returncode != 0 or line is None:
            return {"order": order, "error": f"child exited {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}
        return json.loads(line[len(_RESULT_TAG):])
    finally:
        for _ in range(50):  # the child's exit is asynchronous to the cgroup's task list
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    from fastssl_loader.loader import usable_cores

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=str, help="a converted file much larger than --cache-mib (default: built)")
    p.add_argument("--photos", type=Path, default=Path(os.environ.get(
        "FASTSSL_SHARED_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data")) / "imagenet-sample")
    p.add_argument("--samples", type=int, default=40_000, help="samples of the built file (about 55 KiB each)")
    p.add_argument("--cache-mib", type=int, default=512, help="page cache allowed to the loader's process")
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="loader threads (default: usable cores)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of (random, quasi_random)")
    p.add_argument("--timeout-s", type=float, default=900)
    p.add_argument("--out", type=Path, default=Path("bench_results/beyond_ram.json"))
    p.add_argument("--keep", action="store_true", help="keep the built file")
    p.add_argument("--child", choices=("random", "quasi_random"), help=argparse.SUPPRESS)
    p.add_argument("--cgroup", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.workers = args.workers or usable_cores()
    if args.child:
        print(_RESULT_TAG + json.dumps(child(args)), flush=True)
        return 0

    from benches.report import machine_description, save_json

    parent = own_memory_cgroup()
    if parent is None:
        reason = (f"no writable cgroup v1 memory controller under {CGROUP_ROOT} for this process (needs root "
                  "and cgroup v1): the page cache cannot be limited, nothing was measured")
        print(f"beyond_ram: skipped: {reason}")
        save_json(args.out, {"skipped": reason, "machine": machine_description()})
        return 0
    work = Path(tempfile.mkdtemp(prefix="fsl-beyond-ram-"))
    try:
        data = args.data
        if data is None:
            from benches.repeat_data import write_repeated
            from fastssl_loader import write_dataset

            sources = sorted(x for x in args.photos.rglob("*") if x.suffix.lower() in (".jpg", ".jpeg"))
            photos = write_dataset(work / "photos.fssl", [(str(x), i) for i, x in enumerate(sources)], mode="jpeg",
                                   jpeg_quality=90, max_resolution=512, progress=False)
            data = write_repeated(photos.path, work / "big.fssl", args.samples).path
        size_mib = os.path.getsize(data) / 2 ** 20
        if size_mib < 2 * args.cache_mib:
            print(f"beyond_ram: warning: the file ({size_mib:.0f} MiB) is not much larger than --cache-mib")
        runs = []
        for r in range(args.repeats):
            for order in ("random", "quasi_random"):
                result = run_child(args, parent, order, data, len(runs))
                runs.append({"round": r, **result})
                if "error" in result:
                    print(f"{order}: failed: {result['error']}\n{result['stderr_tail']}")
                else:
                    print(f"{order:12s}: {result['images_per_s']:7.1f} images/s, read {result['read_mib']:8.1f} MiB "
                          f"({result['read_kib_per_image']:.0f} KiB/image, amplification "
                          f"{result['read_amplification']:.2f}x)")
        doc = {"file": data, "file_mib": size_mib, "cache_mib": args.cache_mib, "batches": args.batches,
               "batch_size": args.batch_size, "workers": args.workers, "views": "2 BYOL rung-1 views, 224 px",
               "cgroup_parent": str(parent), "runs": runs, "machine": machine_description()}
        save_json(args.out, doc)
        print(f"wrote {args.out}")
        return 0 if all("error" not in r for r in runs) else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
