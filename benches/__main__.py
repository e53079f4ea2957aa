"""``python -m benches``: the SSL augmentation ladder, fastssl_loader against torchvision (and FFCV, DALI, SPDL).

With no ``--data`` it builds the default dataset offline (photo-like synthetic JPEGs, see
``benches/synthetic_data.py``; NOT ImageNet), converts it, measures the JPEG decode limit and runs the ladder
(two BYOL views at 224 px, rungs 1-5) for our loader and torchvision's DataLoader. It prints a table and writes
``<out>/bench.json`` (every figure + machine description) and ``<out>/ladder.png``.

Default: about 1000 images, 2 measured epochs, JPEG and raw storage: a few minutes on 2 cores.
``--quick``: a smoke run (128 images, 1 epoch, rungs 1 and 5). ``--full``: 3000 synthetic images, 3 epochs, all
storages, 224 and 160 px, DINO multi-crop, worker scaling, op costs. Any option given explicitly overrides these
presets. FFCV runs in every mode where ``import ffcv`` works or ``--ffcv-python`` names an interpreter that has it;
otherwise it is skipped with a message; DALI (``--dali-python``, every ladder rung, two forms) and SPDL
(``--spdl-python``, crop rung only) likewise. File-based peers read the stored JPEGs exported from the converted
JPEG file (the same bytes our loader decodes); torchvision reads those ("stored files") and the source images
("original files"). Delete --work-dir to rebuild cached datasets.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benches import ladder
from benches.report import Figure, machine_description, plot_ladder, write_json
from benches.results import Results, fastest_torchvision, ffcv_ratios, headline, report, target_checks

LOADERS = ("fastssl", "torchvision", "ffcv", "dali", "spdl")
FILE_SETS = ("original", "stored")
STORAGES = ("jpeg", "raw", "auto")
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(images=128, epochs=1, rungs=[1, 5], storage=["jpeg"], sizes=[224], batch_size=64,
                  scaling=False, dino=False, op_costs=False, decode_passes=1, one_view=False),
    "default": dict(images=1000, epochs=2, rungs=[1, 2, 3, 4, 5], storage=["jpeg", "raw"], sizes=[224],
                    batch_size=256, scaling=False, dino=False, op_costs=False, decode_passes=3, one_view=False),
    "full": dict(images=3000, epochs=3, rungs=[1, 2, 3, 4, 5], storage=list(STORAGES), sizes=[224, 160],
                 batch_size=256, scaling=True, dino=True, op_costs=True, decode_passes=3, one_view=True),
}


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _choice_list(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        items = [x for x in text.split(",") if x]
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}; got {text!r}")
        return items
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benches", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="ImageFolder (class sub-folders), flat folder of JPEGs (one class "
                   "per file-name prefix), or an existing converted .fssl file. Default: the synthetic dataset")
    p.add_argument("--work-dir", type=Path, default=Path("~/.cache/fastssl_loader/bench").expanduser(),
                   help="cache for the synthetic dataset and converted files (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="where JSON and PNG go")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smoke run: tiny data, 1 epoch, rungs 1 and 5")
    mode.add_argument("--full", action="store_true", help="everything: all storages, sizes, scaling, DINO")
    p.add_argument("--images", type=int, help="synthetic dataset size, or use the first N images of --data")
    p.add_argument("--epochs", type=int, help="measured epochs per figure (median reported), after 1 warm-up")
    p.add_argument("--rungs", type=_int_list, help="ladder rungs, e.g. 1,5 (1 crop+flip ... 5 +jitter)")
    p.add_argument("--loaders", type=_choice_list(LOADERS), default=list(LOADERS),
                   help="subset of fastssl,torchvision,ffcv,dali,spdl (peers run only where importable or given "
                   "their --X-python)")
    p.add_argument("--variants", type=_choice_list(("v1-pil", "v2-tensor")), default=["v1-pil", "v2-tensor"],
                   help="torchvision variants")
    p.add_argument("--torchvision-files", type=_choice_list(FILE_SETS), default=list(FILE_SETS),
                   help="torchvision reads the source images (original) and/or the stored JPEGs exported from "
                   "our jpeg file (stored: the same bytes as ours and the peers')")
    p.add_argument("--storage", type=_choice_list(STORAGES), help="our storage modes: jpeg,raw,auto")
    p.add_argument("--sizes", type=_int_list, help="output sides; the first is the ladder's, others: rungs 1/5")
    p.add_argument("--workers", type=int, default=None, help="worker threads/processes (default: usable cores)")
    p.add_argument("--batch-size", type=int, help="batch size of every loader (default 256; --quick 64)")
    p.add_argument("--scaling", action=argparse.BooleanOptionalAction, help="images/s for 1..N workers")
    p.add_argument("--dino", action=argparse.BooleanOptionalAction, help="DINO multi-crop 2x224 + 6x96")
    p.add_argument("--op-costs", action=argparse.BooleanOptionalAction, help="run benches.op_costs too")
    p.add_argument("--one-view", action=argparse.BooleanOptionalAction,
                   help="rung 1 with one view too, for every loader")
    p.add_argument("--max-resolution", type=int, default=512, help="conversion: longest stored side")
    p.add_argument("--jpeg-quality", type=int, default=90, help="conversion: JPEG quality")
    p.add_argument("--ffcv-python", help="interpreter that has ffcv installed (see benches/ffcv_baseline.py)")
    p.add_argument("--dali-python", help="interpreter that has nvidia-dali (see benches/dali_baseline.py)")
    p.add_argument("--spdl-python", help="interpreter that has spdl (see benches/spdl_baseline.py)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    a.images_given = a.images is not None
    preset = PRESETS["quick" if a.quick else "full" if a.full else "default"]
    for key, value in preset.items():
        if getattr(a, key, None) is None:
            setattr(a, key, value)
    from fastssl_loader.cpu import usable_cores

    a.workers = a.workers or usable_cores()
    for name in ("images", "epochs", "workers", "batch_size", "decode_passes"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    for r in a.rungs:
        if r not in ladder.RUNG_NAMES:
            p.error(f"--rungs: unknown rung {r}; choose from {sorted(ladder.RUNG_NAMES)}")
    if any(s < 8 for s in a.sizes):
        p.error("--sizes must be >= 8 pixels")
    if a.data is not None and not a.data.exists():
        p.error(f"--data {a.data} does not exist")
    return a


@dataclass
class Dataset:
    """The images every loader reads: files + labels for torchvision/FFCV, converted files for ours, and the
    stored JPEGs of our jpeg file exported for file-based peers (None without a JPEG-stored file)."""

    name: str
    files: list[str]
    labels: list[int]
    converted: dict[str, str]  # storage mode -> .fssl path
    info: dict[str, Any]
    stored_files: list[str] | None = None

    def file_sets(self) -> dict[str, list[str]]:
        """"original" (source images) and "stored" (exported payloads); a given .fssl file has only "stored"."""
        sets = {} if "file" in self.converted else {"original": self.files}
        if self.stored_files is not None:
            sets["stored"] = self.stored_files
        return sets


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _source_samples(a: argparse.Namespace) -> tuple[str, list[tuple[str, int]], dict[str, Any]]:
    """(name, [(file, label)], info) of the source images."""
    from fastssl_loader.sources.imagefolder import list_flat_samples, list_samples

    if a.data is None:
        from benches.synthetic_data import SyntheticSpec, build_synthetic_imagefolder

        spec = SyntheticSpec(num_images=a.images)
        root = build_synthetic_imagefolder(a.work_dir, spec, workers=a.workers, progress=not a.no_progress)
        samples, _ = list_samples(root)
        return spec.folder_name, samples, {"source": "synthetic (benches/synthetic_data.py; not ImageNet)",
                                           "root": str(root)}
    root = a.data.resolve()
    has_classes = any(e.is_dir() for e in os.scandir(root))
    samples, _ = list_samples(root) if has_classes else list_flat_samples(root)
    samples = samples[:a.images] if a.images_given else samples
    digest = _digest(str(root), sum(os.stat(f).st_size for f, _ in samples))
    return f"{root.name}-{digest}-n{len(samples)}", samples, {"source": str(root), "layout":
                                                                "imagefolder" if has_classes else "flat"}


def _digest(*parts: Any) -> str:
    """Short cache key: converted files are reused only for the same source path and content size."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:8]


