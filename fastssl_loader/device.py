"""Host batch buffers and their hand-over to the consumer: CPU tensors, or uint8 copies to CUDA.

CPU: the plan writes float32 already normalised (or uint8 when ``dtype=torch.uint8``). The returned tensors
share memory with the loader's slot buffers (no copy), so a CPU batch stays valid until the next batch is
requested from the same iterator. Clone it to keep it longer. float16/bfloat16 (and ``channels_last``) are
torch conversions of the float32 result, so those tensors are new and owned by the user.

CUDA: the plan writes uint8 into pinned host slots. :meth:`DeviceStage.deliver` copies them to the GPU with
``non_blocking=True`` on a side stream and records an event. The consumer's current stream waits on that
event, and then it normalises on the GPU, ``(x / 255 - mean) / std``, into the requested dtype. The host
slot may only be overwritten after that event has completed (:meth:`DeviceStage.wait_slot`). This closes
the race of FFCV issue #198, where a pinned slot was refilled while its copy was still running. The
returned CUDA tensors are new allocations owned by the user.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.uint8)


class DeviceStage:
    """Allocates host slot buffers and turns a finished slot into the user's tensors."""

    def __init__(self, device: str | torch.device, dtype: torch.dtype,
                 normalize: Sequence[tuple[Sequence[float], Sequence[float]] | None], channels_last: bool) -> None:
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}") from None
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch.cuda.is_available() is False")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.dtype = dtype
        self.channels_last = bool(channels_last)
        self.is_cuda = self.device.type == "cuda"
        #: what the plan writes into host slots
        self.host_dtype = np.dtype(np.uint8) if self.is_cuda or dtype == torch.uint8 else np.dtype(np.float32)
        self._stream = torch.cuda.Stream(self.device) if self.is_cuda else None
        self._affine = [self._gpu_affine(n) for n in normalize] if self.is_cuda else []
        self._copy_done: dict[int, torch.cuda.Event] = {}

    def _gpu_affine(self, normalize: tuple[Sequence[float], Sequence[float]] | None) -> tuple[torch.Tensor, ...]:
        """(scale, bias) with x * scale + bias == (x / 255 - mean) / std, shaped [1, 3, 1, 1] on the device."""
        mean, std = normalize if normalize is not None else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        return ((1.0 / (255.0 * std_t)).to(self.device), (-mean_t / std_t).to(self.device))

    def allocate(self, num_elements: int) -> np.ndarray:
        """A flat host buffer of ``host_dtype`` (pinned when the device is CUDA)."""
        torch_dtype = torch.uint8 if self.host_dtype == np.uint8 else torch.float32
        return torch.empty(num_elements, dtype=torch_dtype, pin_memory=self.is_cuda).numpy()

    def wait_slot(self, slot: int) -> None:
        """Block until the device copy out of host slot ``slot`` (if any) has finished."""
        event = self._copy_done.pop(slot, None)
        if event is not None:
            event.synchronize()

    def deliver(self, slot: int, views: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """The user's tensors for the finished host arrays ``views`` ([B, 3, H, W] each) of slot ``slot``."""
        if not self.is_cuda:
            return [self._cpu_tensor(torch.from_numpy(v)) for v in views]
        consumer = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._stream):
            on_gpu = [torch.from_numpy(v).to(self.device, non_blocking=True) for v in views]
            event = torch.cuda.Event()
            event.record(self._stream)
        self._copy_done[slot] = event
        consumer.wait_event(event)
        out = []
        for x, (scale, bias) in zip(on_gpu, self._affine):
            x.record_stream(consumer)  # allocated on the side stream, used (and freed) on the consumer's
            y = x if self.dtype == torch.uint8 else torch.addcmul(bias, x.float(), scale).to(self.dtype)
            out.append(y.contiguous(memory_format=torch.channels_last) if self.channels_last else y)
        return out

    def labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The batch's labels on the loader's device (a tiny copy on CUDA)."""
        return labels.to(self.device) if self.is_cuda else labels

    def _cpu_tensor(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype not in (torch.uint8, torch.float32):
            x = x.to(self.dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
