"""ViewPlan: one view's op list compiled into two Numba kernels, ``sample`` and ``apply``, over n samples.

The op kernels are composed without per-op Python calls: the plan writes the source text of a small driver
that calls each op's sampler (or kernel) in list order on its slice of the parameter row, and compiles it
with the op functions as its globals, lazily on first use, with ``nogil=True`` and ``cache=True``.

Sharing: a plan holds no view index. The view index is a runtime argument of ``sample`` (it keys the random
stream), so views with equal ops (SimCLR's two views, DINO's local views) share one plan:
:func:`compiled_plan` returns the same object for equal op lists within a process. The output size is a
runtime argument too (the shape of the output array), so a :class:`~fastssl_loader.progressive.ProgressiveResolution`
schedule never recompiles.

Disk cache: each driver's source is written to ``$FASTSSL_LOADER_CACHE/plans`` (default
``~/.cache/fastssl_loader/plans``) as ``fastssl_plan_<sample_all|apply_all>_<key>.py``, where the key hashes
everything the driver is compiled from: its text, every attribute of every op (``vars(op)``, private ones
included), and, for every jitted function (or intrinsic) the driver reaches, the source of its module and its
closure values. Only the first process on a machine pays the compilation (seconds per view); later ones load it.
Numba's own per-function cache only watches the function's own file, so functions whose dependencies changed are
flushed before use (:func:`_refresh_stale_callees`): an edited helper module never runs stale. Without a writable
cache folder, plans compile in memory (one warning per process).

apply = geometry kernel into an (H, W, 3) uint8 working image, each pixel op in place, in list order, then one
store pass writing ``out[i]`` as CHW: uint8 as is, or float32 ``(x / 255 - mean) / std`` (``x / 255`` without
Normalize).

Debugging a plan:

* ``plan.source`` is the generated driver text (``sample_all`` and ``apply_all``); ``plan.driver_paths`` are
  the cached module files it was loaded from (None when compiled in memory). Every function it calls is a
  named op function (``geometry_sample``, ``kernel_1``... are globals bound to each op's sampler and kernel).
* To step through a view's kernels in plain Python (pdb, prints), run with ``NUMBA_DISABLE_JIT=1``: every
  ``njit`` function, drivers included, is then the Python function itself, and a batch comes out with the
  same uint8 pixels as the compiled run (tested; slow, so use a few small images). numpy may warn about
  integer overflow in ``rng.py``: the counter-based hash wraps on purpose, as it does compiled.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import threading
import types
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numba as nb
import numpy as np
from numba.core import extending
from numba.core.caching import Cache
from numba.core.dispatcher import Dispatcher

from . import rng
from .ops.base import GeometryOp, Op, PixelOp
from .ops.normalize import Normalize
from .ops.simd import split_channels

# what numba.extending.intrinsic returns (a private class: should it move, intrinsics are simply not tracked)
_Intrinsic = getattr(extending, "_Intrinsic", type("_NoIntrinsics", (), {}))


@nb.njit(nogil=True, cache=True)
def store_uint8(work: np.ndarray, out: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> None:
    """Copy the HWC working image into CHW ``out`` unchanged (the GPU normalises later), a row's three
    channels at once (about 6x faster than a loop per channel over (y, x))."""
    h, w = work.shape[0], work.shape[1]
    flat = work.reshape(h, w * 3)
    for y in range(h):
        split_channels(flat[y], w, out[0, y], out[1, y], out[2, y])


@nb.njit(nogil=True, cache=True)
def store_float(work: np.ndarray, out: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> None:
    """Write CHW ``out = work * scale + shift`` per channel, i.e. ``(x / 255 - mean) / std`` fused in one pass.

    Each row is split into its three channel rows, then each is converted as a contiguous loop (same float32
    arithmetic as a per-channel loop over (y, x), so bit-identical; about 3x faster)."""
    h, w = work.shape[0], work.shape[1]
    flat = work.reshape(h, w * 3)
    channels = np.empty((3, w), np.uint8)
    for y in range(h):
        split_channels(flat[y], w, channels[0], channels[1], channels[2])
        for c in range(3):
            a = scale[c]
            b = shift[c]
            src = channels[c]
            dst = out[c, y]
            for x in range(w):
                dst[x] = np.float32(src[x]) * a + b


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


_warned_uncached = False


def _warn_uncached(folder: Path, reason: str) -> None:
    """Warn once per process that plans are compiled in memory only (every process pays the compilation)."""
    global _warned_uncached
    if not _warned_uncached:
        _warned_uncached = True
        warnings.warn(f"fastssl_loader: plan cache folder {folder} is not writable ({reason}); compiling view "
                      "plans in memory, so every process compiles them again (set FASTSSL_LOADER_CACHE to a "
                      "writable folder)", RuntimeWarning, stacklevel=4)


def _cache_dir() -> Path | None:
    """Folder for generated driver modules (``$FASTSSL_LOADER_CACHE/plans``, default
    ``~/.cache/fastssl_loader/plans``), or None (with a one-time warning) when it cannot be written."""
    folder = Path(os.environ.get("FASTSSL_LOADER_CACHE", Path.home() / ".cache" / "fastssl_loader")) / "plans"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _warn_uncached(folder, str(exc))
        return None
    if not os.access(folder, os.W_OK):
        _warn_uncached(folder, "no write permission")
        return None
    return folder


def _value_bytes(value: object) -> bytes:
    """Bytes that identify a value compiled into a driver (arrays in full: their repr elides elements)."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}".encode() + value.tobytes()
    return repr(value).encode()


