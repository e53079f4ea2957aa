"""What is in a dataset, before training on it: counts, storage, resolutions, bytes, settings, advice.

A dataset is one ``.fssl`` file or several (a ``.fsslm`` manifest, :mod:`fastssl_loader.multi_reader`): the
summary then covers every file, with bytes, storage counts and skipped samples summed over them and a warning
when the files were written with different settings. :func:`dataset_info` reads only the header, schema and
index (the reader verifies their checksums on open;
sample payloads carry no checksum), so it takes milliseconds for any file size. :func:`verify_samples`
decodes every sample, in threads (the JPEG decoder releases the GIL), and returns the ones that fail.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from .errors import CorruptSampleError
from .format import STORAGE_JPEG, STORAGE_RAW
from .multi_reader import MultiDatasetReader, open_dataset
from .reader import DatasetReader

Dataset = DatasetReader | MultiDatasetReader

#: upper edges of the long-side histogram bins (pixels); the last bin holds everything above
LONG_SIDE_EDGES = (32, 64, 128, 256, 512, 1024, 2048)
#: a median stored long side above this is far more than typical SSL views (224 px crops) need
BIG_LONG_SIDE = 1024
#: the long side the advice suggests capping at
SUGGESTED_MAX_RESOLUTION = 512
#: JPEG-stored images this small decode slower than a raw copy (the writer's auto mode stores them raw)
SMALL_PIXELS = 64 * 64
_VERIFY_CHUNK = 64


@dataclass
class DatasetInfo:
    """Summary of a dataset; ``asdict`` of it is the ``--json`` output of ``fastssl info``."""

    path: str  # the file, or the manifest of several
    files: list[str]  # the dataset files (one for a single file)
    num_samples: int
    file_bytes: int  # summed over the files
    checksums: str  # what the reader verified on open
    format_version: int
    writer: str
    settings: dict[str, Any]  # mode, max_resolution, jpeg_quality as the writer recorded them
    storage: dict[str, int]  # raw / jpeg / passthrough counts (schema), cross-checked with the index
    num_labels: int  # distinct label values
    label_range: tuple[int, int]
    class_names: list[str] | None  # from the schema's description, when the converter stored them
    source: Any  # the schema's description minus the class names
    height: dict[str, float]  # min / median / max of the stored heights
    width: dict[str, float]
    long_side_histogram: dict[str, int]  # bin label -> samples
    payload_bytes: dict[str, float]  # total / mean / median / max per sample
    jpeg_bytes_per_pixel: float | None  # mean over JPEG-stored samples
    extra_fields: list[str]
    skipped_at_write: int
    warnings: list[str] = field(default_factory=list)  # inconsistencies between schema and index
    advice: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dataset_info(dataset: str | os.PathLike | Dataset) -> DatasetInfo:
    """Summarise a dataset file, or several through a manifest (DatasetFormatError if a header, schema or index
    is invalid)."""
    reader = open_dataset(dataset)
    files = reader.readers if isinstance(reader, MultiDatasetReader) else [reader]
    schema = reader.schema
    images = [f.schema.get("image") or {} for f in files]  # each file's writer settings and storage counts
    description = schema.get("description")
    class_names = description.get("classes") if isinstance(description, dict) else None
    source = ({k: v for k, v in description.items() if k != "classes"} if isinstance(description, dict)
              else description)
    long_side = np.maximum(reader.heights, reader.widths)
    is_jpeg = reader.storage == STORAGE_JPEG
    storage, warnings = _storage(reader, _summed_storage_counts(images))
    settings = [{k: image.get(k) for k in ("mode", "max_resolution", "jpeg_quality")} for image in images]
    if any(other != settings[0] for other in settings[1:]):
        warnings.append("the files were written with different settings: " + "; ".join(
            f"{os.path.basename(f.path)} {other}" for f, other in zip(files, settings) if other != settings[0]))
    info = DatasetInfo(
        path=reader.path, files=[f.path for f in files], num_samples=len(reader),
        file_bytes=sum(os.path.getsize(f.path) for f in files),
        checksums="header, schema and index checksums verified on open",
        format_version=int(schema.get("version", 0)), writer=str(schema.get("writer", "unknown")),
        settings=settings[0],
        storage=storage,
        num_labels=int(len(np.unique(reader.labels))),
        label_range=(int(reader.labels.min()), int(reader.labels.max())),
        class_names=class_names, source=source,
        height=_summary(reader.heights), width=_summary(reader.widths),
        long_side_histogram=_histogram(long_side),
        payload_bytes={"total": int(reader.sizes.sum()), **_summary(reader.sizes, mean=True)},
        jpeg_bytes_per_pixel=(float((reader.sizes[is_jpeg] / (reader.heights * reader.widths)[is_jpeg]).mean())
                              if is_jpeg.any() else None),
        extra_fields=[e["name"] for e in schema.get("extra_fields", [])],
        skipped_at_write=sum(len(f.schema.get("skipped", [])) for f in files),
        warnings=warnings,
    )
    info.advice = _advice(reader, long_side, is_jpeg)
    return info


def _summed_storage_counts(images: list[dict[str, Any]]) -> dict[str, int] | None:
    """The writers' raw / jpeg / passthrough counts summed over the files' ``image`` schemas (None when a file
    records none)."""
    recorded = [image.get("storage_counts") for image in images]
    if not all(isinstance(counts, dict) for counts in recorded):
        return None
    return {k: sum(int(counts.get(k, 0)) for counts in recorded) for k in ("raw", "jpeg", "passthrough")}


def _storage(reader: Dataset, recorded: Any) -> tuple[dict[str, int], list[str]]:
    """Storage counts: the writer's raw / jpeg / passthrough split, checked against the index's raw / JPEG."""
    raw, jpeg = int((reader.storage == STORAGE_RAW).sum()), int((reader.storage == STORAGE_JPEG).sum())
    if not isinstance(recorded, dict):
        return {"raw": raw, "jpeg": jpeg}, ["the schema records no storage counts (raw/JPEG from the index)"]
    counts = {k: int(recorded.get(k, 0)) for k in ("raw", "jpeg", "passthrough")}
    if counts["raw"] != raw or counts["jpeg"] + counts["passthrough"] != jpeg:
        return counts, [f"the schema's storage counts {counts} disagree with the index ({raw} raw, {jpeg} JPEG)"]
    return counts, []


def _summary(values: np.ndarray, mean: bool = False) -> dict[str, float]:
    out = {"min": int(values.min()), "median": float(np.median(values)), "max": int(values.max())}
    return {**out, "mean": float(values.mean())} if mean else out


def _histogram(long_side: np.ndarray) -> dict[str, int]:
    """Samples per long-side bin (<=32, 33-64, ..., >2048), from the first to the last non-empty bin."""
    labels = [f"<={LONG_SIDE_EDGES[0]}"] + [f"{lo + 1}-{hi}" for lo, hi in zip(LONG_SIDE_EDGES, LONG_SIDE_EDGES[1:])]
    labels.append(f">{LONG_SIDE_EDGES[-1]}")
    counts = np.bincount(np.searchsorted(LONG_SIDE_EDGES, long_side, side="left"), minlength=len(labels))
    used = np.flatnonzero(counts)
    return {labels[k]: int(counts[k]) for k in range(used[0], used[-1] + 1)}


def _advice(reader: Dataset, long_side: np.ndarray, is_jpeg: np.ndarray) -> list[str]:
    advice = []
    median = float(np.median(long_side))
    if median > BIG_LONG_SIDE:
        advice.append(f"the median stored long side is {median:.0f} px, far above what typical views (224 px "
                      f"crops) need: convert with --max-resolution {SUGGESTED_MAX_RESOLUTION} for speed "
                      "(every decode pays for every stored pixel)")
    small_jpeg = is_jpeg & (reader.heights * reader.widths <= SMALL_PIXELS)
    if small_jpeg.sum() > len(reader) // 2:
        advice.append(f"{int(small_jpeg.sum())} samples are JPEGs of at most {SMALL_PIXELS} pixels, which decode "
                      "slower than raw pixels are copied: convert with --mode auto (or raw) for speed")
    return advice


def verify_samples(dataset: str | os.PathLike | Dataset, *, num_threads: int | None = None,
                   progress: bool = True) -> list[tuple[int, str]]:
    """Decode every sample (in ``num_threads`` threads; None: one per core); returns (index, reason) of the
    samples that cannot be decoded, in index order (indices of the whole dataset; with several files the reason
    also says which file and which sample of it)."""
    reader = open_dataset(dataset)
    if num_threads is None:
        from .loader import usable_cores  # imports torch: only when verifying
        num_threads = usable_cores()
    chunks = [range(lo, min(lo + _VERIFY_CHUNK, len(reader))) for lo in range(0, len(reader), _VERIFY_CHUNK)]
    bad: list[tuple[int, str]] = []
    with ThreadPoolExecutor(max(1, num_threads)) as pool, \
            tqdm(total=len(reader), unit="img", desc="verifying", disable=not progress) as bar:
        for chunk, failures in zip(chunks, pool.map(lambda c: _decode_chunk(reader, c), chunks)):
            bad += failures
            bar.update(len(chunk))
    return bad


def _decode_chunk(reader: Dataset, indices: range) -> list[tuple[int, str]]:
    failures = []
    reader.prefetch(np.arange(indices.start, indices.stop))  # the map does no read-ahead of its own
    for i in indices:
        try:
            reader.image(i)
        except CorruptSampleError as exc:
            where = f" ({reader.describe(i)})" if isinstance(reader, MultiDatasetReader) else ""
            failures.append((i, exc.reason + where))
    return failures


def format_info(info: DatasetInfo, bad: list[tuple[int, str]] | None = None) -> str:
    """Human-readable report of :func:`dataset_info` (and of :func:`verify_samples` when ``bad`` is given)."""
    s = info.settings
    files = f" in {len(info.files)} files" if len(info.files) > 1 else ""
    lines = [
        f"{info.path}: {info.num_samples} samples, {info.file_bytes / 1e6:.1f} MB{files} "
        f"(format v{info.format_version}, written by {info.writer}); {info.checksums}",
        f"settings: mode {s['mode']}, max_resolution {s['max_resolution']}, jpeg_quality {s['jpeg_quality']}",
        "storage: " + ", ".join(f"{k} {v}" for k, v in info.storage.items()),
        f"labels: {info.num_labels} distinct, {info.label_range[0]}..{info.label_range[1]}"
        + (f"; {len(info.class_names)} class names: {_shorten(info.class_names)}" if info.class_names else ""),
    ]
    if info.source is not None:
        lines.append(f"source: {info.source}")
    h, w, b = info.height, info.width, info.payload_bytes
    lines.append(f"resolution: height {h['min']}..{h['max']} (median {h['median']:.0f}), "
                 f"width {w['min']}..{w['max']} (median {w['median']:.0f})")
    lines.append("long side: " + ", ".join(f"{k} px: {v}" for k, v in info.long_side_histogram.items()))
    bpp = "" if info.jpeg_bytes_per_pixel is None else f"; JPEG {info.jpeg_bytes_per_pixel:.2f} bytes/pixel"
    lines.append(f"payload bytes: {b['total'] / 1e6:.1f} MB, per sample mean {b['mean'] / 1e3:.1f} kB, "
                 f"median {b['median'] / 1e3:.1f} kB, max {b['max'] / 1e3:.1f} kB{bpp}")
    if info.extra_fields:
        lines.append(f"extra fields: {', '.join(info.extra_fields)}")
    if info.skipped_at_write:
        lines.append(f"skipped when written: {info.skipped_at_write} source samples")
    lines += [f"warning: {text}" for text in info.warnings]
    lines += [f"advice: {text}" for text in info.advice]
    if bad is not None:
        lines.append(f"verify: decoded all {info.num_samples} samples, {len(bad)} bad")
        lines += [f"  bad sample {i}: {reason}" for i, reason in bad]
    return "\n".join(lines)


def _shorten(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
