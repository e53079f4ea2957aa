"""How a figure is measured and reported: epoch timing, peak RSS, machine description, table, JSON, PNG.

A figure is one loader configuration run for one warm-up epoch (compilation, worker start-up, page cache)
plus ``epochs`` measured epochs; it reports the median images/s with its min/max, the warm-up separately,
and the peak resident memory of this process plus its child processes (worker processes of torchvision's
DataLoader count; pages shared between processes are counted once per process, so that sum is an upper
bound).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil


@dataclass
class Figure:
    """One measured configuration: every number that goes into the table, the JSON and the chart."""

    group: str            # "ladder", "scaling", "resolution", "dino", "ffcv", ...
    loader: str           # "fastssl", "torchvision-v1-pil", "torchvision-v2-tensor", "ffcv-1view", ...
    config: dict[str, Any]  # rung, storage, workers, size, views, blur implementation...
    images: int           # images per epoch
    epoch_s: list[float]  # measured epochs (warm-up excluded)
    warmup_s: float       # first epoch (includes compilation / worker start-up)
    compile_s: float | None = None
    peak_rss_mb: float | None = None

    @property
    def rates(self) -> list[float]:
        return [self.images / s for s in self.epoch_s if s > 0]

    @property
    def images_per_s(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")

    def to_json(self) -> dict[str, Any]:
        rates = self.rates
        return {**asdict(self), "images_per_s": self.images_per_s,
                "images_per_s_min": min(rates, default=float("nan")),
                "images_per_s_max": max(rates, default=float("nan")),
                "epoch_s_median": statistics.median(self.epoch_s) if self.epoch_s else float("nan")}


class PeakRSS:
    """Samples RSS (this process + children) in a background thread; ``peak_mb`` after the ``with`` block."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-rss")

    def sample(self) -> float:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # the child exited between listing and reading
                pass
        mb = total / 2 ** 20
        self.peak_mb = max(self.peak_mb, mb)
        return mb

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakRSS:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def measure_epochs(run_epoch: Callable[[], int], epochs: int) -> tuple[float, list[float], int, float]:
    """Run one warm-up epoch then ``epochs`` timed ones; ``run_epoch`` returns the images it delivered.

    Returns (warm-up seconds, measured epoch seconds, images per epoch, peak RSS in MiB).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    with PeakRSS() as rss:
        start = time.perf_counter()
        images = run_epoch()
        warmup = time.perf_counter() - start
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            n = run_epoch()
            times.append(time.perf_counter() - start)
            if n != images:
                raise RuntimeError(f"epoch delivered {n} images, the warm-up epoch {images}")
    return warmup, times, images, rss.peak_mb


def timings_us(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median wall time, minimum thread CPU time) of ``repeats`` calls of ``fn()``, in microseconds.

    On a shared machine the wall median includes time slices lost to other processes; the thread CPU time
    minimum is the better estimate of the code's own cost, so both are reported.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - t0)
    return statistics.median(wall) * 1e6, min(cpu) * 1e6


def count_images(batches: Iterable[Any], total: int | None = None, desc: str = "", progress: bool = True) -> int:
    """Consume an epoch of ``(views, ...)`` batches; return the number of images (rows of the first view)."""
    from tqdm import tqdm

    n = 0
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for batch in batches:
            views = batch[0]
            first = views[0] if isinstance(views, (list, tuple)) else views
            n += int(first.shape[0])
            bar.update(int(first.shape[0]))
    return n


def machine_description() -> dict[str, Any]:
    """CPU model, cores, memory, OS and library versions: what a reader needs to compare figures."""
    import importlib.metadata as md

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    import fastssl_loader

    versions: dict[str, str | None] = {"fastssl_loader": fastssl_loader.__version__}
    for pkg in ("numpy", "numba", "torch", "torchvision", "pillow", "simplejpeg",
                "opencv-python-headless", "ffcv"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    from fastssl_loader.cpu import usable_cores

    return {"cpu_model": cpu, "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
            "git_commit": _git_commit(),
            "physical_cores": psutil.cpu_count(logical=False),
            "memory_gb": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "os": platform.platform(), "python": platform.python_version(), "versions": versions,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _git_commit() -> str | None:
    """The repository's HEAD commit (None outside a git checkout), so a JSON file names the code it measured."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _config_text(config: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items() if k not in skip)


def format_table(figures: list[Figure], references: dict[str, float] | None = None) -> str:
    """A plain-text table, one row per figure; ``references`` adds 'x<name>' ratio columns."""
    references = references or {}
    header = ["group", "loader", "config", "img/s", "min-max", "epoch s", "warm-up s", "compile s", "RSS MiB"]
    header += [f"x {name}" for name in references]
    rows = [header]
    for f in figures:
        rates = f.rates
        row = [f.group, f.loader, _config_text(f.config), f"{f.images_per_s:,.0f}",
               f"{min(rates, default=0):,.0f}-{max(rates, default=0):,.0f}",
               f"{statistics.median(f.epoch_s):.2f}" if f.epoch_s else "-", f"{f.warmup_s:.2f}",
               f"{f.compile_s:.2f}" if f.compile_s is not None else "-",
               f"{f.peak_rss_mb:,.0f}" if f.peak_rss_mb else "-"]
        row += [f"{f.images_per_s / ref:.2f}" if ref else "-" for ref in references.values()]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_json(path: str | os.PathLike, doc: Any) -> Path:
    """Write ``doc`` as indented JSON at ``path`` atomically (folders created); every bench script saves this way."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
    return path


def write_json(path: str | os.PathLike, figures: list[Figure], **sections: Any) -> Path:
    """Write every figure plus extra sections (machine, decode limit, headline ratios...) as JSON."""
    return save_json(path, {"figures": [f.to_json() for f in figures], **sections})


def series_name(f: Figure) -> str:
    """A figure's loader with what it read: "(stored files)" / "(original files)" or our storage "(jpeg)"."""
    if "files" in f.config:
        return f"{f.loader} ({f.config['files']} files)"
    return f.loader + (f" ({f.config['storage']})" if "storage" in f.config else "")


def plot_ladder(path: str | os.PathLike, figures: list[Figure], title: str) -> Path | None:
    """Grouped bar chart: images/s per ladder rung (x) and every loader/file set (bars), with min-max whiskers."""
    ladder = [f for f in figures if f.group == "ladder"]
    if not ladder:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = sorted({f.config["rung"] for f in ladder})
    series: dict[str, dict[int, Figure]] = {}
    for f in ladder:
        series.setdefault(series_name(f), {})[f.config["rung"]] = f
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(rungs) + 2) + (3 if len(series) > 4 else 0), 4.5))
    for k, (name, by_rung) in enumerate(sorted(series.items())):
        xs = [i + (k - (len(series) - 1) / 2) * width for i, r in enumerate(rungs) if r in by_rung]
        figs = [by_rung[r] for r in rungs if r in by_rung]
        med = [f.images_per_s for f in figs]
        err = [[m - min(f.rates) for m, f in zip(med, figs)], [max(f.rates) - m for m, f in zip(med, figs)]]
        ax.bar(xs, med, width, yerr=err, capsize=2, label=name)
    from benches.ladder import RUNG_NAMES

    ax.set_xticks(range(len(rungs)), [f"{r}: {RUNG_NAMES[r]}" for r in rungs])
    ax.set_ylabel("images/s (two views)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, **(dict(loc="upper left", bbox_to_anchor=(1.01, 1.0)) if len(series) > 4 else {}))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
