"""ViewPlan: one view's op list compiled into two Numba kernels, ``sample`` and ``apply``, over n samples.

The op kernels are composed without per-op Python calls: the plan writes the source text of a small driver
that calls each op's sampler (or kernel) in list order on its slice of the parameter row, and compiles it
with the op functions as its globals. Each driver is one Numba function per distinct view (views with equal
ops share it; the view index is a runtime argument), compiled lazily on first use with ``nogil=True`` and
``cache=True``: the driver source is written to a module file named by a hash of the ops' arguments and of the
code of their modules (``$FASTSSL_LOADER_CACHE/plans``, default ``~/.cache/fastssl_loader/plans``), so only the
first process on a machine pays the compilation (seconds per view); later ones load it. The output size is a
runtime argument (the shape of the output array), so a :class:`~fastssl_loader.progressive.ProgressiveResolution`
schedule never recompiles.

apply = geometry kernel into an (H, W, 3) uint8 working image, each pixel op in place, then one store pass
writing ``out[i]`` as CHW: uint8 as is, or float32 ``(x / 255 - mean) / std`` (``x / 255`` without Normalize).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

import numba as nb
import numpy as np

from . import rng
from .ops.base import GeometryOp, Op, PixelOp
from .ops.normalize import Normalize


@nb.njit(nogil=True, cache=True)
def store_uint8(work: np.ndarray, out: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> None:
    """Copy the HWC working image into CHW ``out`` unchanged (the GPU normalises later).

    Row by row, the three channel rows at once, with unsigned indices so the stride-3 reads vectorise
    (about 6x faster than a loop per channel over (y, x))."""
    h, w = work.shape[0], work.shape[1]
    flat = work.reshape(h, w * 3)
    for y in range(h):
        src = flat[y]
        out0, out1, out2 = out[0, y], out[1, y], out[2, y]
        for x in range(w):
            p = np.uint64(3 * x)
            out0[x] = src[p]
            out1[x] = src[p + np.uint64(1)]
            out2[x] = src[p + np.uint64(2)]


@nb.njit(nogil=True, cache=True)
def store_float(work: np.ndarray, out: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> None:
    """Write CHW ``out = work * scale + shift`` per channel, i.e. ``(x / 255 - mean) / std`` fused in one pass.

    Row by row and channel by channel: a contiguous output row from a stride-3 input row vectorises (about
    3x faster than a loop per channel over (y, x); same float32 arithmetic, so bit-identical)."""
    h, w = work.shape[0], work.shape[1]
    flat = work.reshape(h, w * 3)
    for y in range(h):
        src = flat[y]
        for c in range(3):
            a = scale[c]
            b = shift[c]
            dst = out[c, y]
            for x in range(w):
                dst[x] = np.float32(src[3 * x + c]) * a + b


_STORES = {np.dtype(np.uint8): store_uint8, np.dtype(np.float32): store_float}


def _driver_source(n_pixel_ops: int, bounds: list[int]) -> tuple[str, str]:
    """Source text of the sample and apply drivers for a view with ``n_pixel_ops`` pixel ops.

    ``bounds[k]:bounds[k + 1]`` is op k's slice of the parameter row (op 0 = geometry).
    """
    sample_lines = [
        "def sample_all(sample_ids, heights, widths, seed, epoch, view, params):",
        "    for i in range(sample_ids.shape[0]):",
        "        state = new_state(seed, epoch, sample_ids[i], view)",
        "        row = params[i]",
        f"        geometry_sample(state, heights[i], widths[i], row[{bounds[0]}:{bounds[1]}])",
    ]
    apply_lines = [
        "def apply_all(src, offsets, src_heights, src_widths, heights, widths, params, out, scale, shift):",
        "    work = np.empty((out.shape[2], out.shape[3], 3), np.uint8)",
        "    for i in range(offsets.shape[0]):",
        "        row = params[i]",
        f"        geometry_apply(src, offsets[i], src_heights[i], src_widths[i], heights[i], widths[i],"
        f" row[{bounds[0]}:{bounds[1]}], work)",
    ]
    for k in range(1, n_pixel_ops + 1):
        cols = f"row[{bounds[k]}:{bounds[k + 1]}]"
        sample_lines.append(f"        sample_{k}(state, {cols})")
        apply_lines.append(f"        kernel_{k}(work, {cols})")
    apply_lines.append("        STORE(work, out[i], scale, shift)")
    return "\n".join(sample_lines) + "\n", "\n".join(apply_lines) + "\n"


def _cache_dir() -> Path | None:
    """Folder for generated driver modules (``$FASTSSL_LOADER_CACHE`` or ``~/.cache/fastssl_loader``), or None."""
    folder = Path(os.environ.get("FASTSSL_LOADER_CACHE", Path.home() / ".cache" / "fastssl_loader")) / "plans"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


@functools.lru_cache(maxsize=1)
def _package_digest() -> bytes:
    """Hash of every module of the package: a driver inlines op kernels and the helpers they call."""
    digest = hashlib.sha256(nb.__version__.encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.digest()


def _cache_key(source: str, ops: Sequence[Op]) -> str:
    """Hash of everything compiled into a driver: its text, each op's arguments and the code of the package and
    of any op class defined outside it."""
    digest = hashlib.sha256(source.encode())
    digest.update(_package_digest())
    for op in ops:
        digest.update(f"{type(op).__module__}.{type(op).__qualname__}{op!r}".encode())
        digest.update(Path(inspect.getsourcefile(type(op))).read_bytes())
    return digest.hexdigest()[:24]


def _compile(source: str, name: str, namespace: dict, ops: Sequence[Op]) -> Callable:
    """Compile ``source``'s function ``name`` (globals: ``namespace``) as an njit(nogil) dispatcher.

    The source is written once to a module file named by :func:`_cache_key`, so Numba's ``cache=True`` can keep
    the compiled driver (with every op kernel inlined) across processes: later processes load it instead of
    compiling. Without a writable cache folder it is exec'd and compiled per process.
    """
    folder = _cache_dir()
    if folder is None:
        exec(compile(source, f"<fastssl_loader.plan {name}>", "exec"), namespace)
        return nb.njit(nogil=True)(namespace[name])
    module_name = f"fastssl_plan_{name}_{_cache_key(source, ops)}"
    path = folder / f"{module_name}.py"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text("import numba as nb\n\n\n@nb.njit(nogil=True, cache=True)\n" + source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(namespace)
    sys.modules[module_name] = module  # Numba's cache re-imports the module of a cached function by name
    spec.loader.exec_module(module)
    return getattr(module, name)


def _unique_names(names: list[str]) -> list[str]:
    """Suffix repeated column names (two ops of one kind) with ``_2``, ``_3``... so every column has one name."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return result