def prepare_data(a: argparse.Namespace) -> Dataset:
    """Build/locate the source images and convert them once per storage mode (cached in --work-dir)."""
    from benches.stored_export import export_stored_jpegs
    from fastssl_loader import write_dataset

    if a.data is not None and a.data.is_file():
        stat = a.data.stat()
        name = f"{a.data.stem}-{_digest(str(a.data.resolve()), stat.st_size, stat.st_mtime_ns)}"
        samples = export_stored_jpegs(a.data, a.work_dir / f"{name}-export", a.jpeg_quality)
        files = [s[0] for s in samples]
        return Dataset(name, files, [s[1] for s in samples], {"file": str(a.data)},
                       {"source": str(a.data), "note": "converted file used as given; storage modes do not apply"},
                       stored_files=files)
    name, samples, info = _source_samples(a)
    if not samples:
        raise SystemExit(f"no images found in {a.data}")
    converted, conversions = {}, {}
    folder = a.work_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for mode in a.storage:
        dst = folder / f"{mode}-r{a.max_resolution}-q{a.jpeg_quality}.fssl"
        if not dst.is_file():
            _log(f"converting {len(samples)} images -> {dst} ({mode})")
            report = write_dataset(dst, samples, mode=mode, max_resolution=a.max_resolution,
                                   jpeg_quality=a.jpeg_quality, progress=not a.no_progress)
            conversions[mode] = {"seconds": report.seconds, "bytes": report.bytes,
                                 "images_per_s": report.images_per_second, "storage": report.storage_counts}
        converted[mode] = str(dst)
        conversions.setdefault(mode, {})["file_bytes"] = dst.stat().st_size
    info["conversion"] = conversions
    stored = None
    if "jpeg" in converted:
        exported = export_stored_jpegs(converted["jpeg"], Path(converted["jpeg"]).with_suffix(".export"),
                                       a.jpeg_quality)
        if [s[1] for s in exported] != [s[1] for s in samples]:
            raise RuntimeError(f"labels of {converted['jpeg']} differ from the source's: delete it and rerun")
        stored = [s[0] for s in exported]
    return Dataset(name, [s[0] for s in samples], [s[1] for s in samples], converted, info, stored_files=stored)


