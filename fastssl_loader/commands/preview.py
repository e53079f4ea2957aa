"""``fastssl preview FILE --views byol --n 8 --out views.png``: a PNG of the views the Loader makes."""
from __future__ import annotations

import argparse
import sys

from . import file_command


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..preview import PRESETS, TILE_PX
    parser = file_command(
        subparsers, "preview", help="draw a few samples' views (crop boxes, parameters) as a PNG grid",
        description="Draw the first batch the Loader yields for (seed, epoch): one row per sample, the stored "
                    "image with every view's crop box, then each view as the Loader produced it, captioned "
                    "with its sampled parameters. Needs matplotlib (pip install 'fastssl_loader[preview]').")
    parser.add_argument("--views", default="byol",
                        help=f"a preset ({', '.join(PRESETS)}) or a Python file/module defining VIEWS. "
                             "Default: byol")
    parser.add_argument("--size", type=int, default=224, help="preset output size in pixels. Default: 224")
    parser.add_argument("--n", type=int, default=8, help="samples (rows). Default: 8")
    parser.add_argument("--out", default="views.png", help="output PNG. Default: views.png")
    parser.add_argument("--tile", type=int, default=TILE_PX, metavar="PX",
                        help=f"side of one image tile in the PNG (>= 120). Default: {TILE_PX}")
    parser.add_argument("--seed", type=int, default=0, help="Loader seed. Default: 0")
    parser.add_argument("--epoch", type=int, default=0, help="Loader epoch. Default: 0")
    parser.add_argument("--order", choices=("random", "sequential"), default="random",
                        help="which samples: the epoch's first batch in this order. Default: random")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..preview import preview_samples, render_preview, resolve_views
    from ..reader import DatasetReader
    try:
        if args.n < 1:
            raise ValueError(f"--n must be at least 1, got {args.n}")
        views = resolve_views(args.views, args.size)
        samples = preview_samples(args.file, views, args.n, seed=args.seed, epoch=args.epoch, order=args.order)
        description = DatasetReader(args.file).schema.get("description")
        classes = description.get("classes") if isinstance(description, dict) else None
        width, height = render_preview(samples, args.out, classes, tile_px=args.tile)
    except (ValueError, OSError) as exc:  # bad file, views or arguments: one clear line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(samples)} samples x {len(samples[0].tiles)} views ({width}x{height} px)")
    return 0

