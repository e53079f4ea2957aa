"""write_dataset: parallel encode, deterministic order, atomic rename, report.

Storage modes (per image):

* ``raw``: RGB uint8 H x W x 3, lossless; decode costs nothing, files are big.
* ``jpeg``: re-encoded with libjpeg-turbo at ``jpeg_quality`` (4:2:0 chroma).
* ``passthrough``: the source's JPEG bytes untouched (no recompression loss, fastest writes) when the
  source is a plain JPEG (see :mod:`fastssl_loader.images`: YCbCr/RGB/gray, no EXIF rotation) and
  ``max_resolution`` needs no resize; any other image is encoded as in ``jpeg`` mode.
* ``auto``: images of at most ``AUTO_RAW_MAX_PIXELS`` (64 x 64) pixels are stored ``raw``, larger ones as in
  ``passthrough``, except source JPEGs whose decode would dwarf the views
  (:func:`~fastssl_loader.reencode.reencode_pays`: more than 1 megapixel and progressive or above 1.5
  bits/pixel), which are re-encoded as in ``jpeg`` mode (same size unless ``max_resolution``, baseline 4:2:0,
  ``jpeg_quality``). Why: a 64 x 64 raw image is only 12 KiB and is read with a memcpy, while a JPEG decode has
  a fixed per-image cost that dominates for tiny images (CIFAR, Tiny-ImageNet are decode-bound as JPEG);
  larger images are 5-10x smaller as JPEG, and reading them from disk/page cache becomes the bottleneck; but a
  big progressive or bit-heavy original is entropy-decoding bound whatever region or DCT scale the loader
  decodes, and the re-encoded file decodes several times faster (see :mod:`fastssl_loader.reencode`).
  The rule depends only on the source bytes, so conversions stay deterministic.

Samples are encoded in worker processes (``multiprocessing``: forkserver where available, else spawn; never
fork, which can deadlock when the parent runs threads) and written in sample order, so the file is
byte-identical for any ``num_workers``. The file is written to a temporary file in the destination folder
and renamed at the end; on any error or interrupt the temporary file is removed. Nothing about a conversion
lives in module state (a worker process's pool initializer keeps that process's one conversion), so several
conversions may run at once from different threads.

Hostile sources: an image of more than ``max_pixels`` pixels is refused from its header, before it is decoded
(see :mod:`fastssl_loader.images`); the limit is recorded in the schema and enforced again by the reader.
"""
from __future__ import annotations

import json
import multiprocessing
import operator
import os
import pickle
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from . import __version__, format as fmt, jpeg
from .cpu import usable_cores
from .images import SourceImageError, cap_resolution, capped_shape, plain_jpeg_shape, read_encoded, to_rgb
from .reencode import REENCODE_MIN_BITS_PER_PIXEL, REENCODE_MIN_PIXELS, reencode_pays

DEFAULT_MAX_PIXELS = fmt.DEFAULT_MAX_PIXELS

MODES = ("auto", "raw", "jpeg", "passthrough")
AUTO_RAW_MAX_PIXELS = 64 * 64
SMALL_DATASET = 256  # num_workers=None encodes fewer samples than this in the calling process


@dataclass
class WriteReport:
    """What write_dataset did: counts, skipped samples with reasons, file size and speed."""

    path: str
    written: int
    skipped: list[tuple[int, str]]
    bytes: int
    seconds: float
    storage_counts: dict[str, int] = field(default_factory=dict)  # raw / jpeg / passthrough

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.storage_counts.items() if v)
        return (f"wrote {self.written} samples ({kinds}) to {self.path}: {self.bytes / 1e6:.1f} MB in "
                f"{self.seconds:.1f} s ({self.images_per_second:.0f} images/s); skipped {len(self.skipped)}")


@dataclass(frozen=True)
class _Settings:
    mode: str
    max_resolution: int | None
    jpeg_quality: int
    extra_fields: tuple[tuple[str, np.dtype, tuple[int, ...]], ...]
    max_pixels: int
    on_error: str


