"""The GPU proof: one command that checks and measures the CUDA path on a GPU machine, within a time budget.

Sections (each guarded: a failure is recorded with its traceback and the next section still runs):

1. ``environment``: GPU, driver, CUDA / cuDNN / torch / torchvision / numba versions, CPU cores.
2. ``data``: the files used below, built on the machine from ``--data`` (a converted photo file, carried) or
   from synthetic photos (``benches/synthetic_data.py``) when absent: the photos repeated into a speed file
   and a 224-px training file, and shrunk to 32 x 32 raw for a CIFAR-sized training file.
3. ``cuda_tests``: ``pytest -m cuda`` on the test files holding CUDA-marked tests (a child process; the
   other test files need scipy, which the GPU machine lacks).
4. ``gpu_matches_cpu``, ``slot_reuse``, ``shutdown``: see :mod:`benches.device_correctness`.
5. ``decode_limit`` and ``loader_speed``: two BYOL views at 224 px, rungs 1 and 5, 1-16 workers, our Loader
   against torchvision's DataLoader, into the GPU (:mod:`benches.device_speed`).
6. ``training``: train_ref.py SimCLR, bf16 autocast, channels_last, ResNet-18 at 224 px, CIFAR ResNet-18 at
   32 px, ResNet-50 at 224 px while the budget lasts, with each loader (:mod:`benches.device_train`).

Everything goes to ``<out>/device_check.json`` (rewritten after every section, so a cut run keeps what it
finished) and a short ``<out>/summary.txt``. ``--budget-s`` (default 450) caps the whole run: each section
gets a cap and a watchdog ends the process (recording where it was) 20 s after the budget.

Prepare on the development machine (carried to the GPU machine: about 18 MiB, far below 64 MiB)::

    python -m benches.device_check --prepare .device
    # .device/imagenet300.fssl: 300 photos of ../shared/data/imagenet-sample, JPEG q90, long side <= 512
    # .device/wheels/: simplejpeg and pytest (+ its pure-Python deps) wheels for CPython 3.12 manylinux x86_64

Run on the GPU machine (one command; at most 450 s + 20 s by construction, pip install aside)::

    run(command="python -m pip install -q --no-index --find-links .device/wheels simplejpeg pytest; "
                "PYTHONPATH=. python -m benches.device_check --out $OUT --data .device/imagenet300.fssl",
        carry=[".device"], timeout_s=540)

(``;``, not ``&&``: the check runs and records what fails even if an install step did not work.) A missing
``--data`` file is replaced by synthetic photos, with a warning in the ``data`` section.

``--dry-run`` runs every section's code on the CPU with tiny sizes in about a minute once the kernels
are cached (the GPU-vs-CPU checks then compare the CPU loader with itself); tests/test_device_check.py
runs it so that this script cannot rot. ``--sections`` runs a subset (e.g. a second try of one section).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("environment", "data", "cuda_tests", "gpu_matches_cpu", "slot_reuse", "shutdown", "decode_limit",
            "loader_speed", "training")
WATCHDOG_GRACE_S = 20.0
PREPARE_PHOTOS = 300
WHEELS = ("simplejpeg", "pytest", "iniconfig", "pluggy", "pygments", "packaging")


@dataclass(frozen=True)
class Sizes:
    """Every size and cap of a run: the GPU machine's, or the dry run's tiny ones."""

    device: str
    view_size: int
    synthetic_photos: int
    max_resolution: int
    speed_samples: int
    train_samples: int
    small_samples: int
    check_batch: int
    check_workers: int
    speed_batch: int
    speed_workers: tuple[int, ...]
    fastssl_cap_s: float
    torchvision_cap_s: float
    decode_images: tuple[int, int]
    decode_passes: int
    train_workers: int
    matmul_side: int
    caps: dict[str, float] = field(default_factory=dict)
    train_configs: tuple[dict[str, Any], ...] = ()


GPU_SIZES = Sizes(
    device="cuda", view_size=224, synthetic_photos=300, max_resolution=512, speed_samples=16384,
    train_samples=4096, small_samples=25600, check_batch=32, check_workers=4, speed_batch=128,
    speed_workers=(1, 2, 4, 8, 16), fastssl_cap_s=2.0, torchvision_cap_s=3.0, decode_images=(600, 8000),
    decode_passes=2, train_workers=16, matmul_side=4096,
    caps={"environment": 20, "data": 60, "cuda_tests": 90, "gpu_matches_cpu": 60, "slot_reuse": 30, "shutdown": 20,
          "decode_limit": 20, "loader_speed": 130, "training": 300},
    train_configs=(
        dict(name="resnet18-224", arch="resnet18", size=224, file="train224", batch_size=256, epochs=6, cap_s=50),
        dict(name="cifar_resnet18-32", arch="cifar_resnet18", size=32, file="small32", batch_size=256, epochs=3,
             cap_s=45, extra=("--width", "64")),
        dict(name="resnet50-224", arch="resnet50", size=224, file="train224", batch_size=256, epochs=6, cap_s=50),
    ))

DRY_SIZES = Sizes(
    device="cpu", view_size=64, synthetic_photos=32, max_resolution=160, speed_samples=192, train_samples=64,
    small_samples=64, check_batch=4, check_workers=2, speed_batch=8, speed_workers=(1, 2), fastssl_cap_s=0.3,
    torchvision_cap_s=0.3, decode_images=(12, 48), decode_passes=1, train_workers=1, matmul_side=64,
    caps={"environment": 30, "data": 60, "cuda_tests": 120, "gpu_matches_cpu": 120, "slot_reuse": 60,
          "shutdown": 60, "decode_limit": 30, "loader_speed": 120, "training": 240},
    train_configs=(
        dict(name="small-32", arch="small", size=32, file="small32", batch_size=16, epochs=2, cap_s=120,
             extra=("--width", "8", "--projector", "64-32", "--threads", "1")),
    ))


class Run:
    """The JSON document, the budget, the watchdog and the guarded execution of each section."""

    def __init__(self, out: Path, budget_s: float, meta: dict[str, Any]) -> None:
        self.out = out
        self.start = time.monotonic()
        self.deadline = self.start + budget_s
        self.doc: dict[str, Any] = {"meta": {**meta, "budget_s": budget_s, "started_utc": _utc_now()},
                                    "sections": {}}
        self.current: str | None = None
        self._watchdog = threading.Timer(budget_s + WATCHDOG_GRACE_S, self._timeout)
        self._watchdog.daemon = True
        self._watchdog.start()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, cap_s: float, fn: Callable[[float], dict[str, Any]]) -> dict[str, Any] | None:
        """Run ``fn(section_deadline)``; record ok / failed (its ``passed`` is False) / error / skipped (its
        ``passed`` is None, or no time was left)."""
        cap = min(cap_s, self.left())
        if cap <= 1:
            self.doc["sections"][name] = {"status": "skipped", "reason": "time budget used up"}
            self.save()
            return None
        self.current = name
        print(f"[device_check] {name} (cap {cap:.0f} s, {self.left():.0f} s left)", flush=True)
        started = time.perf_counter()
        record: dict[str, Any]
        try:
            result = fn(time.monotonic() + cap)
            passed = result.get("passed", True)  # None: nothing could run within the budget
            record = {"status": "skipped" if passed is None else ("ok" if passed else "failed"), "result": result}
        except Exception as exc:  # noqa: BLE001 - recorded, the next section still runs
            result = None
            record = {"status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        record["seconds"] = time.perf_counter() - started
        self.doc["sections"][name] = record
        self.current = None
        self.save()
        print(f"[device_check] {name}: {record['status']} in {record['seconds']:.1f} s", flush=True)
        return result

    def save(self) -> None:
        from benches.report import save_json

        self.doc["meta"]["wall_s"] = time.monotonic() - self.start
        save_json(self.out / "device_check.json", self.doc)
        try:
            text = summary(self.doc)
        except Exception as exc:  # noqa: BLE001 - the JSON is what counts; never lose it to a digest bug
            text = f"summary failed ({type(exc).__name__}: {exc}); see device_check.json\n"
        (self.out / "summary.txt").write_text(text)

    def finish(self) -> None:
        self._watchdog.cancel()
        self.doc["meta"]["finished_utc"] = _utc_now()
        self.save()

    def _timeout(self) -> None:
        """Past the budget: record where the run was, stop the training children, end the process."""
        if self.current is not None:
            self.doc["sections"][self.current] = {"status": "error", "error": "watchdog: the section ran past "
                                                  f"the budget ({self.doc['meta']['budget_s']} s + {WATCHDOG_GRACE_S} s)"}
        self.doc["meta"]["watchdog_fired"] = True
        train = sys.modules.get("benches.device_train")
        if train is not None:
            train.stop_children()
        try:
            self.save()
        finally:
            os._exit(3)


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- sections ----------------------------------------------------------------------------------------------

def environment(device: str) -> dict[str, Any]:
    """GPU, driver and library versions, CPU cores (plus benches.report's machine description)."""
    import torch

    from benches.report import machine_description

    env: dict[str, Any] = {"machine": machine_description(), "torch_cuda": torch.version.cuda,
                           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                           "cuda_available": torch.cuda.is_available(), "python": platform.python_version()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = {"name": props.name, "memory_gib": props.total_memory / 2 ** 30,
                      "capability": f"{props.major}.{props.minor}", "count": torch.cuda.device_count()}
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
        env["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    env["passed"] = torch.cuda.is_available() if device == "cuda" else True
    return env


@dataclass
class DataFiles:
    photos: str
    speed: str
    train224: str
    small32: str
    notes: dict[str, Any]


def build_data(data: Path | None, work: Path, sizes: Sizes) -> DataFiles:
    """The photo file (given or synthetic) and the files repeated from it (see the module docstring)."""
    from benches.repeat_data import SquareThumbnail, write_repeated
    from fastssl_loader import DatasetReader, write_dataset

    notes: dict[str, Any] = {}
    if data is not None and not data.is_file():  # a one-shot run goes on with synthetic photos
        notes["warning"] = f"--data {data} does not exist: synthetic photos used instead"
        data = None
    if data is not None:
        photos = str(data)
        notes["photos"] = f"given: {data}"
    else:
        from benches.synthetic_data import SyntheticSpec, build_synthetic_imagefolder, list_images

        root = build_synthetic_imagefolder(work / "synthetic", SyntheticSpec(num_images=sizes.synthetic_photos),
                                           progress=False)
        photos = str(work / "photos.fssl")
        write_dataset(photos, [(str(f), i % 10) for i, f in enumerate(list_images(root))], mode="jpeg",
                      jpeg_quality=90, max_resolution=sizes.max_resolution, progress=False)
        notes["photos"] = "synthetic photo-like images (benches/synthetic_data.py), not real photos"
    r = DatasetReader(photos)
    notes["distinct_photos"] = len(r)
    notes["photo_megapixels_mean"] = float((r.heights * r.widths).mean() / 1e6)
    files = {"photos": photos}
    for name, n, transform in (("speed", sizes.speed_samples, None), ("train224", sizes.train_samples, None),
                               ("small32", sizes.small_samples, SquareThumbnail(32))):
        report = write_repeated(photos, work / f"{name}.fssl", n, transform=transform)
        files[name] = report.path
        notes[name] = {"samples": report.written, "mib": report.bytes / 2 ** 20, "seconds": report.seconds,
                       "storage": {k: v for k, v in report.storage_counts.items() if v}}
    return DataFiles(notes=notes, **files)


def cuda_tests(out: Path, deadline: float) -> dict[str, Any]:
    """``pytest -m cuda`` (child process) on the test files that hold CUDA-marked tests; counts from JUnit XML."""
    import xml.etree.ElementTree as ET

    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if "pytest.mark.cuda" in p.read_text(encoding="utf-8"))
    if not files:
        return {"files": [], "passed": False, "error": "no CUDA-marked tests found"}
    xml = out / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", f"--junitxml={xml}", *files]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=max(5.0, deadline - time.monotonic()))
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, output = None, f"timed out: {exc}"
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if xml.is_file():
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in counts}
    ran = counts["tests"] - counts["skipped"]
    return {"command": " ".join(cmd[1:]), "files": files, "returncode": rc, **counts, "ran": ran,
            "output_tail": output[-3000:], "junit_xml": xml.name}


# ---- summary -------------------------------------------------------------------------------------------------

def _fmt(x: Any, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def summary(doc: dict[str, Any]) -> str:
    """A short human-readable digest of the JSON document."""
    meta, sections = doc["meta"], doc["sections"]
    lines = [f"device_check {'(dry run, CPU) ' if meta.get('dry_run') else ''}"
             f"wall {meta.get('wall_s', 0):.0f} s of budget {meta['budget_s']:.0f} s"]
    env = sections.get("environment", {}).get("result") or {}
    if env:
        m = env.get("machine", {})
        gpu = env.get("gpu", {}).get("name", "no GPU")
        lines.append(f"{gpu}; {env.get('nvidia_smi', '')}; CUDA {env.get('torch_cuda')}; "
                     f"torch {m.get('versions', {}).get('torch')}; torchvision {m.get('versions', {}).get('torchvision')}"
                     f"; numba {m.get('versions', {}).get('numba')}; {m.get('usable_cores')} cores {m.get('cpu_model')}")
    lines.append("")
    for name in SECTIONS:
        s = sections.get(name)
        if s is None:
            continue
        lines.append(f"{name:16s} {s['status']:8s} {s.get('seconds', 0):6.1f} s  {s.get('error', '')}".rstrip())
    res = lambda name: sections.get(name, {}).get("result") or {}  # noqa: E731
    if res("cuda_tests"):
        c = res("cuda_tests")
        lines.append(f"\ncuda tests: {c['ran']} ran, {c['failures']} failed, {c['errors']} errors, "
                     f"{c['skipped']} skipped (rc {c['returncode']})")
    checks = (  # (section, its list of checked rows, what a row checked, the row's figures)
        ("gpu_matches_cpu", "combinations",
         lambda c: f"gpu==cpu {c['dtype']:15s} channels_last={c['channels_last']!s:5s}",
         lambda c: f"max|diff| {c['max_abs_diff']:.2e} bad {c['bad']}"),
        ("slot_reuse", "runs", lambda r: f"slot reuse {r['consumer']:14s}",
         lambda r: f"{r['batches']} batches, bad {r['bad_batches']}, GPU lag at end {r['final_sync_s']:.2f} s"),
        ("shutdown", "cases", lambda c: f"shutdown {c['how']:14s}",
         lambda c: f"threads left {len(c['worker_threads_alive'])}, "
                   f"tensors valid {c['tensors_valid_after_memory_reuse']}"))
    for section, rows, what, figures in checks:
        for row in res(section).get(rows, []):
            lines.append(f"{what(row)} {'PASS' if row['passed'] else 'FAIL'} {figures(row)}")
    for r in res("decode_limit").get("rates", []):
        lines.append(f"decode limit {r['threads']:2d} threads scale 1/{r['scale']}: {_fmt(r['images_per_s'])} images/s")
    speed = res("loader_speed")
    if speed.get("table"):
        lines.append(f"\nloader into {speed['device']} (images/s, 2 views {speed['size']} px, batch "
                     f"{speed['batch_size']}): rung workers fastssl torchvision speed-up")
        for row in speed["table"]:
            lines.append(f"  {row['rung']} {row['workers']:3d} {_fmt(row.get('fastssl')):>8s} "
                         f"{_fmt(row.get('torchvision')):>8s} {_fmt(row.get('speedup'), '.2f'):>6s}")
    train = res("training")
    if train.get("runs"):
        lines.append("\ntraining (SimCLR, bf16): config loader images/s data-wait epochs steps GPU-MiB status")
        for r in train["runs"]:
            mem = (r.get("gpu_memory") or {}).get("max_allocated_mib")
            lines.append(f"  {r['config']:18s} {r['loader']:11s} {_fmt(r.get('images_per_s')):>7s} "
                         f"{_fmt(r.get('data_wait_frac'), '.3f'):>6s} {r.get('epochs_done', 0):3d} "
                         f"{r.get('steps', 0):5d} {_fmt(mem):>7s} {r['status']}")
        for s in train.get("skipped", []):
            lines.append(f"  {s['config']:18s} {s['loader']:11s} skipped ({s['reason']})")
    return "\n".join(lines) + "\n"


# ---- preparing the carried data -------------------------------------------------------------------------------

def prepare(folder: Path, photos_root: Path, num_photos: int = PREPARE_PHOTOS) -> dict[str, Any]:
    """Write ``<folder>/imagenet300.fssl`` and download the wheels the GPU machine lacks (see the docstring)."""
    from fastssl_loader import write_dataset

    files = sorted(p for p in photos_root.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
    if len(files) < num_photos:
        raise SystemExit(f"{photos_root}: {len(files)} JPEGs, need {num_photos}")
    step = len(files) / num_photos
    chosen = [files[int(i * step)] for i in range(num_photos)]  # spread over the classes
    folder.mkdir(parents=True, exist_ok=True)
    report = write_dataset(folder / "imagenet300.fssl", [(str(f), i) for i, f in enumerate(chosen)], mode="jpeg",
                           jpeg_quality=90, max_resolution=512, progress=False)
    wheels = folder / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", *WHEELS, "--only-binary=:all:", "--python-version",
                    "3.12", "--platform", "manylinux2014_x86_64", "--no-deps", "-d", str(wheels)], check=True)
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    info = {"photos": report.written, "photos_mib": report.bytes / 2 ** 20,
            "wheels": sorted(p.name for p in wheels.glob("*.whl")), "total_mib": total / 2 ** 20,
            "source": str(photos_root)}
    (folder / "manifest.json").write_text(json.dumps(info, indent=2))
    if total > 48 * 2 ** 20:
        raise SystemExit(f"{folder} holds {total / 2 ** 20:.1f} MiB: too close to the 64 MiB carry limit")
    return info


# ---- main ------------------------------------------------------------------------------------------------------

def run_all(args: argparse.Namespace) -> dict[str, Any]:
    sizes = DRY_SIZES if args.dry_run else GPU_SIZES
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="device_check-", dir=args.work_dir))
    meta = {"argv": sys.argv[1:], "dry_run": args.dry_run, "device": sizes.device, "sizes": asdict(sizes),
            "work_dir": str(work)}
    run = Run(out, args.budget_s, meta)
    wanted = set(args.sections or SECTIONS)
    dev = sizes.device
    try:
        if "environment" in wanted:
            run.section("environment", sizes.caps["environment"], lambda _d: environment(dev))
        data = run.section("data", sizes.caps["data"],
                           lambda _d: {"files": asdict(build_data(args.data, work, sizes)), "passed": True})
        if data is not None:
            _measure(run, wanted, data["files"], work, sizes, args.dry_run)
    finally:
        try:
            _copy_train_logs(work / "train", out)
            run.finish()
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    return run.doc


