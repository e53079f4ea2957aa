"""Sub-commands of the ``fastssl`` command line: one module per sub-command.

Every module here exposes ``add_parser(subparsers) -> argparse.ArgumentParser``, which registers its
sub-command and sets ``func`` (``args -> exit status``) as the parser default. :mod:`fastssl_loader.cli`
finds the modules by listing this package, so a new sub-command is a new module and nothing else.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType


def command_modules() -> list[ModuleType]:
    """Every sub-command module of this package, sorted by name (the order ``fastssl --help`` lists them)."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def file_command(subparsers: argparse._SubParsersAction, name: str, help: str,
                 description: str) -> argparse.ArgumentParser:
    """A sub-command that reads one dataset, given as its first argument ``file``."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.add_argument("file", help="dataset file (.fssl), or a manifest of several (.fsslm)")
    return parser