class Bench:
    """Runs the selected measurements, collecting figures."""

    def __init__(self, a: argparse.Namespace, data: Dataset) -> None:
        self.a, self.data = a, data
        self.figures: list[Figure] = []
        self.blur: dict[str, str] = {}
        self.blur_timings: dict[str, dict[str, float]] = {}
        self.peer_status: dict[str, str] = {}
        self.progress = not a.no_progress

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        compile_s = f", compile {fig.compile_s:.1f} s" if fig.compile_s is not None else ""
        _log(f"  {fig.group:10s} {fig.loader:22s} {fig.config}: {fig.images_per_s:,.0f} img/s "
             f"(warm-up {fig.warmup_s:.1f} s{compile_s})")
        return fig

    def storages(self) -> dict[str, str]:
        return self.data.converted

    def jpeg_storage(self) -> str | None:
        """The converted file stored as JPEG: our 'jpeg' mode, or a given .fssl file."""
        return next((k for k in ("jpeg", "file") if k in self.data.converted), None)

    def choose_blurs(self) -> None:
        from benches.torchvision_baseline import choose_blur

        spec = ladder.byol_rung(2, self.a.sizes[0])[0]
        for variant in self.a.variants:
            self.blur[variant], self.blur_timings[variant] = choose_blur(self.data.files, spec, variant)
            _log(f"torchvision {variant}: blur ms/image {self.blur_timings[variant]} -> {self.blur[variant]}")

    def torchvision(self, views: list[ladder.View], group: str, config: dict[str, Any],
                    workers: int | None = None, variants: list[str] | None = None,
                    file_sets: list[str] | None = None) -> None:
        """Each variant on each selected file set ("original" / "stored"); the figure's config names the set."""
        from benches.torchvision_baseline import run_torchvision

        available = self.data.file_sets()
        for files in file_sets or self.a.torchvision_files:
            if files not in available:
                continue
            for variant in variants or self.a.variants:
                self.add(run_torchvision(available[files], self.data.labels, views, variant=variant,
                                         blur=self.blur.get(variant, "torchvision"), batch_size=self.a.batch_size,
                                         workers=workers or self.a.workers, epochs=self.a.epochs, group=group,
                                         config={**config, "files": files}, progress=self.progress))

    def fastssl(self, views: list[ladder.View], group: str, config: dict[str, Any], storage: str,
                workers: int | None = None) -> None:
        self.add(ladder.run_fastssl(self.storages()[storage], views, batch_size=self.a.batch_size,
                                    workers=workers or self.a.workers, epochs=self.a.epochs, group=group,
                                    config={**config, "storage": storage}, progress=self.progress))

    def peers(self, views: list[ladder.View], group: str, config: dict[str, Any]) -> None:
        """DALI (both forms) and SPDL (crop + flip views only) on the stored JPEGs, each in its interpreter."""
        from benches.dali_baseline import dali_figures
        from benches.spdl_baseline import PIXEL_OPS, spdl_figures

        wanted = [p for p in ("dali", "spdl") if p in self.a.loaders]
        if not wanted:
            return
        if self.data.stored_files is None:
            for peer in wanted:
                self.peer_status.setdefault(peer, "skipped: no JPEG-stored file to export (add jpeg to --storage)")
            return
        spec = ladder.peer_spec(views)
        crop_only = not any(v[op] for v in spec for op in PIXEL_OPS)
        cfg = {**config, "workers": self.a.workers, **ladder.views_config(views), "storage": "jpeg",
               "files": "stored"}
        kw = dict(batch_size=self.a.batch_size, workers=self.a.workers, epochs=self.a.epochs, group=group,
                  config=cfg)
        args = (self.data.stored_files, self.data.labels, spec, self.a.work_dir / self.data.name / "peers")
        for peer in wanted:
            if peer == "dali":
                figs, status = dali_figures(*args, python=self.a.dali_python, **kw)
            elif crop_only:
                figs, status = spdl_figures(*args, python=self.a.spdl_python, **kw)
            else:
                continue
            if status != self.peer_status.get(peer):  # an unavailable peer is said once, not once per view list
                _log(f"{peer}: {status}")
            if not figs or peer not in self.peer_status:  # a failure on any view list outranks a success
                self.peer_status[peer] = status
            for f in figs:
                self.add(f)

    def run_views(self, views: list[ladder.View], group: str, cfg: dict[str, Any], peers: bool = True) -> None:
        """One view list for torchvision, our loader in every selected storage and (optionally) the peers."""
        if "torchvision" in self.a.loaders:
            self.torchvision(views, group, cfg)
        if "fastssl" in self.a.loaders:
            for storage in self.storages():
                self.fastssl(views, group, cfg, storage)
        if peers:
            self.peers(views, group, cfg)

    def run_rung(self, rung: int, size: int, group: str, peers: bool = True) -> None:
        """One ladder rung (two BYOL views) at one size, for every selected loader."""
        self.run_views(ladder.byol_rung(rung, size), group, {"rung": rung, "size": size}, peers)

    def run_ladder(self) -> None:
        for rung in self.a.rungs:
            self.run_rung(rung, self.a.sizes[0], "ladder")

    def run_one_view(self) -> None:
        """Rung 1 with its first view only: what FFCV-style one-pipeline loaders are usually measured on."""
        size = self.a.sizes[0]
        self.run_views(ladder.byol_rung(1, size)[:1], "one-view", {"rung": 1, "size": size})

    def run_resolution(self) -> None:
        for size in self.a.sizes[1:]:
            for rung in sorted({1, 5} & set(self.a.rungs)):
                self.run_rung(rung, size, "resolution", peers=False)

    def run_scaling(self) -> None:
        """1 .. N-1 workers at rungs 1 and 5 (the N-worker point is the ladder's figure, copied)."""
        storage = self.jpeg_storage() or next(iter(self.storages()))
        for rung in sorted({1, 5} & set(self.a.rungs)):
            views, cfg = ladder.byol_rung(rung, self.a.sizes[0]), {"rung": rung, "size": self.a.sizes[0]}
            best = fastest_torchvision(self.figures, "ladder", {"rung": rung})
            ours = [f for f in self.figures if f.group == "ladder" and f.loader == "fastssl"
                    and f.config["rung"] == rung and f.config["storage"] == storage]
            for w in range(1, self.a.workers):
                if best:
                    self.torchvision(views, "scaling", cfg, workers=w,
                                     variants=[best.loader.removeprefix("torchvision-")],
                                     file_sets=[best.config["files"]])
                if ours:
                    self.fastssl(views, "scaling", cfg, storage, workers=w)
            for f in ([best] if best else []) + ours:
                self.figures.append(replace(f, group="scaling"))

    def run_dino(self) -> None:
        self.run_views(ladder.dino_views(), "dino", {"preset": "dino"}, peers=False)

    def run_ffcv(self) -> str:
        from benches.ffcv_baseline import ffcv_figures

        size = self.a.sizes[0]
        figs, status = ffcv_figures(self.data.files, self.data.labels, self.a.work_dir / self.data.name / "ffcv",
                                    size=size, batch_size=self.a.batch_size, workers=self.a.workers,
                                    epochs=self.a.epochs, python=self.a.ffcv_python, progress=self.progress)
        _log(f"ffcv: {status}")
        for f in figs:
            self.add(f)
        storage = self.jpeg_storage()
        if figs and "fastssl" in self.a.loaders and storage:
            crop_flip = ladder.byol_rung(1, size)
            for views in (crop_flip[:1], crop_flip):
                self.fastssl(views, "ffcv", {"size": size}, storage)
        return status


