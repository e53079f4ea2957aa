"""``fastssl info FILE [--verify] [--json]``: what a dataset (file or manifest) holds, and whether every sample
decodes."""
from __future__ import annotations

import argparse
import json
import sys

from . import file_command


SUMMARY = "summarise a dataset file or manifest (samples, classes, storage, resolutions, bytes, settings)"
DESCRIPTION = ("Summarise a dataset file (or the files of a .fsslm manifest): samples, labels and class names, "
               "storage mix (raw / JPEG / passthrough), resolution histogram, bytes, writer settings, checksums, "
               "and advice. Exit code 0; 1 when --verify finds bad samples; 2 when the file is not a valid dataset.")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = file_command(subparsers, "info", help=SUMMARY, description=DESCRIPTION)
    parser.add_argument("--verify", action="store_true",
                        help="decode every sample (in threads) and list the ones that fail")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="decoding threads for --verify. Default: one per core")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the --verify progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..dataset_info import dataset_info, format_info, verify_samples
    from ..multi_reader import open_dataset
    try:
        reader = open_dataset(args.file)
    except ValueError as exc:  # DatasetFormatError: missing, truncated or damaged file, named in the message
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = dataset_info(reader)
    bad = verify_samples(reader, num_threads=args.threads, progress=not args.no_progress) if args.verify else None
    if args.json:
        doc = info.to_json()
        if bad is not None:
            doc["verify"] = {"decoded": info.num_samples, "bad": [{"index": i, "reason": r} for i, r in bad]}
        print(json.dumps(doc, indent=2))
    else:
        print(format_info(info, bad))
    return 1 if bad else 0