def _measure(run: Run, wanted: set[str], files: dict[str, Any], work: Path, sizes: Sizes, dry_run: bool) -> None:
    """Every section after ``data``, in order; each imports what it needs inside its guard."""
    dev, size, out = sizes.device, sizes.view_size, run.out
    common = dict(batch_size=sizes.check_batch, num_workers=sizes.check_workers)

    def views() -> list:  # every op of the CUDA path: full BYOL
        from benches.ladder import byol_rung

        return byol_rung(5, size)

    def correctness(name: str) -> Callable[[float], dict[str, Any]]:
        def check(_deadline: float) -> dict[str, Any]:
            from benches import device_correctness as dc

            if name == "slot_reuse":
                return dc.slot_reuse(files["photos"], views(), dev, batch_size=max(4, sizes.check_batch // 2),
                                     num_workers=2, matmul_side=sizes.matmul_side)
            return getattr(dc, name)(files["photos"], views(), dev, **common)
        return check

    def decode(_deadline: float) -> dict[str, Any]:
        from benches.device_speed import decode_limit

        return decode_limit(files["speed"], max(sizes.speed_workers), *sizes.decode_images, sizes.decode_passes)

    def speed(deadline: float) -> dict[str, Any]:
        from benches.device_speed import loader_speed

        return loader_speed(files["speed"], files["photos"], work, size=size, rungs=(1, 5),
                            workers=sizes.speed_workers, batch_size=sizes.speed_batch, device=dev,
                            fastssl_cap_s=sizes.fastssl_cap_s, torchvision_cap_s=sizes.torchvision_cap_s,
                            deadline=deadline)

    def train(deadline: float) -> dict[str, Any]:
        from benches.device_train import training

        return training(sizes.train_configs, files, work / "train", REPO, device=dev, workers=sizes.train_workers,
                        deadline=deadline, min_run_s=5 if dry_run else 20)

    steps: dict[str, Callable[[float], dict[str, Any]]] = {
        "cuda_tests": lambda d: _cuda_tests_result(out, d, dry_run),
        "gpu_matches_cpu": correctness("gpu_matches_cpu"), "slot_reuse": correctness("slot_reuse"),
        "shutdown": correctness("shutdown"), "decode_limit": decode, "loader_speed": speed, "training": train}
    for name, fn in steps.items():
        if name in wanted:
            run.section(name, sizes.caps[name], fn)


def _cuda_tests_result(out: Path, deadline: float, dry_run: bool) -> dict[str, Any]:
    """On the GPU machine the CUDA tests must run and pass; on the CPU dry run they must skip cleanly."""
    r = cuda_tests(out, deadline)
    if dry_run:
        r["passed"] = r["returncode"] == 0 and r["failures"] == r["errors"] == 0
    else:
        r["passed"] = r["returncode"] == 0 and r["ran"] > 0 and r["failures"] == r["errors"] == 0
    return r


def _copy_train_logs(train_dir: Path, out: Path) -> None:
    """Keep each training run's log.jsonl and stderr (small) next to the JSON; checkpoints stay behind."""
    if not train_dir.is_dir():
        return
    for run_dir in sorted(p for p in train_dir.iterdir() if p.is_dir()):
        for name in ("log.jsonl", "stderr.txt"):
            src = run_dir / name
            if src.is_file():
                dst = out / "train" / run_dir.name / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benches.device_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="folder for device_check.json and summary.txt")
    p.add_argument("--data", type=Path, help="converted photo file (.fssl, JPEG); default: synthetic photos")
    p.add_argument("--budget-s", type=float, default=450.0, help="whole-run time budget (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: every section's code in seconds")
    p.add_argument("--sections", type=lambda s: [x for x in s.split(",") if x], help=f"subset of {','.join(SECTIONS)}"
                   " (data always runs)")
    p.add_argument("--work-dir", type=Path, default=None, help="where temporary files go (default: the system's)")
    p.add_argument("--keep", action="store_true", help="keep the temporary files (their folder is in the JSON)")
    p.add_argument("--prepare", type=Path, metavar="DIR", help="write the carried photo file and wheels into DIR "
                   "(run on the development machine) and exit")
    p.add_argument("--photos", type=Path, default=Path(os.environ.get("FASTSSL_SHARED_DATA", REPO.parent / "shared" /
                                                                        "data")) / "imagenet-sample",
                   help="source photos for --prepare (default: $FASTSSL_SHARED_DATA/imagenet-sample or %(default)s)")
    args = p.parse_args(argv)
    if args.prepare is None and args.out is None:
        p.error("--out is required (or --prepare DIR)")
    bad = sorted(set(args.sections or ()) - set(SECTIONS))
    if bad:
        p.error(f"unknown sections {bad}; choose from {','.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare is not None:
        print(json.dumps(prepare(args.prepare, args.photos), indent=2))
        return 0
    doc = run_all(args)
    print(summary(doc), end="")
    statuses = {name: s["status"] for name, s in doc["sections"].items()}
    return 0 if all(s == "ok" for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
