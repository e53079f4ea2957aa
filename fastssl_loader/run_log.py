"""A training run's record: JSON lines (+ optional TensorBoard scalars) and the end-of-run summary table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


class RunLog:
    """JSON lines in <out>/log.jsonl (+ optional TensorBoard scalars), written by rank 0 only.

    Records carry a ``type``: ``start`` (one per launch; the file is appended to, so a resumed run continues
    it), ``step`` (with --log-every), ``epoch``, ``eval`` (evaluation without training) and ``summary``.
    """

    def __init__(self, out: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.file = open(out / "log.jsonl", "a") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(out / "tb"))
            except ImportError:
                print("train_ref: --tensorboard ignored: the tensorboard package is not installed", file=sys.stderr)

    def write(self, record: dict, step: int) -> None:
        if not self.enabled:
            return
        record = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in record.items()}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(f"{record['type']}/{k}", v, step)

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def summary_table(epochs: list[dict], final: dict[str, float]) -> str:
    """Per-epoch table plus the final accuracy per eval set."""
    cols = [("epoch", "epoch", 5, "d"), ("loss", "loss", 8, ".4f"), ("lr", "lr", 9, ".2e"),
            ("images_per_s", "img/s", 8, ".1f"), ("data_wait_frac", "wait", 6, ".3f"),
            ("epoch_time_s", "time_s", 7, ".1f"), ("knn_top1", "knn@1", 7, ".2f"), ("probe_top1", "probe@1", 7, ".2f")]
    lines = ["  ".join(f"{head:>{width}}" for _, head, width, _ in cols)]
    for rec in epochs:
        lines.append("  ".join(f"{rec[key]:>{width}{fmt}}" if isinstance(rec.get(key), (int, float)) else
                               "-".rjust(width) for key, _, width, fmt in cols))
    sets = sorted({k.split("/")[0] for k in final if "/" in k})
    if sets:
        lines.append(f"{'eval set':<28} {'knn@1':>7} {'knn@5':>7} {'probe@1':>8} {'probe@5':>8}")
        for name in sets + ["mean"]:
            prefix = "" if name == "mean" else name + "/"
            vals = [final.get(prefix + m, float("nan")) for m in ("knn_top1", "knn_top5", "probe_top1", "probe_top5")]
            lines.append(f"{name:<28} {vals[0]:>7.2f} {vals[1]:>7.2f} {vals[2]:>8.2f} {vals[3]:>8.2f}")
    return "\n".join(lines)
