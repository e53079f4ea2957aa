"""Datasets in several files: :class:`MultiDatasetReader` reads a list of ``.fssl`` files as one dataset.

Sample ``i`` of the dataset is sample ``i - starts[k]`` of file ``k``, files in the order given, so global
indices, labels, every order and distributed sharding work across the files exactly as on one file. The
``offsets`` column places each file's data region after the previous files' (as if the files' payloads were
written back to back into one file): files written with ``write_dataset(..., shard=(k, n))`` for k = 0..n-1
therefore have the very offsets, and so the very ``quasi_random`` order, of the one-file conversion of the
same source, and a page-local chunk never spans two files.

A manifest (``.fsslm``) is a text file naming the files, one path a line, relative to the manifest's folder;
blank lines and lines starting with ``#`` are ignored. :func:`open_dataset` opens a path, a manifest or a list
of paths. The files must agree on what a sample means: the same extra fields, label dtype and class names
(``description["classes"]`` where the converter recorded them); a file listed twice, or two files holding the
same shard of a source, is refused too.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import CorruptSampleError, DatasetFormatError
from .reader import DatasetReader, sample_index

MANIFEST_SUFFIX = ".fsslm"

def read_manifest(path: str | os.PathLike) -> list[str]:
    """The dataset files a manifest names, as paths resolved against the manifest's folder."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read the manifest: {exc}") from None
    lines = [line.strip() for line in text.splitlines()]
    files = [str(Path(path).parent / line) for line in lines if line and not line.startswith("#")]
    if not files:
        raise DatasetFormatError(f"{path}: the manifest names no dataset file")
    return files


def write_manifest(path: str | os.PathLike, files: Sequence[str | os.PathLike]) -> None:
    """Write a manifest naming ``files`` (stored relative to the manifest's folder when they are inside it)."""
    folder = Path(path).resolve().parent
    lines = []
    for file in files:
        resolved = Path(file).resolve()
        lines.append(str(resolved.relative_to(folder)) if resolved.is_relative_to(folder) else str(resolved))
    Path(path).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def is_manifest(path: str | os.PathLike) -> bool:
    return Path(path).suffix == MANIFEST_SUFFIX


def open_dataset(source: Any) -> DatasetReader | MultiDatasetReader:
    """A reader for ``source``: a reader (returned as is), a ``.fssl`` path, a ``.fsslm`` manifest, or a list
    of ``.fssl`` paths (one file alone gives a plain :class:`DatasetReader`)."""
    if isinstance(source, (DatasetReader, MultiDatasetReader)):
        return source
    if isinstance(source, (str, os.PathLike)):
        return MultiDatasetReader(read_manifest(source), manifest=source) if is_manifest(source) \
            else DatasetReader(source)
    if isinstance(source, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in source):
        return DatasetReader(source[0]) if len(source) == 1 else MultiDatasetReader(source)
    raise TypeError(f"a dataset is a path, a manifest, a list of paths or a reader, got {type(source).__name__}")