@dataclass(frozen=True)
class _Encoded:
    payload: bytes
    height: int
    width: int
    kind: str  # "raw", "jpeg" or "passthrough"
    label: int
    extras: tuple[np.ndarray, ...]


def write_dataset(
    path: str | os.PathLike,
    samples: Sequence[Any],
    *,
    mode: str = "auto",
    max_resolution: int | None = None,
    jpeg_quality: int = 90,
    num_workers: int | None = None,
    on_error: str = "raise",
    extra_fields: Mapping[str, Any] | None = None,
    description: str | Mapping[str, Any] | None = None,
    progress: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    shard: tuple[int, int] | None = None,
) -> WriteReport:
    """Convert ``samples`` into one dataset file at ``path``.

    ``samples[i]`` returns ``(image, label)`` or, with ``extra_fields``, ``(image, label, {name: value})``;
    ``image`` is a PIL image, an H x W[ x C] uint8/uint16 array, a file path or encoded bytes. A ``samples``
    with a ``name(i)`` method (the sources' samples have one: ``shard-000003.tar: sample 'key'``) is asked where
    a bad image that is not a file comes from, so errors and skip reasons name it.
    ``mode``: ``auto`` (default), ``raw``, ``jpeg`` or ``passthrough`` (see the module docstring). ``auto``
    stores images of at most 64 x 64 pixels raw and passes source JPEGs through untouched, except those of more
    than ``reencode.REENCODE_MIN_PIXELS`` pixels that are progressive or above
    ``reencode.REENCODE_MIN_BITS_PER_PIXEL`` bits per pixel: those are re-encoded (same size unless
    ``max_resolution``, baseline, ``jpeg_quality``), since their decode would cost the loader several times
    more than the views; the schema's ``image.auto_reencode`` records the thresholds.
    ``extra_fields`` maps a name to a dtype or ``(dtype, shape)`` of a fixed-shape per-sample field.
    ``num_workers``: worker processes (None: one per CPU, or none below SMALL_DATASET samples; 0: encode
    in this process).
    ``on_error``: ``"raise"`` (error naming the sample and file) or ``"skip"`` (listed in the report, and in
    the schema's ``skipped`` with a deterministic reason). With ``"raise"``, an exception raised by
    ``samples[i]`` itself propagates with its own type and traceback (from a worker process, the worker's
    traceback is its ``__cause__``).
    ``max_pixels``: largest source image (height * width) accepted; a larger one is refused from its header
    before decoding (decompression bombs), whatever Pillow's ``Image.MAX_IMAGE_PIXELS`` is. Default
    178,956,970 (Pillow's error threshold); at most ``format.MAX_PIXELS_LIMIT``.
    ``description``: any JSON-serialisable value stored in the schema (e.g. the class names).
    ``shard``: ``(k, n)`` writes only part k (0-based) of n of ``samples``: the contiguous source range
    :func:`shard_range` gives, recorded in the schema's ``shard`` (with the source's sample count), so n
    processes can each convert one part of a big source. Reported sample indices are source indices.
    """
    settings = _Settings(mode, max_resolution, jpeg_quality,
                         tuple((e["name"], np.dtype(e["dtype"]), tuple(e["shape"]))
                               for e in fmt.normalize_extra_fields(extra_fields)), max_pixels, on_error)
    _check_arguments(settings, samples, num_workers, description)
    indices = shard_range(len(samples), shard)
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"destination folder {path.parent} does not exist")
    workers = num_workers
    if workers is None:  # a pool's start-up costs more than it saves on a few hundred images
        workers = 0 if len(indices) < SMALL_DATASET else usable_cores()
    start = time.perf_counter()
    tmp_name = path.with_name(f"{path.name}.tmp{secrets.token_hex(6)}")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as out:
            written, skipped, counts = _write_file(out, samples, indices, shard, settings, workers, description,
                                                   progress)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        tmp_name.unlink(missing_ok=True)
        raise
    return WriteReport(str(path), written, skipped, path.stat().st_size, time.perf_counter() - start, counts)


