"""BatchBuilder: the views of a list of sample ids, each sample decoded once; no threads, no slots.

For a batch of ids at an epoch: draw every view's parameters (``plan.sample``), choose each JPEG sample's
DCT scale from every view's crop box, check its header against the index, decode it once into scratch memory
(raw samples are read in place from the mapped file when the batch has no JPEG), then render every view with
``plan.apply`` into the caller's output buffers.

DCT scaling (``dct_scale=True``): a JPEG sample is decoded at 1/s size (s in 1, 2, 4, 8). s is the largest
value for which every view's crop box, in stored pixels, is still at least s times that view's output size
in both dimensions. Every view therefore still downscales from the decoded image. Pixel effect: libjpeg's
DCT-domain reduction roughly box-averages s x s blocks, and the antialiased resize then covers the rest of
the factor. The result differs from a full decode followed by one antialiased resize by a few levels on
edges, but not in geometry. ``dct_scale=False`` always decodes at full size.

Region-limited decoding (``region_decode=True``, used when the optional TurboJPEG backend is installed,
``jpeg.REGION_BACKEND == "turbojpeg"``, and every view's geometry op keeps its taps inside its crop box, i.e.
RandomResizedCrop): per JPEG sample only the union of its views' crop boxes is decoded, at the DCT scale above
(:func:`jpeg.decode_region`: rows below the union are never entropy-decoded, rows above it and columns beside
it skip IDCT, upsampling and colour conversion). The region is decoded IN PLACE in a buffer laid out as the
whole scaled image (``in_frame=True``), so the view kernels run exactly as after a full decode: same src and
stored sizes, same parameters, same float arithmetic, and the filter taps of every view lie inside the
decoded region (its rows and columns cover every scaled pixel the box maps onto). The output is therefore
IDENTICAL to a full decode's, bit for bit (tested). Mapping the crop boxes into region coordinates instead
(shifting them by the region's origin) changes the float rounding of the filter centres
(``(top - origin) + step * i`` is not ``(top + step * i) - origin``) and moved 2 of 90M values by one level.
Otherwise (no backend, ``region_decode=False``, or a Resize/CenterCrop view, whose taps read the whole
image) the whole (scaled) image is decoded with simplejpeg. ``BatchBuilder.decoder`` (:func:`jpeg_decoder`)
says which.

Fast IDCT (``fast_idct=True``, opt-in): libjpeg-turbo's fast integer IDCT, on both paths. It changes pixels
at scales 1 and 2 only (the reduced 1/4 and 1/8 IDCTs have no fast variant): on the q90, 512-px re-encoded
ImageNet sample, at scale 1 every image changes, max 10 levels, mean 0.98, PSNR 45 dB; at scale 1/2 max 4,
mean 0.63, PSNR 48 dB; on the original photos at scale 1 max 25, PSNR 43 dB (docs/decode-region/decode_region.json).

A builder owns its scratch memory (parameter rows, decode buffer), so one builder serves one thread at a time;
the loader gives each worker thread its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import jpeg
from .errors import CorruptSampleError
from .format import STORAGE_JPEG
from .plan import ViewPlan
from .reader import DatasetReader

REGION_DECODER = "turbojpeg-region"  # only the union of each sample's crop boxes, TurboJPEG 3
FULL_DECODER = "simplejpeg"  # the whole (DCT-scaled) image


def jpeg_decoder(plans: Sequence[ViewPlan], region_decode: bool) -> str:
    """REGION_DECODER when ``region_decode`` is asked for, the TurboJPEG backend is installed and every view's
    geometry reads only inside its crop box (RandomResizedCrop, not Resize/CenterCrop); else FULL_DECODER."""
    region = region_decode and jpeg.REGION_BACKEND == "turbojpeg" and all(p.geometry.clamp_to_box for p in plans)
    return REGION_DECODER if region else FULL_DECODER


@dataclass
class BuiltBatch:
    """One built batch. ``views`` are [n, 3, H, W] views of the caller's output buffers; the rest is owned."""

    ids: np.ndarray  # int64 [n] sample indices
    labels: np.ndarray  # int64 [n]
    views: list[np.ndarray]  # one per view, in the output buffers passed to build()
    params: list[np.ndarray]  # one float64 [n, P] array per view (copies: they outlive the next build)


