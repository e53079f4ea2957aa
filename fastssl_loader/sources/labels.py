"""The label rule every source shares: integer labels stay integers, class names become sorted indices.

Given the label values of a dataset (ints, or text such as a ``.cls`` member or a CSV cell; None = missing):

* if every present value is an integer, or text of one (``"7"``, ``" -1 "``), the labels are those integers
  and there are no class names;
* otherwise every present value is a class name (text, stripped); the classes are the distinct names sorted
  in Python string order (as ``torchvision.datasets.ImageFolder`` sorts folders) and a label is its name's
  position in that list. A mix (``"3"`` next to ``"cat"``) is all names.

Missing values stay None: the source reports that sample as unreadable (``on_error`` decides);
:class:`ScannedSamples` is that reporting, shared by the sources that scan a listing (list-file rows, tar
members, Arrow/Parquet rows).
"""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

_INTEGER = re.compile(r"^[+-]?\d+$")


def encode_labels(values: Sequence[Any]) -> tuple[list[int | None], list[str] | None]:
    """(labels with None kept for missing values, sorted class names or None) by the module's rule."""
    present = [v for v in values if v is not None]
    if all(_is_integer(v) for v in present):
        return [None if v is None else int(str(v).strip()) if isinstance(v, str) else int(v) for v in values], None
    names = [None if v is None else str(v).strip() for v in values]
    classes = sorted({n for n in names if n is not None})
    position = {name: i for i, name in enumerate(classes)}
    return [None if n is None else position[n] for n in names], classes


def _is_integer(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_INTEGER.match(value.strip()))
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class ScannedSamples:
    """Samples found by scanning a listing: their labels (given with None for missing, kept as int64 with -1)
    and the problems that make some of them unreadable, raised as ValueError naming the sample when it is read,
    so that the writer's ``on_error`` applies. A subclass (a dataclass adding where its samples lie) says where
    sample i comes from (``name``) and reads its image (``payload``)."""

    labels: np.ndarray
    problems: dict[int, str]

    def __post_init__(self) -> None:
        self.labels = np.array([-1 if v is None else v for v in self.labels], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        raise NotImplementedError

    def payload(self, i: int) -> Any:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if i in self.problems:
            raise ValueError(f"{self.name(i)}: {self.problems[i]}")
        return self.payload(i), int(self.labels[i])
