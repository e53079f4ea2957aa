"""CIFAR-10 / CIFAR-100 converter from the official "python version" pickle batches.

CIFAR-10 folder: ``data_batch_1..5`` (train) and ``test_batch`` (test), labels under ``labels``.
CIFAR-100 folder: ``train`` and ``test``, labels under ``fine_labels`` / ``coarse_labels``.
Each batch holds ``data``: N x 3072 uint8, each row the R, G and B 32 x 32 planes. The pickles are read with
an unpickler that only admits numpy arrays and builtins, so a hostile file cannot run code.
"""
from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

from ..writer import WriteReport, write_dataset

from .numpy_arrays import ArraySamples

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _load_batch(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable CIFAR pickle batch: {exc}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: not a CIFAR batch (expected a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def load_cifar(root: str | os.PathLike, split: str = "train", label: str = "fine") -> tuple[np.ndarray, np.ndarray]:
    """(images N x 32 x 32 x 3 uint8, labels int64 [N]) of a CIFAR-10 or CIFAR-100 split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if label not in ("fine", "coarse"):
        raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}")
    root = os.fspath(root)
    if os.path.exists(os.path.join(root, "test_batch")):  # CIFAR-10
        names = [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]
        key = "labels"
    elif os.path.exists(os.path.join(root, "test")):  # CIFAR-100
        names, key = [split], f"{label}_labels"
    else:
        raise FileNotFoundError(f"{root}: no CIFAR-10 (test_batch) or CIFAR-100 (test) batch files")
    images, labels = [], []
    for name in names:
        path = os.path.join(root, name)
        batch = _load_batch(path)
        if "data" not in batch or key not in batch:
            raise ValueError(f"{path}: missing 'data' or {key!r}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch[key]) != len(data):
            raise ValueError(f"{path}: data of shape {data.shape} with {len(batch[key])} labels is not CIFAR")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[key], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def convert_cifar(src: str | os.PathLike, dst: str | os.PathLike, *, split: str = "train", label: str = "fine",
                  **write_options: Any) -> WriteReport:
    """Convert a CIFAR pickle folder split into one dataset file; options are those of ``write_dataset``."""
    images, labels = load_cifar(src, split, label)
    description = {"source": "cifar", "split": split, "label": label}
    return write_dataset(dst, ArraySamples(images, labels), description=description, **write_options)
