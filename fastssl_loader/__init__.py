"""fastssl_loader: convert a dataset once, then load decode-once multi-view SSL batches fast.

Public API (imported lazily so that converter worker processes stay light)::

    write_dataset, DatasetReader, MultiDatasetReader, open_dataset, write_manifest, Loader,
    ProgressiveResolution, ops, presets
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "write_dataset": "fastssl_loader.writer",
    "WriteReport": "fastssl_loader.writer",
    "DatasetReader": "fastssl_loader.reader",
    "MultiDatasetReader": "fastssl_loader.multi_reader",
    "open_dataset": "fastssl_loader.multi_reader",
    "write_manifest": "fastssl_loader.multi_reader",
    "DatasetFormatError": "fastssl_loader.errors",
    "CorruptSampleError": "fastssl_loader.errors",
    "SourceImageError": "fastssl_loader.errors",
    "Loader": "fastssl_loader.loader",
    "ProgressiveResolution": "fastssl_loader.progressive",
}
_SUBMODULES = {"ops", "presets"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"fastssl_loader.{name}")
    raise AttributeError(f"module 'fastssl_loader' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
