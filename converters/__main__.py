"""Command line: ``python -m converters {imagefolder,cifar,numpy} SRC DST [options]``."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from fastssl_loader.writer import AUTO_RAW_MAX_PIXELS, MODES


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dst", help="output dataset file (e.g. train.fssl); written atomically")
    parser.add_argument("--mode", choices=MODES, default="auto",
                        help="image storage: raw (lossless pixels), jpeg (re-encode), passthrough (source JPEG "
                             f"bytes untouched when possible, else jpeg), auto (raw up to {AUTO_RAW_MAX_PIXELS} "
                             "pixels, else passthrough). Default: auto")
    parser.add_argument("--max-resolution", type=int, default=None, metavar="PX",
                        help="cap the longer side at PX pixels (area downscale, never upscale). Default: no cap")
    parser.add_argument("--jpeg-quality", type=int, default=90, metavar="Q",
                        help="JPEG quality 1..100 for re-encoded images. Default: 90")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="encoding processes (0: in this process). Default: one per CPU")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="unreadable source image: stop with an error naming it (raise) or skip it and "
                             "list it in the report (skip). Default: raise")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m converters",
                                     description="Convert a dataset into one fastssl_loader file.")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    folder = kinds.add_parser("imagefolder", help="torchvision ImageFolder tree (root/<class>/<image>)",
                              description="Labels follow torchvision.datasets.ImageFolder (sorted class folders).")
    folder.add_argument("src", help="ImageFolder root folder")
    folder.add_argument("--flat", action="store_true",
                        help="images lie directly in SRC; the class is the file-name prefix before the first '_' "
                             "(imagenet-sample's nXXXXXXXX_name.JPEG layout)")
    _common_options(folder)
    cifar = kinds.add_parser("cifar", help="CIFAR-10/100 python pickle batch folder",
                             description="CIFAR-10 (data_batch_*, test_batch) or CIFAR-100 (train, test) pickles.")
    cifar.add_argument("src", help="folder holding the pickle batches (e.g. cifar-10-batches-py)")
    cifar.add_argument("--split", choices=("train", "test"), default="train", help="split to convert. Default: train")
    cifar.add_argument("--label", choices=("fine", "coarse"), default="fine",
                       help="CIFAR-100 label set (ignored for CIFAR-10). Default: fine")
    _common_options(cifar)
    arrays = kinds.add_parser("numpy", help="images .npy (+ --labels .npy) or .npz with images/labels",
                              description="Images N x H x W[ x C] uint8/uint16; labels N integers.")
    arrays.add_argument("src", help="images .npy, or .npz with keys 'images' and 'labels'")
    arrays.add_argument("--labels", default=None, help="labels .npy (required with an .npy of images)")
    _common_options(arrays)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = dict(mode=args.mode, max_resolution=args.max_resolution, jpeg_quality=args.jpeg_quality,
                   num_workers=args.workers, on_error=args.on_error, progress=not args.no_progress)
    try:
        if args.kind == "imagefolder":
            from .imagefolder import convert_imagefolder
            report = convert_imagefolder(args.src, args.dst, flat=args.flat, **options)
        elif args.kind == "cifar":
            from .cifar import convert_cifar
            report = convert_cifar(args.src, args.dst, split=args.split, label=args.label, **options)
        else:
            from .numpy_arrays import convert_numpy
            report = convert_numpy(args.src, args.dst, labels=args.labels, **options)
    except (ValueError, OSError) as exc:  # bad input or unreadable/unwritable paths: one clear line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report)
    for index, reason in report.skipped:
        print(f"skipped sample {index}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
