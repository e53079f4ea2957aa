"""The ``fastssl`` command line: ``fastssl <command> ...``, one module per command in :mod:`.commands`."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import __version__
from .commands import command_modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastssl", description="fastssl_loader: convert and inspect datasets.")
    parser.add_argument("--version", action="version", version=f"fastssl_loader {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
