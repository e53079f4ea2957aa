"""``python -m converters {imagefolder,cifar,numpy} SRC DST [options]``: the same as ``fastssl convert ...``."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from fastssl_loader.commands.convert import add_sources


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converters",
                                     description="Convert a dataset into one fastssl_loader file "
                                                 "(the same as `fastssl convert`).")
    add_sources(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
