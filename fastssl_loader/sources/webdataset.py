"""WebDataset source: uncompressed tar shards read in place (no extraction), one sample per key.

Shards: a brace pattern (``shard-{000000..000099}.tar``, ``{train,val}-0.tar``; zero padding as in bash:
kept when a bound has a leading zero), a path, or a list of either; samples follow the shards' order, then
the order of the members in each shard.

Members are grouped into samples as WebDataset does: the key is the member path up to the first dot of
its file name, the extension everything after it (lower-cased). A sample's image is its first member with
an extension in ``image_extensions`` (in that order: ``jpg``, ``jpeg``, ``png``, ``webp``); its label is
the text of its ``cls`` member, or, with ``json_label=KEY``, the value of KEY in its ``json`` member. Label
values follow :mod:`fastssl_loader.sources.labels` (integers, or class names sorted into indices). Unlabelled
shards (most self-supervised corpora) convert with ``labels=False``: no label member is read or needed, and
every sample's label is -1.

Indexing reads the tar headers and the small label members once; the samples then hold only the shard
paths and each image's byte offset and size, so they pickle cheaply to the writer's worker processes, and
``samples[i]`` reads exactly the image bytes (a JPEG reaches the writer untouched, so ``passthrough`` and
``auto`` modes keep it). A missing or damaged shard raises at once; a sample without an image or label
raises ValueError naming shard and key when read, which the writer's ``on_error`` turns into an error or a
skip, as for an unreadable image file.
"""
from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from fastssl_loader.writer import WriteReport, write_dataset

from .labels import ScannedSamples, encode_labels

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
_KEY_EXT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # WebDataset's base_plus_ext