class MultiDatasetReader:
    """Several dataset files read as one; the same contract as :class:`DatasetReader` (docs/architecture.md),
    except that there is no single mapped buffer: ``data`` is None and samples are read with ``payload(i)``."""

    data = None

    def __init__(self, paths: Sequence[str | os.PathLike], *, manifest: str | os.PathLike | None = None) -> None:
        if isinstance(paths, (str, os.PathLike)) or len(paths) == 0:
            raise ValueError(f"MultiDatasetReader needs a non-empty list of dataset paths, got {paths!r}")
        self.manifest = None if manifest is None else str(manifest)
        self.readers = [DatasetReader(p) for p in paths]
        _check_compatible(self.readers)
        lengths = np.array([len(r) for r in self.readers], dtype=np.int64)
        self.starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)  # file k: starts[k]..starts[k+1]
        self.path = self.manifest or f"{self.readers[0].path} (+{len(self.readers) - 1} more files)"
        # the first file's schema for the whole, less what describes one file only (readers[k].schema has it)
        whole = {k: v for k, v in self.readers[0].schema.items() if k not in ("shard", "skipped")}
        self.schema: dict[str, Any] = {**whole, "num_samples": int(self.starts[-1]),
                                       "files": [r.path for r in self.readers]}
        self.max_pixels = max(r.max_pixels for r in self.readers)
        bases = np.concatenate(([0], np.cumsum([r.data_size for r in self.readers])[:-1]))
        self.data_size = int(sum(r.data_size for r in self.readers))
        self.offsets = _joined([r.offsets + base for r, base in zip(self.readers, bases)])
        self.sizes = _joined([r.sizes for r in self.readers])
        self.heights = _joined([r.heights for r in self.readers])
        self.widths = _joined([r.widths for r in self.readers])
        self.storage = _joined([r.storage for r in self.readers])
        self.labels = _joined([r.labels for r in self.readers])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __repr__(self) -> str:
        return f"MultiDatasetReader({[r.path for r in self.readers]!r}, {len(self)} samples)"

    def locate(self, i: int) -> tuple[DatasetReader, int]:
        """(file reader, index in that file) of sample i."""
        i = sample_index(i, len(self))
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.readers[k], i - int(self.starts[k])

    def payload(self, i: int) -> np.ndarray:
        reader, j = self.locate(i)
        return reader.payload(j)

    def prefetch(self, ids: np.ndarray) -> None:
        """:meth:`DatasetReader.prefetch` of each file's share of ``ids``."""
        files = np.searchsorted(self.starts, ids, side="right") - 1
        for k in np.unique(files).tolist():
            self.readers[k].prefetch(ids[files == k] - self.starts[k])

    def describe(self, i: int) -> str:
        reader, j = self.locate(i)
        return f"{reader.path} (sample {j} of that file)"

    def encoded(self, i: int) -> bytes:
        return self.payload(i).tobytes()

    def image(self, i: int) -> np.ndarray:
        reader, j = self.locate(i)
        try:
            return reader.image(j)
        except CorruptSampleError as exc:
            raise CorruptSampleError(i, exc.reason, self.describe(i)) from None

    def field(self, name: str) -> np.ndarray:
        return np.concatenate([r.field(name) for r in self.readers])

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": [r.path for r in self.readers], "manifest": self.manifest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["paths"], manifest=state["manifest"])


def _joined(columns: list[np.ndarray]) -> np.ndarray:
    column = np.concatenate(columns)
    column.flags.writeable = False
    return column


def _meaning(schema: dict[str, Any]) -> dict[str, Any]:
    """What a sample means in a file: extra fields, label dtype, class names (when recorded)."""
    description = schema.get("description")
    classes = description.get("classes") if isinstance(description, dict) else None
    return {"extra fields": schema.get("extra_fields"), "label": schema.get("label"), "class names": classes}


def _check_compatible(readers: list[DatasetReader]) -> None:
    """Refuse files that disagree on what a sample means, a file listed twice, a shard held twice."""
    first = _meaning(readers[0].schema)
    seen: dict[Any, str] = {}
    for reader in readers:
        meaning = _meaning(reader.schema)
        differ = [key for key in first if meaning[key] != first[key]]
        if differ:
            raise DatasetFormatError(
                f"{reader.path} does not match {readers[0].path}: different {', '.join(differ)} ("
                + "; ".join(f"{k}: {meaning[k]!r} vs {first[k]!r}" for k in differ) + ")")
        shard = reader.schema.get("shard")
        keys = [("file", os.path.realpath(reader.path))]
        if isinstance(shard, dict):
            keys.append(("shard", shard.get("index"), shard.get("count"), shard.get("source_samples"),
                         repr(reader.schema.get("description"))))
        for key in keys:
            if key in seen:
                what = "the same file" if key[0] == "file" else f"both shard {shard['index']}/{shard['count']} " \
                                                                  f"of the same source"
                raise DatasetFormatError(f"{seen[key]} and {reader.path} are {what}: its samples would be read "
                                         f"twice per epoch")
            seen[key] = reader.path
