"""``fastssl convert SOURCE SRC DST [options]``: convert a dataset into one fastssl_loader file.

One sub-command per source module of :mod:`fastssl_loader.sources`; each declares its own arguments and
which of them its ``convert_<sub-command>`` function takes by keyword (after SRC and DST). The writer options
(``--mode`` ...) are common to all.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from ..writer import AUTO_RAW_MAX_PIXELS, DEFAULT_MAX_PIXELS, MODES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``convert`` (with one sub-command per source) on a ``fastssl`` sub-parsers object."""
    parser = subparsers.add_parser("convert", help="convert a dataset into one .fssl file",
                                   description="Convert a dataset into one fastssl_loader file.")
    add_sources(parser)
    return parser


def add_sources(parser: argparse.ArgumentParser) -> None:
    """Add the per-source sub-commands to ``parser`` and make :func:`run` its ``func``."""
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for add_source, module in ((_imagefolder, "imagefolder"), (_cifar, "cifar"), (_numpy, "numpy_arrays"),
                               (_huggingface, "huggingface"), (_webdataset, "webdataset"), (_listfile, "listfile")):
        source_parser, keywords = add_source(sources)
        _writer_options(source_parser)
        source_parser.set_defaults(source_module=module, source_keywords=keywords)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert as ``args`` say; print the report and skipped samples. Exit status 0, or 2 on bad input."""
    options = dict(mode=args.mode, max_resolution=args.max_resolution, jpeg_quality=args.jpeg_quality,
                   num_workers=args.workers, on_error=args.on_error, progress=not args.no_progress,
                   max_pixels=args.max_pixels, shard=args.shard)
    # the source module is imported only now: several need optional extras (pyarrow for huggingface)
    convert = getattr(importlib.import_module(f"..sources.{args.source_module}", __package__), f"convert_{args.source}")
    try:
        report = convert(args.src, args.dst, **{k: getattr(args, k) for k in args.source_keywords}, **options)
    except (ValueError, OSError) as exc:  # bad input or unreadable/unwritable paths: one clear line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report)
    for index, reason in report.skipped:
        print(f"skipped sample {index}: {reason}")
    return 0


def _imagefolder(sources: Any) -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    parser = sources.add_parser("imagefolder", help="torchvision ImageFolder tree (root/<class>/<image>)",
                                description="Labels follow torchvision.datasets.ImageFolder (sorted class folders).")
    parser.add_argument("src", help="ImageFolder root folder")
    parser.add_argument("--flat", action="store_true",
                        help="images lie directly in SRC; the class is the file-name prefix before the first '_' "
                             "(imagenet-sample's nXXXXXXXX_name.JPEG layout)")
    return parser, ("flat",)


def _cifar(sources: Any) -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    parser = sources.add_parser("cifar", help="CIFAR-10/100 python pickle batch folder",
                                description="CIFAR-10 (data_batch_*, test_batch) or CIFAR-100 (train, test) pickles.")
    parser.add_argument("src", help="folder holding the pickle batches (e.g. cifar-10-batches-py)")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="split to convert. Default: train")
    parser.add_argument("--label", choices=("fine", "coarse"), default="fine",
                        help="CIFAR-100 label set (ignored for CIFAR-10). Default: fine")
    return parser, ("split", "label")


def _numpy(sources: Any) -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    parser = sources.add_parser("numpy", help="images .npy (+ --labels .npy) or .npz with images/labels",
                                description="Images N x H x W[ x C] uint8/uint16; labels N integers.")
    parser.add_argument("src", help="images .npy, or .npz with keys 'images' and 'labels'")
    parser.add_argument("--labels", default=None, help="labels .npy (required with an .npy of images)")
    return parser, ("labels",)


def _huggingface(sources: Any) -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    parser = sources.add_parser("huggingface", help="Hugging Face dataset: save_to_disk folder or Parquet files",
                                description="A datasets.save_to_disk folder, one .parquet file, or a folder of them; "
                                            "read with pyarrow (pip install fastssl_loader[hf]). Encoded image bytes "
                                            "are stored untouched in passthrough/auto mode.")
    parser.add_argument("src", help="save_to_disk folder, .parquet file, or folder of .parquet files")
    parser.add_argument("--image-column", default="image", help="image column. Default: image")
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument("--label-column", default="label", help="label column. Default: label")
    labels.add_argument("--no-labels", dest="label_column", action="store_const", const=None,
                        help="unlabelled dataset (an image column only): every label is -1")
    parser.add_argument("--split", default=None, help="split to convert (required when the folder holds several)")
    return parser, ("image_column", "label_column", "split")


def _webdataset(sources: Any) -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    parser = sources.add_parser("webdataset", help="WebDataset tar shards (brace patterns allowed)",
                                description="Uncompressed WebDataset shards, read in place (no extraction); a "
                                            "sample is the members sharing a basename: one jpg/jpeg/png/webp image "
                                            "and a cls (or json) label.")
    parser.add_argument("src", nargs="+", help="shard paths or patterns such as 'shard-{000000..000099}.tar'")
    parser.add_argument("--json-label", default=None, metavar="KEY",
                        help="take the label from this key of each sample's .json member instead of .cls")
    parser.add_argument("--no-labels", dest="labels", action="store_false",
                        help="unlabelled shards: read no label member; every label is -1")
    return parser, ("json_label", "labels")


def _listfile(sources: Any) -> tuple[argparse.ArgumentParser, tuple[str, ...]]:
    parser = sources.add_parser("listfile", help="CSV/TSV list of path,label rows",
                                description="Rows of path,label (TSV when the name ends in .tsv or the first "
                                            "line holds a tab); paths are relative to the list's folder.")
    parser.add_argument("src", help="the list file")
    header = parser.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_const", const=True, default=None,
                        help="the first row is a header (default: detected)")
    header.add_argument("--no-header", dest="header", action="store_const", const=False,
                        help="the first row is a sample")
    return parser, ("header",)


def _writer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dst", help="output dataset file (e.g. train.fssl); written atomically")
    parser.add_argument("--mode", choices=MODES, default="auto",
                        help="image storage: raw (lossless pixels), jpeg (re-encode), passthrough (source JPEG "
                             f"bytes untouched when possible, else jpeg), auto (raw up to {AUTO_RAW_MAX_PIXELS} "
                             "pixels, else passthrough, but jpeg for source JPEGs over 1 megapixel that are "
                             "progressive or over 1.5 bits/pixel: decoding those would dominate the loader). "
                             "Default: auto")
    parser.add_argument("--max-resolution", type=int, default=None, metavar="PX",
                        help="cap the longer side at PX pixels (area downscale, never upscale). Default: no cap")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse source images of more than N pixels (height*width) from their header, before "
                             f"decoding (decompression bombs). Default: {DEFAULT_MAX_PIXELS}")
    parser.add_argument("--jpeg-quality", type=int, default=90, metavar="Q",
                        help="JPEG quality 1..100 for re-encoded images. Default: 90")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="encoding processes (0: in this process). Default: one per CPU")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="unreadable source image: stop with an error naming it (raise) or skip it and "
                             "list it in the report (skip). Default: raise")
    parser.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                        help="write only part K (0-based) of N of the source: a contiguous range in source order, "
                             "recorded in the file, so N processes can convert one part each. Default: all")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N); the writer checks the range."""
    k, sep, n = text.partition("/")
    try:
        return int(k), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 0/4, got {text!r}") from None
