"""Data for the reference trainer: the same splits, subsets and augmentations through fastssl_loader or
torchvision's DataLoader. Functions read the trainer's parsed options (``train_ref.py --help``): --data / --train /
--eval, --limit-*, --cache-dir, --max-resolution, --views and the view sizes, --loader, batch sizes, --workers.
"""
from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .cpu import usable_cores
from .eval_sets import is_fssl, make_shifted_sets, source_items
from .ssl_dist import world_size


def check_source(path: str | Path, what: str) -> Path:
    """A split must be an existing ImageFolder directory or .fssl file."""
    path = Path(path)
    if not (path.is_dir() or (path.is_file() and is_fssl(path))):
        raise FileNotFoundError(f"{what} {path}: not an ImageFolder directory, a .fssl file or a .fsslm manifest")
    return path


def resolve_splits(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """(train source, eval sources) from --data / --train / --eval."""
    data = Path(args.data)
    train = args.train or (data / "train" if (data / "train").is_dir() else data)
    evals = args.eval if args.eval is not None else ([data / "test"] if (data / "test").is_dir() else [])
    return check_source(train, "train split"), [check_source(e, "eval set") for e in evals]


def cached_fssl(src: Path, limit: int | None, args: argparse.Namespace) -> Path:
    """The .fssl file of a split's subset, converted on first use into the cache (only rank 0 writes)."""
    if is_fssl(src) and limit is None:
        return src
    key = f"{src.resolve()}|{limit}|{args.max_resolution}".encode()
    dst = Path(args.cache_dir) / f"{src.stem}-{limit or 'all'}-{hashlib.sha1(key).hexdigest()[:10]}.fssl"
    if not dst.exists() and int(os.environ.get("RANK", "0")) == 0:
        from fastssl_loader import write_dataset
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_dataset(str(dst), source_items(src, limit), max_resolution=args.max_resolution,
                      progress=not args.no_progress)
    return dst


def make_views(args: argparse.Namespace) -> tuple[list[list], list]:
    """(training views, evaluation view) from the loader's presets."""
    from fastssl_loader import presets
    name = args.views or args.method
    if name in ("dino", "sslight"):
        kwargs = {"global_size": args.size}
        if args.local_size is not None:
            kwargs["local_size"] = args.local_size
        if args.n_local is not None:
            kwargs["n_local"] = args.n_local
        views = getattr(presets, name)(**kwargs)
    else:
        views = getattr(presets, name)(args.size)
    if args.jitter_strength != 1.0:
        views = [presets.scale_jitter(view, args.jitter_strength) for view in views]
    return views, presets.eval_view(args.size)


def build_loader(args: argparse.Namespace, src: Path, limit: int | None, views: list[list], train: bool,
                 device: torch.device, rank: int = 0, world: int = 1) -> Any:
    """A training loader (shuffled, drop_last, sharded) or an evaluation loader (sequential, every sample)."""
    batch = args.batch_size if train else args.eval_batch_size
    workers = args.workers if args.workers is not None else max(1, usable_cores() // world_size())
    if args.loader == "torchvision":
        from fastssl_loader.reference import TorchvisionLoader
        return TorchvisionLoader(source_items(src, limit), views, batch, workers, args.seed, train, rank, world)
    from fastssl_loader import Loader
    return Loader(str(cached_fssl(src, limit, args)), batch_size=batch, views=views, num_workers=workers,
                  order="random" if train else "sequential", seed=args.seed, drop_last=train,
                  distributed=train and world > 1, device=str(device), channels_last=device.type == "cuda",
                  jpeg_fast_idct=args.jpeg_fast_idct)


def prepare_sources(args: argparse.Namespace, rank: int) -> tuple[Path, list[tuple[str, Path]]]:
    """Resolve splits, build shifted eval copies and (fastssl) convert every split once; all ranks then sync."""
    train, evals = resolve_splits(args)
    named = [(e.stem if is_fssl(e) else e.name, e) for e in evals]
    if args.make_shifted_evals:
        if not evals:
            raise ValueError("--make-shifted-evals needs an eval set (--eval or <data>/test)")
        shifted = make_shifted_sets(evals[0], args.make_shifted_evals, args.cache_dir, build=rank == 0)
        named += [(f"{evals[0].name}-{s}", p) for s, p in zip(args.make_shifted_evals, shifted)]
    if len({n for n, _ in named}) != len(named):
        raise ValueError(f"eval sets need distinct names, got {[n for n, _ in named]}")
    if args.loader == "fastssl" and rank == 0:
        cached_fssl(train, args.limit_train, args)
        for _, src in named:
            cached_fssl(src, args.limit_eval, args)
    if world_size() > 1:
        dist.barrier()
    return train, named