def expand_shards(shards: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard paths from a brace pattern, a path, or a list of them (in order)."""
    if isinstance(shards, (str, os.PathLike)):
        shards = [shards]
    paths = [path for pattern in shards for path in _expand_braces(os.fspath(pattern))]
    if not paths:
        raise ValueError("no shard given")
    return paths


def _expand_braces(pattern: str) -> list[str]:
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    head, body, tail = pattern[:match.start()], match.group(1), pattern[match.end():]
    numbers = _RANGE.match(body)
    if numbers:
        lo, hi = numbers.groups()
        width = max(len(lo), len(hi)) if any(len(b) > 1 and b.lstrip("-")[0] == "0" for b in (lo, hi)) else 0
        step = 1 if int(hi) >= int(lo) else -1
        choices = [str(k).zfill(width) for k in range(int(lo), int(hi) + step, step)]
    else:
        choices = body.split(",")
    return [path for choice in choices for path in _expand_braces(head + choice + tail)]


@dataclass
class _Member:
    offset: int
    size: int


@dataclass
class _Entry:
    """One key's members in a shard, its label member's bytes, and an extension seen twice (if any)."""

    members: dict[str, _Member] = field(default_factory=dict)
    label: bytes | None = None
    duplicate: str | None = None


@dataclass
class WebDatasetSamples(ScannedSamples):
    """``(image bytes, label)`` samples of a set of tar shards; see the module docstring. Sample i is member
    ``keys[i]`` of shard ``shards[shard_of[i]]``, its image ``sizes[i]`` bytes at ``offsets[i]``."""

    shards: list[str]
    shard_of: np.ndarray
    keys: list[str]
    offsets: np.ndarray
    sizes: np.ndarray

    def name(self, i: int) -> str:
        """Where sample i comes from: ``shard-000003.tar: sample 'key'``."""
        return f"{self.shards[self.shard_of[i]]}: sample {self.keys[i]!r}"

    def payload(self, i: int) -> bytes:
        size = int(self.sizes[i])
        try:
            with open(self.shards[self.shard_of[i]], "rb") as f:
                f.seek(int(self.offsets[i]))
                data = f.read(size)
        except OSError as exc:
            raise ValueError(f"{self.name(i)}: cannot read the image: {exc.strerror or exc}") from None
        if len(data) != size:
            raise ValueError(f"{self.name(i)}: shard truncated ({len(data)} of {size} image bytes)")
        return data


def webdataset_samples(shards: str | os.PathLike | Sequence[str | os.PathLike], *, json_label: str | None = None,
                       image_extensions: Sequence[str] = IMAGE_EXTENSIONS, labels: bool = True
                       ) -> tuple[WebDatasetSamples, list[str] | None]:
    """(samples, class names or None when the labels are integers or absent) of WebDataset tar shards;
    ``labels=False``: unlabelled shards, every label -1."""
    if not labels and json_label is not None:
        raise ValueError("json_label names where labels are, but labels=False says there are none")
    paths = expand_shards(shards)
    image_extensions = tuple(ext.lower().lstrip(".") for ext in image_extensions)
    label_ext = ("cls" if json_label is None else "json") if labels else None
    shard_of, keys, offsets, sizes, values, problems = [], [], [], [], [], {}
    for s, path in enumerate(paths):
        for key, entry in _index_shard(path, label_ext).items():
            i = len(keys)
            shard_of.append(s)
            keys.append(key)
            image = next((entry.members[ext] for ext in image_extensions if ext in entry.members), None)
            offsets.append(image.offset if image else 0)
            sizes.append(image.size if image else 0)
            value, problem = _label_value(entry.label, label_ext, json_label) if labels else (None, None)
            values.append(value)
            if entry.duplicate:
                problems[i] = f"several members with extension {entry.duplicate!r}"
            elif image is None:
                problems[i] = (f"no image member (one of {', '.join(image_extensions)}; "
                               f"has {sorted(entry.members)})")
            elif problem:
                problems[i] = problem
    if not keys:
        raise ValueError(f"no samples in the shards {paths[0]}{' ...' if len(paths) > 1 else ''}")
    label_values, classes = encode_labels(values)
    samples = WebDatasetSamples(label_values, problems, shards=paths, shard_of=np.array(shard_of, dtype=np.int32),
                                keys=keys, offsets=np.array(offsets, dtype=np.int64),
                                sizes=np.array(sizes, dtype=np.int64))
    return samples, classes


def _index_shard(path: str, label_ext: str | None) -> dict[str, _Entry]:
    """The keys of one shard in member order, with their members and label bytes (none read when
    ``label_ext`` is None)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"shard {path} does not exist")
    entries: dict[str, _Entry] = {}
    try:
        with tarfile.open(path, mode="r:") as tar:  # uncompressed only: members are read by offset later
            for member in tar:
                match = _KEY_EXT.match(member.name)
                if not member.isfile() or match is None:
                    continue
                key, ext = match.group(1), match.group(2).lower()
                entry = entries.setdefault(key, _Entry())
                if ext in entry.members:
                    entry.duplicate = ext
                entry.members[ext] = _Member(member.offset_data, member.size)
                if ext == label_ext:
                    entry.label = tar.extractfile(member).read()
    except tarfile.ReadError as exc:
        raise ValueError(f"shard {path} is not an uncompressed tar file ({exc}); compressed shards cannot be "
                         "read in place, decompress them first") from None
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise ValueError(f"shard {path} cannot be read: {exc}") from None
    return entries


def _label_value(data: bytes | None, label_ext: str, json_label: str | None) -> tuple[Any, str | None]:
    """(label value or None, the reason it is missing)."""
    if data is None:
        return None, f"no label (no .{label_ext} member)"
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, f"the .{label_ext} member is not UTF-8 text"
    if json_label is None:
        return (text, None) if text else (None, "the .cls member is empty")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"the .json member is not valid JSON: {exc}"
    if not isinstance(record, dict) or json_label not in record:
        return None, f"no label (the .json member has no key {json_label!r})"
    value = record[json_label]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None, f"label {value!r} (json key {json_label!r}) is not an integer or a class name"
    return value, None


def convert_webdataset(shards: str | os.PathLike | Sequence[str | os.PathLike], dst: str | os.PathLike, *,
                       json_label: str | None = None, image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
                       labels: bool = True, **write_options: Any) -> WriteReport:
    """Convert WebDataset shards into one dataset file; options are those of ``write_dataset``
    (``labels=False``: unlabelled shards, every label -1).

    The schema's description records ``{"source": "webdataset", "shards": [file names], "classes": ...}``.
    """
    samples, classes = webdataset_samples(shards, json_label=json_label, image_extensions=image_extensions,
                                          labels=labels)
    description = {"source": "webdataset", "shards": [os.path.basename(p) for p in samples.shards],
                   "classes": classes}
    return write_dataset(dst, samples, description=description, **write_options)
