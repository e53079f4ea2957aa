"""Hugging Face datasets source, read with pyarrow alone (extra ``hf``; the ``datasets`` library is not needed).

Inputs (``path``):

* a folder written by ``Dataset.save_to_disk`` (``state.json`` + ``data-*.arrow``), samples in the order of
  its data files; a ``DatasetDict`` folder (``dataset_dict.json``) needs ``split=`` unless it has one split;
* a ``.parquet`` file, a list of them (in the given order), or a folder searched recursively for
  ``*.parquet`` (sorted by relative path); there ``split=S`` keeps the files in a folder named S or whose
  name starts with ``S-`` or ``S.`` (the Hub's ``data/train-00000-of-00004.parquet`` and
  ``train/0000.parquet`` layouts).

Image column: an ``Image`` feature (a ``{"bytes", "path"}`` struct: the bytes as stored, so JPEG bytes reach
the writer untouched and ``passthrough``/``auto`` keep them; without bytes, the file at ``path``, relative to
the dataset folder), plain binary (encoded bytes), text (a file path), or pixel arrays (``Array2D``/``Array3D``
or nested lists of uint8/uint16, H x W[ x C]).

Label column: integers as stored; class names from its ``ClassLabel`` feature when the schema has one
(HF's ``-1`` for "no label" is kept). Text labels follow :mod:`fastssl_loader.sources.labels`. A null label
or image makes that sample unreadable (ValueError naming file and row; the writer's ``on_error`` decides).
Unlabelled datasets (an image column only, common for self-supervised corpora): ``label_column=None``, every
label -1.

Samples hold file paths and row offsets only; each process opens the files on first use (Arrow files
memory-mapped, Parquet one row group at a time), so they pickle cheaply to the writer's workers.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fastssl_loader.writer import WriteReport, write_dataset

from .labels import ScannedSamples, encode_labels


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ModuleNotFoundError("reading Hugging Face datasets needs pyarrow: pip install "
                                  "'fastssl_loader[hf]'") from None
    return pyarrow, pyarrow.parquet


@dataclass
class HuggingFaceSamples(ScannedSamples):
    """``(image, label)`` samples of Hugging Face Arrow/Parquet files (a null label is the sample's problem);
    see the module docstring."""

    files: list[str]  # .arrow (IPC stream) or .parquet
    root: str  # folder that relative image paths are resolved against
    image_column: str
    starts: np.ndarray  # first sample of each part, plus the total at the end
    parts: list[tuple[int, int]]  # (file index, parquet row group or -1 for a whole Arrow file)
    _cache: tuple[int, Any] | None = field(default=None, init=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_cache": None}  # open files stay in their process

    def _locate(self, i: int) -> tuple[int, int]:
        part = int(np.searchsorted(self.starts, i, side="right")) - 1
        return part, i - int(self.starts[part])

    def name(self, i: int) -> str:
        """Where sample i comes from: ``train-00000-of-00001.parquet: row 12``."""
        file_index = self.parts[self._locate(i)[0]][0]
        first_part = next(k for k, (f, _) in enumerate(self.parts) if f == file_index)
        return f"{self.files[file_index]}: row {i - int(self.starts[first_part])}"

    def payload(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(f"sample index {i} out of range for {len(self)} samples")
        part, row = self._locate(i)
        return self._image(self._column(part)[row], i)

    def _column(self, part: int) -> Any:
        """The image column of one part, cached: Arrow files are mapped, Parquet row groups read."""
        if self._cache is None or self._cache[0] != part:
            file_index, group = self.parts[part]
            table = _read_part(self.files[file_index], group, [self.image_column])
            self._cache = (part, table.column(self.image_column))
        return self._cache[1]

    def _image(self, value: Any, i: int) -> Any:
        pa, _ = _pyarrow()
        if isinstance(value, pa.ExtensionScalar):
            value = value.value
        if not value.is_valid:
            raise ValueError(f"{self.name(i)}: no image (null)")
        if isinstance(value, pa.StructScalar):
            data, path = value.get("bytes"), value.get("path")
            if data is not None and data.is_valid:
                return data.as_py()
            if path is None or not path.is_valid:
                raise ValueError(f"{self.name(i)}: the image has neither bytes nor a path")
            value = path
        kind = value.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):  # before binary: strings are binary too
            path = os.path.join(self.root, value.as_py())
            if not os.path.isfile(path):
                raise ValueError(f"{self.name(i)}: image file {path} does not exist")
            return path
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return value.as_py()
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            return _nested_array(value, self.name(i))
        raise ValueError(f"{self.name(i)}: image column type {value.type} is not an image")


def _nested_array(value: Any, name: str) -> np.ndarray:
    """A nested-list scalar (Array2D/3D, list<list<uint8>>) as an H x W[ x C] numpy array."""
    array, shape = value.values, [len(value)]
    while hasattr(array, "flatten") and hasattr(array, "value_lengths"):
        lengths = array.value_lengths().to_numpy(zero_copy_only=False)
        if len(lengths) == 0 or (lengths != lengths[0]).any():
            raise ValueError(f"{name}: ragged pixel array")
        shape.append(int(lengths[0]))
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(shape)


def _read_part(file: str, group: int, columns: list[str] | None = None) -> Any:
    """One Arrow file (group -1, memory-mapped: no copy) or one Parquet row group; all columns for None."""
    pa, pq = _pyarrow()
    if group < 0:
        with pa.memory_map(file) as source:  # the table's buffers keep the map alive after close
            table = pa.ipc.open_stream(source).read_all()
        return table if columns is None else table.select(columns)
    return pq.ParquetFile(file).read_row_group(group, columns=columns)


def resolve_files(path: str | os.PathLike | Sequence[str | os.PathLike], split: str | None = None
                  ) -> tuple[list[str], str]:
    """(data files, folder that relative image paths refer to) of a saved dataset or Parquet files."""
    if not isinstance(path, (str, os.PathLike)):
        files = [os.fspath(p) for p in path]
        if not files:
            raise ValueError("no Parquet file given")
        return files, os.path.dirname(os.path.abspath(files[0]))
    path = Path(path)
    if path.is_file():
        return [str(path)], str(path.parent)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a dataset folder nor a Parquet file")
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        if split is None and len(splits) != 1:
            raise ValueError(f"{path} holds the splits {splits}: choose one with split=")
        split = splits[0] if split is None else split
        if split not in splits:
            raise ValueError(f"{path} has no split {split!r} (splits: {splits})")
        return resolve_files(path / split)
    if (path / "state.json").is_file():
        state = json.loads((path / "state.json").read_text())
        return [str(path / f["filename"]) for f in state["_data_files"]], str(path)
    files = sorted(path.rglob("*.parquet"), key=lambda p: p.relative_to(path).parts)
    if split is not None:
        files = [f for f in files if split in f.relative_to(path).parts[:-1]
                 or f.name.startswith((f"{split}-", f"{split}."))]
    if not files:
        raise FileNotFoundError(f"no save_to_disk dataset (state.json) or *.parquet file"
                                f"{'' if split is None else f' of split {split!r}'} in {path}")
    return [str(f) for f in files], str(path)


def _class_names(schema: Any, folder: str, label_column: str) -> list[str] | None:
    """ClassLabel names of the label column from the schema's 'huggingface' metadata or dataset_info.json."""
    features = None
    metadata = schema.metadata or {}
    if b"huggingface" in metadata:
        features = json.loads(metadata[b"huggingface"]).get("info", {}).get("features")
    info = Path(folder) / "dataset_info.json"
    if features is None and info.is_file():
        features = json.loads(info.read_text()).get("features")
    feature = (features or {}).get(label_column)
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
        return list(feature["names"])
    return None


def huggingface_samples(path: str | os.PathLike | Sequence[str | os.PathLike], image_column: str = "image",
                        label_column: str | None = "label", *, split: str | None = None
                        ) -> tuple[HuggingFaceSamples, list[str] | None]:
    """(samples, class names or None) of a ``save_to_disk`` folder or Parquet files; see the module docstring.
    ``label_column=None``: no labels are read, every label is -1."""
    pa, pq = _pyarrow()
    files, root = resolve_files(path, split)
    starts, parts, values, classes = [0], [], [], None
    for index, file in enumerate(files):
        try:
            if file.endswith(".arrow"):
                table = _read_part(file, -1)
                schema, groups, sizes = table.schema, [-1], [table.num_rows]
            else:
                parquet = pq.ParquetFile(file)
                schema = parquet.schema_arrow
                groups = list(range(parquet.metadata.num_row_groups))
                sizes = [parquet.metadata.row_group(g).num_rows for g in groups]
        except (OSError, pa.ArrowException) as exc:
            raise ValueError(f"{file}: not a readable Arrow or Parquet file: {exc}") from None
        missing = [c for c in (image_column, label_column) if c is not None and c not in schema.names]
        if missing:
            raise ValueError(f"{file}: no column {missing[0]!r} (columns: {schema.names})")
        if label_column is None:
            values += [-1] * sum(sizes)
        else:
            if index == 0:
                classes = _class_names(schema, root, label_column)
            file_labels = (_read_part(file, -1, [label_column]) if groups == [-1]
                           else pq.ParquetFile(file).read(columns=[label_column])).column(label_column)
            values += file_labels.to_pylist()
        for group, size in zip(groups, sizes):
            parts.append((index, group))
            starts.append(starts[-1] + size)
    if starts[-1] == 0:
        raise ValueError(f"no rows in {files[0]}{' ...' if len(files) > 1 else ''}")
    if classes is not None:
        labels = values
    else:
        labels, classes = encode_labels(values)
    problems = {i: "no label (null)" for i, v in enumerate(labels) if v is None}
    samples = HuggingFaceSamples(labels, problems, files=files, root=root, image_column=image_column,
                                 starts=np.array(starts, dtype=np.int64), parts=parts)
    return samples, classes


def convert_huggingface(src: str | os.PathLike | Sequence[str | os.PathLike], dst: str | os.PathLike, *,
                        image_column: str = "image", label_column: str | None = "label", split: str | None = None,
                        **write_options: Any) -> WriteReport:
    """Convert a Hugging Face dataset into one dataset file; options are those of ``write_dataset``
    (``label_column=None``: an unlabelled dataset, every label -1).

    The schema's description records ``{"source": "huggingface", "split": ..., "classes": [...] or None}``.
    """
    samples, classes = huggingface_samples(src, image_column, label_column, split=split)
    description = {"source": "huggingface", "split": split, "classes": classes}
    return write_dataset(dst, samples, description=description, **write_options)