def encode_sample(item: Any, index: int, settings: _Settings) -> _Encoded:
    """Normalise and encode one ``(image, label[, extras])`` item; ValueError naming the sample if bad."""
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
        raise ValueError(f"sample {index}: expected (image, label) or (image, label, extras), got {type(item)}")
    image, label = item[0], item[1]
    try:
        label = operator.index(label)
    except TypeError:
        raise ValueError(f"sample {index}: label {label!r} is not an integer") from None
    if not -2**63 <= label < 2**63:
        raise ValueError(f"sample {index}: label {label} does not fit int64")
    extras = _extras(item[2] if len(item) == 3 else None, index, settings)
    name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"sample {index}"
    mr = settings.max_resolution
    data = read_encoded(image, name=name)
    if data is not None and settings.mode in ("passthrough", "auto"):
        shape = plain_jpeg_shape(data, name=name, max_pixels=settings.max_pixels)
        if shape is not None and capped_shape(*shape, mr) == shape and (
                settings.mode == "passthrough" or _auto_passes_through(data, shape)):
            return _Encoded(data, shape[0], shape[1], "passthrough", label, extras)
    rgb = cap_resolution(to_rgb(image if data is None else data, name=name, max_pixels=settings.max_pixels), mr)
    if max(rgb.shape[:2]) > fmt.MAX_SIDE:
        raise SourceImageError(name, f"image {rgb.shape[:2]} is larger than {fmt.MAX_SIDE} px (use max_resolution)")
    raw = settings.mode == "raw" or (settings.mode == "auto" and rgb.shape[0] * rgb.shape[1] <= AUTO_RAW_MAX_PIXELS)
    payload = rgb.tobytes() if raw else jpeg.encode_jpeg(rgb, settings.jpeg_quality)
    return _Encoded(payload, rgb.shape[0], rgb.shape[1], "raw" if raw else "jpeg", label, extras)


def _auto_passes_through(data: bytes, shape: tuple[int, int]) -> bool:
    """Auto mode: whether a plain source JPEG of ``shape`` (no resize needed) is stored untouched: above the
    raw size, unless re-encoding it makes the loader's decode much cheaper (:func:`reencode_pays`)."""
    return (shape[0] * shape[1] > AUTO_RAW_MAX_PIXELS
            and not reencode_pays(*shape, len(data), jpeg.is_progressive(data)))


def _extras(values: Any, index: int, settings: _Settings) -> tuple[np.ndarray, ...]:
    if not settings.extra_fields:
        if values is not None:
            raise ValueError(f"sample {index}: has extra values but write_dataset got no extra_fields")
        return ()
    if not isinstance(values, Mapping):
        raise ValueError(f"sample {index}: extra_fields declared, expected a mapping as third item")
    out = []
    for name, dtype, shape in settings.extra_fields:
        if name not in values:
            raise ValueError(f"sample {index}: missing extra field {name!r}")
        value = np.asarray(values[name])
        if value.shape != shape:
            raise ValueError(f"sample {index}: extra field {name!r} has shape {value.shape}, expected {shape}")
        if not np.can_cast(value.dtype, dtype, casting="same_kind"):
            raise ValueError(f"sample {index}: extra field {name!r} of dtype {value.dtype} is not {dtype}")
        out.append(value.astype(dtype))
    return tuple(out)


