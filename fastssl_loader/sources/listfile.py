"""List-file source: a CSV or TSV file of ``path,label`` rows, the simplest dataset description there is.

Rules (deterministic; samples keep the order of the rows):

* delimiter: a tab when the file name ends with ``.tsv`` or its first line holds a tab, else a comma; fields
  follow CSV quoting (quote a path that contains the delimiter);
* header: the first row is a header when its first field has no file extension (``path,label``,
  ``filename<TAB>class``); ``header=True`` / ``False`` decides explicitly;
* blank lines and lines starting with ``#`` are ignored;
* paths: a relative path is relative to the folder holding the list file; an absolute path is used as is;
* labels: :mod:`fastssl_loader.sources.labels` (all integers stay integers; otherwise class names, sorted).

A row without a label or with more than two fields is an unreadable sample, like an unreadable image: the
writer's ``on_error`` raises an error naming the list file and line, or skips it and reports why.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Any

from fastssl_loader.writer import WriteReport, write_dataset

from .labels import ScannedSamples, encode_labels


@dataclass
class ListFileSamples(ScannedSamples):
    """``(path, label)`` samples of a list file; rows that cannot be a sample raise ValueError when read."""

    list_path: str
    paths: list[str]
    lines: list[int]

    def name(self, i: int) -> str:
        """Where sample i comes from: ``list.csv line 7``."""
        return f"{self.list_path} line {self.lines[i]}"

    def payload(self, i: int) -> str:
        return self.paths[i]


def listfile_samples(path: str | os.PathLike, *, header: bool | None = None
                     ) -> tuple[ListFileSamples, list[str] | None]:
    """(samples, class names or None when the labels are integers) of a CSV/TSV list file (module rules)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"list file {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the list file: {exc}") from None
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if path.lower().endswith(".tsv") or "\t" in first_line else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    rows = []  # (line number, fields)
    for row in reader:
        if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#"):
            rows.append((reader.line_num, row))
    if rows and (header if header is not None else not os.path.splitext(rows[0][1][0].strip())[1]):
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: the list file has no sample rows")
    folder = os.path.dirname(os.path.abspath(path))
    paths, lines, values, problems = [], [], [], {}
    for i, (line, row) in enumerate(rows):
        cells = [cell.strip() for cell in row]
        paths.append(os.path.join(folder, cells[0]))
        lines.append(line)
        values.append(cells[1] if len(cells) == 2 and cells[1] else None)
        if len(cells) > 2:
            problems[i] = f"expected 'path{delimiter}label', got {len(cells)} fields"
        elif values[-1] is None:
            problems[i] = f"no label for {cells[0]!r}"
    labels, classes = encode_labels(values)
    return ListFileSamples(labels, problems, list_path=path, paths=paths, lines=lines), classes


def convert_listfile(src: str | os.PathLike, dst: str | os.PathLike, *, header: bool | None = None,
                     **write_options: Any) -> WriteReport:
    """Convert the images of a list file into one dataset file; options are those of ``write_dataset``.

    The schema's description records ``{"source": "listfile", "list": <file name>, "classes": [...] or None}``.
    """
    samples, classes = listfile_samples(src, header=header)
    description = {"source": "listfile", "list": os.path.basename(os.fspath(src)), "classes": classes}
    return write_dataset(dst, samples, description=description, **write_options)