def ops_key(ops: Sequence[Op]) -> tuple:
    """Identity of an op list as values: each op's class and EVERY attribute (private ones too, via vars())."""
    return tuple((type(op).__module__, type(op).__qualname__,
                  tuple(sorted((name, _value_bytes(v)) for name, v in vars(op).items()))) for op in ops)


def _code_names(code: types.CodeType) -> set[str]:
    """Global and attribute names used by ``code`` and the functions nested in it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _python_function(compiled: Dispatcher | _Intrinsic) -> types.FunctionType:
    """The Python function a jitted function or an intrinsic (its code generator's typing function) is made from."""
    return compiled.py_func if isinstance(compiled, Dispatcher) else compiled._defn


def _callees(dispatcher: Dispatcher) -> list[Dispatcher | _Intrinsic]:
    """The jitted functions and intrinsics ``dispatcher`` calls directly: globals, ``module.function`` and
    closure cells."""
    func = dispatcher.py_func
    names = _code_names(func.__code__)
    compiled = (Dispatcher, _Intrinsic)
    found = []
    for name in names:
        value = func.__globals__.get(name)
        if isinstance(value, types.ModuleType):
            found += [getattr(value, attr) for attr in names if isinstance(getattr(value, attr, None), compiled)]
        elif isinstance(value, compiled):
            found.append(value)
    found += [c.cell_contents for c in func.__closure__ or () if isinstance(c.cell_contents, compiled)]
    return found


def jitted_dependencies(roots: Sequence[object]) -> list[Dispatcher | _Intrinsic]:
    """Every jitted function and intrinsic reachable from ``roots`` (themselves included), in a stable order."""
    seen: dict[int, Dispatcher | _Intrinsic] = {}
    stack = [f for f in roots if isinstance(f, Dispatcher)]
    while stack:
        compiled = stack.pop()
        if id(compiled) not in seen:
            seen[id(compiled)] = compiled
            if isinstance(compiled, Dispatcher):
                stack += _callees(compiled)
    return sorted(seen.values(), key=lambda d: (_python_function(d).__module__, _python_function(d).__qualname__,
                                                id(d)))


def _source_digest(dispatchers: Sequence[Dispatcher | _Intrinsic]) -> bytes:
    """Hash of the source of every module defining one of these jitted functions or intrinsics (and of the
    compiler versions)."""
    digest = hashlib.sha256(f"numba {nb.__version__} numpy {np.__version__}".encode())
    for path in sorted({inspect.getsourcefile(_python_function(d)) for d in dispatchers}):
        digest.update(path.encode() + b"\0" + Path(path).read_bytes())
    return digest.digest()


def _cache_key(source: str, ops: Sequence[Op], functions: Sequence[object]) -> str:
    """Hash of everything a driver is compiled from: its text, every op attribute and, for every jitted function
    it reaches, the source of the module defining it and its closure values."""
    digest = hashlib.sha256(source.encode())
    digest.update(repr(ops_key(ops)).encode())
    dependencies = jitted_dependencies(functions)
    digest.update(_source_digest(dependencies))
    for d in dependencies:
        func = _python_function(d)
        digest.update(func.__qualname__.encode())
        for cell in func.__closure__ or ():
            if not isinstance(cell.cell_contents, Dispatcher):
                digest.update(_value_bytes(cell.cell_contents))
    return digest.hexdigest()[:24]


def _refresh_stale_callees(functions: Sequence[object]) -> None:
    """Drop Numba's on-disk cache of any reachable function whose dependencies changed since it was cached.

    Numba's ``cache=True`` checks only the file of the function itself: after an edit of ``rng.py``, a cached
    ``sample_coin`` (in ``ops/base.py``) would still hold the old ``rng.rand``. Next to each function's Numba
    cache, a ``.fsldeps`` file records the source digest of everything it reaches; when that differs (or was
    never recorded), its cache is flushed so it compiles from the current sources. Functions already compiled
    in this process are left alone; a cache whose record cannot be written is not used.
    """
    for dispatcher in jitted_dependencies(functions):
        cache = getattr(dispatcher, "_cache", None)
        if not isinstance(cache, Cache) or dispatcher.overloads:
            continue
        func = dispatcher.py_func
        name = hashlib.sha256(f"{inspect.getsourcefile(func)}:{func.__qualname__}".encode()).hexdigest()[:24]
        record = Path(cache.cache_path) / f"{func.__qualname__.replace('<', '').replace('>', '')}-{name}.fsldeps"
        digest = _source_digest(jitted_dependencies([dispatcher])).hex()
        try:
            if not record.exists() or record.read_text() != digest:
                cache.flush()
                tmp = record.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(digest)
                os.replace(tmp, record)
        except OSError:  # cannot vouch for that cache: compile this function without it
            cache.disable()


def _compile(source: str, name: str, namespace: dict, ops: Sequence[Op]) -> tuple[Callable, Path | None]:
    """Compile ``source``'s function ``name`` (globals: ``namespace``) as an njit(nogil) dispatcher; also return
    the driver module's path in the cache folder (None when compiled in memory).

    The source is written once to a module file named by :func:`_cache_key`, so Numba's ``cache=True`` can keep
    the compiled driver (with every op kernel inlined) across processes: later processes load it instead of
    compiling. Without a writable cache folder it is exec'd and compiled per process (warned once).
    """
    functions = list(namespace.values())
    _refresh_stale_callees(functions)
    folder = _cache_dir()
    if folder is not None:
        module_name = f"fastssl_plan_{name}_{_cache_key(source, ops, functions)}"
        path = folder / f"{module_name}.py"
        try:
            if not path.exists():
                tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text("import numba as nb\n\n\n@nb.njit(nogil=True, cache=True)\n" + source)
                os.replace(tmp, path)
        except OSError as exc:
            _warn_uncached(folder, str(exc))
        else:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            module.__dict__.update(namespace)
            sys.modules[module_name] = module  # Numba's cache re-imports the module of a cached function by name
            spec.loader.exec_module(module)
            return getattr(module, name), path
    exec(compile(source, f"<fastssl_loader.plan {name}>", "exec"), namespace)
    return nb.njit(nogil=True)(namespace[name]), None


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

    Holds no view index (``sample`` takes it), so one plan serves every view with these ops.
    Thread-safe: the kernels keep no state and release the GIL, so loader threads call them concurrently.
    """

    def __init__(self, ops: Sequence[Op]) -> None:
        ops = list(ops)
        if not ops:
            raise ValueError("ViewPlan: a view needs at least a geometry op (e.g. RandomResizedCrop)")
        for k, op in enumerate(ops):
            if not isinstance(op, Op):
                raise TypeError(f"ViewPlan: op {k} is {op!r}, not a fastssl_loader op")
        if not isinstance(ops[0], GeometryOp):
            raise ValueError(f"ViewPlan: a view must start with a geometry op (RandomResizedCrop, "
                             f"Resize or CenterCrop), got {ops[0]!r}")
        normalize = None
        if isinstance(ops[-1], Normalize):
            normalize = ops.pop()
        for k, op in enumerate(ops[1:], start=1):
            if isinstance(op, GeometryOp):
                raise ValueError(f"ViewPlan: second geometry op at position {k} ({op!r}); "
                                 "only one is allowed, first (use Resize(size, crop=...) to resize and crop)")
            if isinstance(op, Normalize):
                raise ValueError(f"ViewPlan: Normalize must be the last op, found at position {k}")
            if not isinstance(op, PixelOp):
                raise TypeError(f"ViewPlan: op {k} ({op!r}) is neither a GeometryOp nor a PixelOp")
        self.ops: list[Op] = ops + ([normalize] if normalize is not None else [])
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
        #: the generated driver text, for reading and debugging (see the module docstring)
        self.source: str = sample_src + "\n\n" + apply_src
        self._sample, sample_path = _compile(sample_src, "sample_all", namespace, all_ops)
        self._apply: dict[np.dtype, Callable] = {}
        #: cached driver module files (sample, then apply per output dtype); None when compiled in memory
        self.driver_paths: list[Path | None] = [sample_path]
        for dtype, store in _STORES.items():
            self._apply[dtype], path = _compile(apply_src.replace("STORE", store.__name__), "apply_all",
                                                dict(namespace, **{store.__name__: store}), all_ops)
            self.driver_paths.append(path)

    def output_size(self, epoch: int) -> tuple[int, int]:
        """(H, W) of this view at ``epoch`` (follows a ProgressiveResolution schedule; no recompilation)."""
        return self.geometry.output_size(epoch)

    @property
    def max_output_size(self) -> tuple[int, int]:
        """Largest (H, W) over all epochs, for buffers allocated once."""
        return self.geometry.max_output_size

    def sample(self, sample_ids: np.ndarray, heights: np.ndarray, widths: np.ndarray, seed: int, epoch: int,
               view: int, params: np.ndarray) -> None:
        """Draw every random parameter of view ``view`` for n samples into ``params`` (float64 [n, P]).

        Sample i's draws come only from the stream (seed, epoch, sample_ids[i], view); crop boxes are in
        stored-image coordinates (heights x widths).
        """
        if isinstance(view, bool) or not isinstance(view, (int, np.integer)) or view < 0:
            raise ValueError(f"ViewPlan.sample: view must be an int >= 0, got {view!r}")
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
                     np.ascontiguousarray(widths, np.int64), int(seed), int(epoch), int(view), params)

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
            raise ValueError(f"ViewPlan.apply: out must be [{n}, 3, {size[0]}, {size[1]}] at epoch {epoch}, "
                             f"got {list(out.shape)}")
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
        return f"ViewPlan(ops={self.ops!r})"


_PLANS: dict[tuple, ViewPlan] = {}
_PLANS_LOCK = threading.Lock()


def compiled_plan(ops: Sequence[Op]) -> ViewPlan:
    """The process-wide ViewPlan for these ops: equal op lists (same op types and attribute values, see
    :func:`ops_key`) share one compiled plan, so equal views of one loader, a second Loader, or a preset built
    twice compile nothing. Ops are treated as immutable values."""
    key = ops_key(ops)
    with _PLANS_LOCK:
        if key not in _PLANS:
            _PLANS[key] = ViewPlan(ops)
        return _PLANS[key]
