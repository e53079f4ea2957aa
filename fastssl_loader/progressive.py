"""ProgressiveResolution: a view's output size as a function of the epoch (FFCV-style progressive resizing).

The size is a plain runtime number: compiled kernels take the output size from the buffer they write, so a
changing size never recompiles, and ``max`` lets the loader allocate its buffers once.
"""
from __future__ import annotations


class ProgressiveResolution:
    """Linear ramp of the (square) output size from ``start`` to ``end`` between two epochs.

    Same rule as ffcv-imagenet's ``get_resolution``: ``start`` up to and including ``start_epoch``, ``end`` from
    ``end_epoch`` on, and in between the linear interpolation rounded to the nearest multiple of
    ``multiple_of`` (``round(interp / multiple_of) * multiple_of``, numpy round: half to even).
    ``start`` may be larger than ``end`` (a shrinking schedule). Unlike FFCV, the rounded value is clamped to
    ``[min(start, end), max(start, end)]`` so it never exceeds the buffers sized by :attr:`max`.
    """

    def __init__(self, start: int, end: int, start_epoch: int, end_epoch: int, multiple_of: int = 32) -> None:
        for name, value in (("start", start), ("end", end), ("multiple_of", multiple_of)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ProgressiveResolution: {name} must be a positive int, got {value!r}")
        for name, value in (("start_epoch", start_epoch), ("end_epoch", end_epoch)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"ProgressiveResolution: {name} must be an int >= 0, got {value!r}")
        if end_epoch < start_epoch:
            raise ValueError(
                f"ProgressiveResolution: end_epoch ({end_epoch}) must be >= start_epoch ({start_epoch})")
        self.start = start
        self.end = end
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        self.multiple_of = multiple_of

    def __call__(self, epoch: int) -> int:
        """Output side length at ``epoch``."""
        if epoch < 0:
            raise ValueError(f"ProgressiveResolution: epoch must be >= 0, got {epoch}")
        if epoch <= self.start_epoch:
            return self.start
        if epoch >= self.end_epoch:
            return self.end
        t = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        interp = self.start + t * (self.end - self.start)
        rounded = int(round(interp / self.multiple_of)) * self.multiple_of
        return min(max(rounded, min(self.start, self.end)), self.max)

    @property
    def max(self) -> int:
        """Largest size over all epochs: the buffer size to allocate."""
        return max(self.start, self.end)

    def __repr__(self) -> str:
        return (f"ProgressiveResolution(start={self.start}, end={self.end}, start_epoch={self.start_epoch}, "
                f"end_epoch={self.end_epoch}, multiple_of={self.multiple_of})")