class ViewPlan:
    """One view (a list of ops) compiled into ``sample`` and ``apply`` kernels over n samples.

    Thread-safe: the kernels keep no state and release the GIL, so loader threads call them concurrently.
    """

    def __init__(self, ops: Sequence[Op], view_index: int) -> None:
        ops = list(ops)
        if isinstance(view_index, bool) or not isinstance(view_index, (int, np.integer)) or view_index < 0:
            raise ValueError(f"ViewPlan: view_index must be an int >= 0, got {view_index!r}")
        if not ops:
            raise ValueError("ViewPlan: a view needs at least a geometry op (e.g. RandomResizedCrop)")
        for k, op in enumerate(ops):
            if not isinstance(op, Op):
                raise TypeError(f"ViewPlan: op {k} of view {view_index} is {op!r}, not a fastssl_loader op")
        if not isinstance(ops[0], GeometryOp):
            raise ValueError(f"ViewPlan: view {view_index} must start with a geometry op (RandomResizedCrop, "
                             f"Resize or CenterCrop), got {ops[0]!r}")
        normalize = None
        if isinstance(ops[-1], Normalize):
            normalize = ops.pop()
        for k, op in enumerate(ops[1:], start=1):
            if isinstance(op, GeometryOp):
                raise ValueError(f"ViewPlan: view {view_index} has a second geometry op at position {k} ({op!r}); "
                                 "only one is allowed, first (use Resize(size, crop=...) to resize and crop)")
            if isinstance(op, Normalize):
                raise ValueError(f"ViewPlan: Normalize must be the last op of view {view_index}, found at position {k}")
            if not isinstance(op, PixelOp):
                raise TypeError(f"ViewPlan: op {k} of view {view_index} ({op!r}) is neither a GeometryOp nor a PixelOp")
        self.ops: list[Op] = ops + ([normalize] if normalize is not None else [])
        self.view_index = int(view_index)
        self.geometry: GeometryOp = ops[0]
        self.pixel_ops: list[PixelOp] = list(ops[1:])
        self.normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = (
            (normalize.mean, normalize.std) if normalize is not None else None)

        bounds = [0]
        for op in ops:
            bounds.append(bounds[-1] + len(op.param_names))
        self.param_names: list[str] = _unique_names([name for op in ops for name in op.param_names])
        self.num_params: int = bounds[-1]
        box = self.geometry.crop_box_columns()
        self._box_columns = [bounds[0] + c for c in box]

        mean = np.array(self.normalize[0] if self.normalize else (0.0, 0.0, 0.0), np.float64)
        std = np.array(self.normalize[1] if self.normalize else (1.0, 1.0, 1.0), np.float64)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._shift = (-mean / std).astype(np.float32)

        sample_src, apply_src = _driver_source(len(self.pixel_ops), bounds)
        namespace: dict = {"np": np, "new_state": rng.new_state,
                           "geometry_sample": self.geometry.make_sampler(),
                           "geometry_apply": self.geometry.make_kernel()}
        for k, op in enumerate(self.pixel_ops, start=1):
            namespace[f"sample_{k}"] = op.make_sampler()
            namespace[f"kernel_{k}"] = op.make_kernel()
        all_ops = [self.geometry, *self.pixel_ops]
        self._sample = _compile(sample_src, "sample_all", namespace, all_ops)
        self._apply = {dtype: _compile(apply_src.replace("STORE", store.__name__), "apply_all",
                                       dict(namespace, **{store.__name__: store}), all_ops)
                       for dtype, store in _STORES.items()}

    def output_size(self, epoch: int) -> tuple[int, int]:
        """(H, W) of this view at ``epoch`` (follows a ProgressiveResolution schedule; no recompilation)."""
        return self.geometry.output_size(epoch)

    @property
    def max_output_size(self) -> tuple[int, int]:
        """Largest (H, W) over all epochs, for buffers allocated once."""
        return self.geometry.max_output_size

    def sample(self, sample_ids: np.ndarray, heights: np.ndarray, widths: np.ndarray, seed: int, epoch: int,
               params: np.ndarray) -> None:
        """Draw every random parameter of this view for n samples into ``params`` (float64 [n, P]).

        Sample i's draws come only from the stream (seed, epoch, sample_ids[i], view_index); crop boxes are in
        stored-image coordinates (heights x widths).
        """
        n = len(sample_ids)
        if params.shape != (n, self.num_params) or params.dtype != np.float64:
            raise ValueError(f"ViewPlan.sample: params must be float64 [{n}, {self.num_params}], "
                             f"got {params.dtype} {params.shape}")
        if len(heights) != n or len(widths) != n:
            raise ValueError(f"ViewPlan.sample: sample_ids, heights, widths lengths differ "
                             f"({n}, {len(heights)}, {len(widths)})")
        if n and (np.min(heights) <= 0 or np.min(widths) <= 0):
            bad = int(np.flatnonzero((np.asarray(heights) <= 0) | (np.asarray(widths) <= 0))[0])
            raise ValueError(f"ViewPlan.sample: sample {int(sample_ids[bad])} has an empty image "
                             f"({int(heights[bad])} x {int(widths[bad])})")
        self._sample(np.ascontiguousarray(sample_ids, np.int64), np.ascontiguousarray(heights, np.int64),
                     np.ascontiguousarray(widths, np.int64), int(seed), int(epoch), self.view_index, params)

    def crop_boxes(self, params: np.ndarray) -> np.ndarray:
        """int64 [n, 4] (top, left, height, width) in stored-image coordinates, rounded outwards to cover the
        region the geometry kernel reads (exact for RandomResizedCrop, whose boxes are integers)."""
        box = params[:, self._box_columns]
        top = np.floor(box[:, 0] + 1e-6)
        left = np.floor(box[:, 1] + 1e-6)
        bottom = np.ceil(box[:, 0] + box[:, 2] - 1e-6)
        right = np.ceil(box[:, 1] + box[:, 3] - 1e-6)
        return np.stack([top, left, bottom - top, right - left], axis=1).astype(np.int64)

    def apply(self, src: np.ndarray, offsets: np.ndarray, src_heights: np.ndarray, src_widths: np.ndarray,
              heights: np.ndarray, widths: np.ndarray, params: np.ndarray, out: np.ndarray, epoch: int) -> None:
        """Render n samples into ``out`` [n, 3, H, W] (uint8, or float32 normalised) at ``epoch``'s size.

        ``src[offsets[i]:]`` holds sample i as a C-order src_heights[i] x src_widths[i] x 3 uint8 image, possibly
        a DCT-downscaled decode of the stored heights[i] x widths[i] image.
        """
        n = len(offsets)
        kernel = self._apply.get(out.dtype)
        if kernel is None:
            raise ValueError(f"ViewPlan.apply: out dtype must be uint8 or float32, got {out.dtype}")
        size = self.output_size(epoch)
        if out.ndim != 4 or out.shape[0] != n or out.shape[1] != 3 or tuple(out.shape[2:]) != size:
            raise ValueError(f"ViewPlan.apply: out must be [{n}, 3, {size[0]}, {size[1]}] for view "
                             f"{self.view_index} at epoch {epoch}, got {list(out.shape)}")
        if params.shape != (n, self.num_params) or params.dtype != np.float64:
            raise ValueError(f"ViewPlan.apply: params must be float64 [{n}, {self.num_params}], "
                             f"got {params.dtype} {params.shape}")
        if src.dtype != np.uint8 or src.ndim != 1:
            raise ValueError(f"ViewPlan.apply: src must be a 1-D uint8 array, got {src.dtype} {src.shape}")
        ends = np.asarray(offsets) + np.asarray(src_heights) * np.asarray(src_widths) * 3
        if n and (np.min(offsets) < 0 or np.max(ends) > src.shape[0]):
            bad = int(np.flatnonzero((np.asarray(offsets) < 0) | (ends > src.shape[0]))[0])
            raise ValueError(f"ViewPlan.apply: image {bad} (offset {int(offsets[bad])}, {int(src_heights[bad])} x "
                             f"{int(src_widths[bad])}) lies outside src ({src.shape[0]} bytes)")
        kernel(src, np.ascontiguousarray(offsets, np.int64), np.ascontiguousarray(src_heights, np.int64),
               np.ascontiguousarray(src_widths, np.int64), np.ascontiguousarray(heights, np.int64),
               np.ascontiguousarray(widths, np.int64), params, out, self._scale, self._shift)

    def __repr__(self) -> str:
        return f"ViewPlan(view_index={self.view_index}, ops={self.ops!r})"
