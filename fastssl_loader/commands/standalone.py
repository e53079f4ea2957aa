"""Run one sub-command module on its own (``python -m fastssl_loader.commands.info FILE``) until ``fastssl``
wires it in."""
from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Sequence


def main(command: ModuleType, name: str, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` as the arguments of sub-command ``name`` of ``command`` and run it."""
    parser = argparse.ArgumentParser(prog="fastssl")
    command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([name, *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)