def run(a: argparse.Namespace) -> Results:
    """Prepare the data and run every selected measurement."""
    start = time.perf_counter()
    machine = machine_description()
    _log(f"machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; workers {a.workers}")
    data = prepare_data(a)
    _log(f"data: {data.name}, {len(data.files)} images; converted: {data.converted}")
    bench = Bench(a, data)
    limits = None
    jpeg_file = data.converted.get("jpeg") or data.converted.get("file")
    if jpeg_file and "fastssl" in a.loaders:
        from benches.decode_limit import decode_limits

        _log("decode limit ...")
        limits = decode_limits(jpeg_file, a.workers, passes=a.decode_passes)
        if not limits["jpeg_images"]:
            limits = None
    if "torchvision" in a.loaders and any(r >= 2 for r in a.rungs):
        bench.choose_blurs()
    bench.run_ladder()
    if a.one_view:
        bench.run_one_view()
    if len(a.sizes) > 1:
        bench.run_resolution()
    if a.dino:
        bench.run_dino()
    if a.scaling:
        bench.run_scaling()
    ffcv_status = bench.run_ffcv() if "ffcv" in a.loaders else "not requested"
    op_costs = None
    if a.op_costs:
        from benches import op_costs as op_costs_bench

        op_costs = op_costs_bench.measure(repeats=50)
    rows = headline(bench.figures, limits, a.workers)
    ratios = ffcv_ratios(bench.figures)
    return Results(machine=machine, settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                   dataset={"name": data.name, "images": len(data.files), **data.info}, figures=bench.figures,
                   decode_limit=limits, torchvision_blur={"chosen": bench.blur, "ms_per_image": bench.blur_timings},
                   ffcv_status=ffcv_status, ffcv_ratios=ratios, headline=rows, targets=target_checks(rows, ratios),
                   peers={p: bench.peer_status.get(p, "not run") if p in a.loaders else "not requested"
                          for p in ("dali", "spdl")},
                   op_costs=op_costs, total_seconds=time.perf_counter() - start)


def save(results: Results, out: Path) -> list[Path]:
    """``out/bench.json`` (every figure and section) and ``out/ladder.png`` when there is a ladder to plot."""
    paths = [write_json(out / "bench.json", results.figures, **results.sections())]
    png = plot_ladder(out / "ladder.png", results.figures, results.title)
    return paths + ([png] if png else [])


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    results = run(a)
    paths = save(results, a.out)
    print("\n" + report(results))
    print(f"\nsaved {' and '.join(str(p) for p in paths)} in {results.total_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