def _write_file(out: Any, samples: Sequence[Any], indices: range, shard: tuple[int, int] | None,
                settings: _Settings, workers: int, description: Any, progress: bool
                ) -> tuple[int, list[tuple[int, str]], dict[str, int]]:
    """Stream payloads of ``samples[indices]`` into ``out`` in order, then schema, index and header."""
    n = len(indices)
    extra_entries = [{"name": name, "dtype": dt.str, "shape": list(shape)}
                     for name, dt, shape in settings.extra_fields]
    index = np.zeros(n, dtype=fmt.index_dtype(extra_entries))
    counts = {"raw": 0, "jpeg": 0, "passthrough": 0}
    skipped: list[tuple[int, str]] = []
    out.write(b"\x00" * fmt.HEADER_SIZE)
    position = written = 0
    with tqdm(total=n, unit="img", desc="writing", disable=not progress, smoothing=0.05) as bar:
        for i, result in zip(indices, _encoded_stream(samples, indices, settings, workers)):
            bar.update(1)
            if isinstance(result, str):  # a failure's reason, with on_error="skip"
                skipped.append((i, result))
                continue
            row = index[written]
            row["offset"] = fmt.HEADER_SIZE + position
            row["size"] = len(result.payload)
            row["height"], row["width"], row["label"] = result.height, result.width, result.label
            row["storage"] = fmt.STORAGE_RAW if result.kind == "raw" else fmt.STORAGE_JPEG
            for (name, _, _), value in zip(settings.extra_fields, result.extras):
                row[name] = value
            out.write(result.payload)
            position += len(result.payload)
            counts[result.kind] += 1
            written += 1
    if written == 0:
        raise ValueError(f"no sample could be written; first error: {skipped[0][1] if skipped else 'none'}")
    schema = fmt.encode_schema({
        "format": "fastssl_loader", "version": fmt.VERSION, "writer": f"fastssl_loader {__version__}",
        "num_samples": written,
        "image": {"mode": settings.mode, "max_resolution": settings.max_resolution,
                  "jpeg_quality": settings.jpeg_quality, "auto_raw_max_pixels": AUTO_RAW_MAX_PIXELS,
                  "max_pixels": settings.max_pixels, "storage_counts": counts,
                  "auto_reencode": {"min_pixels": REENCODE_MIN_PIXELS,
                                    "min_bits_per_pixel": REENCODE_MIN_BITS_PER_PIXEL,
                                    "rule": "more than min_pixels and (progressive or more than min_bits_per_pixel)"}},
        "label": {"dtype": "<i8"},
        "extra_fields": extra_entries,
        "skipped": [[i, reason] for i, reason in skipped],
        "shard": None if shard is None else {"index": shard[0], "count": shard[1], "start": indices.start,
                                             "stop": indices.stop, "source_samples": len(samples)},
        "description": description,
    })
    index_bytes = index[:written].tobytes()
    schema_offset = fmt.HEADER_SIZE + position
    out.write(schema)
    out.write(index_bytes)
    header = fmt.Header(written, fmt.HEADER_SIZE, position, schema_offset, len(schema),
                        schema_offset + len(schema), len(index_bytes), fmt.checksum(schema),
                        fmt.checksum(index_bytes))
    out.seek(0)
    out.write(header.pack())
    return written, skipped, counts


# --- encoding, in this process or in worker processes ---------------------------------------------------------
def _encode_index(samples: Sequence[Any], settings: _Settings, i: int) -> _Encoded | str:
    """Encode sample i. On failure: raise (on_error="raise") or return the reason string (on_error="skip")."""
    try:
        item = samples[i]
    except Exception as exc:  # noqa: BLE001 - the user's __getitem__ may raise anything
        if settings.on_error == "raise":
            if hasattr(exc, "add_note"):  # Python >= 3.11
                exc.add_note(f"raised by samples[{i}] while writing a fastssl_loader dataset")
            raise
        return f"samples[{i}] raised {type(exc).__name__}: {exc}"
    try:
        return encode_sample(item, i, settings)
    except Exception as exc:  # noqa: BLE001 - a bad sample must not kill a skipping conversion
        reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SourceImageError) and exc.name == f"sample {i}" and callable(getattr(samples, "name", None)):
            reason = f"{samples.name(i)}: {exc.reason}"  # asked only on failure: finding it may cost a search
        if settings.on_error == "raise":
            raise ValueError(f"cannot write sample {i}: {reason}") from exc
        return reason