class BatchBuilder:
    """Builds the views of given sample ids from ``reader`` with ``plans`` (view k uses ``plans[k]``)."""

    def __init__(self, reader: DatasetReader, plans: Sequence[ViewPlan], *, seed: int, dct_scale: bool,
                 batch_size: int, region_decode: bool = True, fast_idct: bool = False) -> None:
        self.reader = reader
        self.plans = list(plans)
        self.seed = int(seed)
        self.dct_scale = bool(dct_scale)
        self.fast_idct = bool(fast_idct)
        self.decoder = jpeg_decoder(self.plans, region_decode)
        self._params = [np.zeros((batch_size, plan.num_params), dtype=np.float64) for plan in self.plans]
        self._scratch = np.empty(0, dtype=np.uint8)

    def build(self, ids: np.ndarray, epoch: int, outs: Sequence[np.ndarray]) -> BuiltBatch:
        """Fill ``outs`` (one flat host buffer per view, uint8 or float32, large enough for len(ids) images at
        ``epoch``'s size) with the views of samples ``ids``; a bad JPEG raises :class:`CorruptSampleError`."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        n = len(ids)
        if n > len(self._params[0]):
            raise ValueError(f"BatchBuilder.build: {n} ids but the builder was made for batches of "
                             f"{len(self._params[0])}")
        reader = self.reader
        reader.prefetch(ids)  # the batch's bytes start coming from disk while the parameters are drawn
        heights, widths = reader.heights[ids], reader.widths[ids]
        params = [p[:n] for p in self._params]
        for view, (plan, p) in enumerate(zip(self.plans, params)):
            plan.sample(ids, heights, widths, self.seed, epoch, view, p)
        src, offsets, src_h, src_w = self._decode(ids, heights, widths, params, epoch)
        views = []
        for plan, p, flat in zip(self.plans, params, outs):
            h, w = plan.output_size(epoch)
            out = flat[:n * 3 * h * w].reshape(n, 3, h, w)
            plan.apply(src, offsets, src_h, src_w, heights, widths, p, out, epoch)
            views.append(out)
        return BuiltBatch(ids, reader.labels[ids], views, [p.copy() for p in params])

    def crop_boxes(self, params: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every view's crop boxes (int64 [n, 4], stored pixels) from its parameter rows."""
        return [plan.crop_boxes(p) for plan, p in zip(self.plans, params)]

    def dct_scales(self, view_boxes: Sequence[np.ndarray], epoch: int) -> np.ndarray:
        """Per sample, the largest s in {1, 2, 4, 8} with every view's crop box (``view_boxes``, from
        :meth:`crop_boxes`) >= s x its output size."""
        ratio = None
        for plan, boxes in zip(self.plans, view_boxes):
            h, w = plan.output_size(epoch)
            r = np.minimum(boxes[:, 2] / h, boxes[:, 3] / w)
            ratio = r if ratio is None else np.minimum(ratio, r)
        return jpeg.largest_scale(ratio)

    def _scratch_of(self, nbytes: int) -> np.ndarray:
        """The decode buffer, grown (doubling) to at least ``nbytes``."""
        if nbytes > len(self._scratch):
            self._scratch = np.empty(max(nbytes, 2 * len(self._scratch)), dtype=np.uint8)
        return self._scratch

    def _decode(self, ids: np.ndarray, heights: np.ndarray, widths: np.ndarray, params: Sequence[np.ndarray],
                epoch: int) -> tuple[np.ndarray, ...]:
        """(src, offsets, src_heights, src_widths) for plan.apply: each sample decoded once.

        An all-raw batch of a one-file dataset is read in place from the mapped file; otherwise every sample goes
        into the scratch (a dataset of several files has no single buffer: ``reader.data`` is None).
        """
        reader = self.reader
        is_jpeg = reader.storage[ids] == STORAGE_JPEG
        if not is_jpeg.any() and reader.data is not None:
            return reader.data, reader.offsets[ids], heights, widths
        view_boxes = self.crop_boxes(params)
        scales = self.dct_scales(view_boxes, epoch) if self.dct_scale else np.ones(len(ids), dtype=np.int64)
        src_h, src_w = heights.copy(), widths.copy()
        for i in np.flatnonzero(is_jpeg):
            src_h[i], src_w[i] = jpeg.scaled_shape(heights[i], widths[i], int(scales[i]))
        nbytes = src_h * src_w * 3
        offsets = np.concatenate(([0], np.cumsum(nbytes)[:-1])).astype(np.int64)
        scratch = self._scratch_of(int(nbytes.sum()))
        boxes = jpeg.union_box(view_boxes) if self.decoder == REGION_DECODER else None
        for i, sample in enumerate(ids):
            payload, dest = reader.payload(int(sample)), scratch[offsets[i]:offsets[i] + nbytes[i]]
            if is_jpeg[i]:
                self._decode_jpeg(int(sample), payload, int(scales[i]), None if boxes is None else boxes[i], dest,
                                  (src_h[i], src_w[i], 3))
            else:
                dest[:] = payload
        src = scratch.view()
        src.flags.writeable = False  # the mapped file's Numba type too: one compiled kernel serves both paths
        return src, offsets, src_h, src_w

    def _decode_jpeg(self, sample: int, payload: np.ndarray, scale: int, box: np.ndarray | None, dest: np.ndarray,
                     shape: tuple[int, int, int]) -> None:
        """Decode one JPEG sample into ``dest`` (laid out as the whole 1/scale image) at 1/scale, only the part
        ``box`` (stored pixels) needs when given, after checking its header against the index (so a crafted
        header cannot make the decoder allocate a huge image)."""
        reader = self.reader
        where = reader.describe(sample)
        try:
            header = jpeg.jpeg_shape(payload)
        except ValueError as exc:
            raise CorruptSampleError(sample, f"unreadable JPEG header: {exc}", where) from exc
        stored = (int(reader.heights[sample]), int(reader.widths[sample]))
        if header != stored:
            raise CorruptSampleError(sample, f"JPEG header says {header[0]}x{header[1]} but the index says "
                                             f"{stored[0]}x{stored[1]}", where)
        try:
            if box is not None:  # at its place in the frame (its size checked against the header there)
                jpeg.decode_region(payload, scale, tuple(box), dest, fast_idct=self.fast_idct, expect_shape=stored,
                                   in_frame=True)
                return
            image = jpeg.decode_jpeg(payload, scale=scale, out=dest, fast_idct=self.fast_idct)
        except ValueError as exc:
            raise CorruptSampleError(sample, str(exc), where) from exc
        if image.shape != shape:
            raise CorruptSampleError(sample, f"decoded shape {image.shape} but the index says "
                                             f"{stored[0]}x{stored[1]} (scale 1/{scale})", where)
