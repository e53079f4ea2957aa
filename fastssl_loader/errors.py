"""Exceptions that name what is wrong: the file, the sample, the argument."""
from __future__ import annotations


class DatasetFormatError(ValueError):
    """The file is not a valid fastssl_loader dataset (bad magic, version, checksum, offsets...)."""


class CorruptSampleError(ValueError):
    """A stored sample cannot be decoded; ``index`` names it."""

    def __init__(self, index: int, reason: str, path: str | None = None) -> None:
        where = f" in {path}" if path else ""
        super().__init__(f"sample {index}{where} is corrupt: {reason}")
        self.index = index
        self.reason = reason


class SourceImageError(ValueError):
    """A source image cannot be read or converted (at conversion time); the message names the file or sample."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