# A worker process serves one pool, hence one conversion: its initializer keeps that conversion's state here.
_WORKER_STATE: tuple[Sequence[Any], _Settings] | None = None


def _init_worker(samples: Sequence[Any], settings: _Settings) -> None:
    global _WORKER_STATE
    _WORKER_STATE = (samples, settings)
    import cv2
    cv2.setNumThreads(1)  # one process per core already


def _encode_in_worker(i: int) -> _Encoded | str:
    return _encode_index(*_WORKER_STATE, i)


def _encoded_stream(samples: Sequence[Any], indices: range, settings: _Settings, workers: int
                    ) -> Iterator[_Encoded | str]:
    """Results of ``samples[indices]`` in order, encoded in this process (workers == 0) or in a process pool."""
    n = len(indices)
    if workers == 0:
        yield from (_encode_index(samples, settings, i) for i in indices)
        return
    _check_picklable(samples)
    # forkserver/spawn, never fork: a fork of a process that runs threads (torch, numba, OpenCV's pool, a live
    # Loader) can deadlock the child, e.g. in cv2.setNumThreads.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    chunksize = max(1, min(64, n // (workers * 8)))
    with context.Pool(workers, initializer=_init_worker, initargs=(samples, settings)) as pool:
        yield from pool.imap(_encode_in_worker, indices, chunksize=chunksize)


def shard_range(num_samples: int, shard: tuple[int, int] | None) -> range:
    """Source indices of part k of n: ``range(k * N // n, (k + 1) * N // n)`` (all of them for None).

    Contiguous, in source order, sizes differ by at most one, and the n parts cover the source exactly once.
    """
    if shard is None:
        return range(num_samples)
    try:
        k, n = (operator.index(v) for v in shard)
    except (TypeError, ValueError):
        raise ValueError(f"shard must be a pair (k, n) of integers, got {shard!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"shard (k, n) needs n >= 1 and 0 <= k < n, got {shard!r}")
    part = range(k * num_samples // n, (k + 1) * num_samples // n)
    if not part:
        raise ValueError(f"shard {k}/{n} of {num_samples} samples is empty: use at most {num_samples} shards")
    return part


def _check_picklable(samples: Sequence[Any]) -> None:
    """Worker processes receive ``samples`` pickled: say so clearly when that cannot work."""
    try:
        pickle.dumps(samples, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing to the user
        raise ValueError(f"samples ({type(samples).__name__}) cannot be sent to worker processes: it is not "
                         f"picklable ({type(exc).__name__}: {exc}); pass num_workers=0 to encode in this "
                         "process") from None


def _check_arguments(settings: _Settings, samples: Any, num_workers: Any, description: Any) -> None:
    if settings.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {settings.mode!r}")
    jpeg.check_quality(settings.jpeg_quality)
    mr = settings.max_resolution
    if mr is not None and (isinstance(mr, bool) or not isinstance(mr, (int, np.integer)) or mr < 1):
        raise ValueError(f"max_resolution must be None or a positive integer, got {mr!r}")
    mp = settings.max_pixels
    if isinstance(mp, bool) or not isinstance(mp, (int, np.integer)) or not 1 <= mp <= fmt.MAX_PIXELS_LIMIT:
        raise ValueError(f"max_pixels must be an integer in 1..{fmt.MAX_PIXELS_LIMIT}, got {mp!r}")
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                    or num_workers < 0):
        raise ValueError(f"num_workers must be None or an integer >= 0, got {num_workers!r}")
    if settings.on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {settings.on_error!r}")
    if not hasattr(samples, "__len__") or not hasattr(samples, "__getitem__"):
        raise ValueError(f"samples must be indexable (len + __getitem__), got {type(samples).__name__}")
    if len(samples) == 0:
        raise ValueError("samples is empty: nothing to write")
    try:
        json.dumps(description)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"description must be JSON-serialisable: {exc}") from None
