"""Training through ``train_ref.py`` with each loader, time-capped, for ``benches.device_check``.

Each run is ``train_ref.main(argv)`` in a child process (so a cap can stop it), wrapped so that it prints
the GPU memory peak (``torch.cuda.max_memory_allocated`` / ``max_memory_reserved``) when it ends or when the
cap's SIGTERM arrives. train_ref has no step limit, so a run is sized by its training file and ``--epochs``
and stopped by the cap; every finished epoch is already in ``<out>/log.jsonl`` (images/s, data-wait
fraction, epoch time, loss). The first epoch carries the warm-up (cuDNN autotuning, worker start-up), so the
reported figures are the medians over the later epochs (the first alone when no other finished).
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

_MEMORY_TAG = "DEVICE_CHECK_MEMORY "
_WRAPPER = f"""
import json, os, signal, sys
import torch

def report():
    mem = {{}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        mem = {{"max_allocated_mib": torch.cuda.max_memory_allocated() / 2 ** 20,
               "max_reserved_mib": torch.cuda.max_memory_reserved() / 2 ** 20}}
    print({_MEMORY_TAG!r} + json.dumps(mem), flush=True)

def on_term(*_):
    report()
    os._exit(143)

signal.signal(signal.SIGTERM, on_term)
import train_ref
train_ref.main(sys.argv[1:])
report()
"""
_GRACE_S = 10.0
_RUNNING: set[int] = set()  # process groups of the training children still running


def stop_children() -> None:
    """Kill every training child still running (the caller is about to exit)."""
    for pgid in list(_RUNNING):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def train_command(train_file: str, out: Path, *, loader: str, arch: str, size: int, batch_size: int, epochs: int,
                  workers: int, device: str, extra: Sequence[str] = ()) -> list[str]:
    """The train_ref.py arguments of one run: SimCLR, bf16 autocast, no evaluation, no progress bar."""
    return ["--train", train_file, "--eval", "--loader", loader, "--method", "simclr", "--arch", arch,
            "--size", str(size), "--batch-size", str(batch_size), "--epochs", str(epochs), "--workers", str(workers),
            "--amp", "bf16", "--device", device, "--ckpt-every", "0", "--no-progress", "--seed", "0",
            "--out", str(out), "--cache-dir", str(out / "cache"), *extra]


def _epochs(log: Path) -> list[dict[str, Any]]:
    if not log.is_file():
        return []
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("type") == "epoch"]


def run_training(argv: list[str], out: Path, cap_s: float, repo: Path) -> dict[str, Any]:
    """Run train_ref with ``argv`` for at most ``cap_s`` seconds; return its epochs, figures and memory."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    start = time.perf_counter()
    with open(out / "stdout.txt", "w") as stdout, open(out / "stderr.txt", "w") as stderr:
        child = subprocess.Popen([sys.executable, "-c", _WRAPPER, *argv], cwd=repo, env=env, stdout=stdout,
                                 stderr=stderr, start_new_session=True)
        _RUNNING.add(child.pid)
        capped = False
        try:
            rc = child.wait(timeout=cap_s)
        except subprocess.TimeoutExpired:
            capped = True
            child.send_signal(signal.SIGTERM)
            try:
                rc = child.wait(timeout=_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                rc = child.wait()
        except BaseException:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise
        finally:
            _RUNNING.discard(child.pid)
    wall = time.perf_counter() - start
    text = (out / "stdout.txt").read_text(errors="replace")
    memory = next((json.loads(line[len(_MEMORY_TAG):]) for line in text.splitlines()
                   if line.startswith(_MEMORY_TAG)), None)
    epochs = _epochs(out / "log.jsonl")
    later = epochs[1:] or epochs
    figures = {key: statistics.median(e[key] for e in later) if later else None
               for key in ("images_per_s", "data_wait_frac", "epoch_time_s", "loss")}
    status = "ok" if rc == 0 else ("capped" if capped else "error")
    result = {"status": status, "returncode": rc, "capped_at_s": cap_s if capped else None, "wall_s": wall,
              "epochs_done": len(epochs), "steps": epochs[-1]["step"] if epochs else 0,
              "figures_from_epochs": f"{2 if len(epochs) > 1 else 1}..{len(epochs)}" if epochs else None,
              **figures, "gpu_memory": memory, "epochs": epochs}
    if status == "error" or not epochs:
        result["stderr_tail"] = (out / "stderr.txt").read_text(errors="replace")[-3000:]
    return result


def training(configs: Sequence[dict[str, Any]], files: dict[str, str], work: Path, repo: Path, *, device: str,
             workers: int, deadline: float, min_run_s: float = 20.0) -> dict[str, Any]:
    """Each config with ``--loader fastssl`` then ``torchvision``, while the budget lasts.

    A config: name, arch, size, file (a key of ``files``), batch_size, epochs, cap_s, extra (more flags).
    """
    runs, skipped = [], []
    for cfg in configs:
        for loader in ("fastssl", "torchvision"):
            left = deadline - time.monotonic() - _GRACE_S
            if left < min_run_s:
                skipped.append({"config": cfg["name"], "loader": loader, "reason": "time budget"})
                continue
            out = work / f"{cfg['name']}-{loader}"
            argv = train_command(files[cfg["file"]], out, loader=loader, arch=cfg["arch"], size=cfg["size"],
                                 batch_size=cfg["batch_size"], epochs=cfg["epochs"], workers=workers,
                                 device=device, extra=cfg.get("extra", ()))
            try:
                r = run_training(argv, out, min(cfg["cap_s"], left), repo)
            except Exception as exc:  # noqa: BLE001 - recorded; the next run still goes
                r = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            runs.append({"config": cfg["name"], "loader": loader, "arch": cfg["arch"], "size": cfg["size"],
                         "batch_size": cfg["batch_size"], "workers": workers, "argv": argv, **r})
    return {"device": device, "method": "simclr", "amp": "bf16", "channels_last": device == "cuda",
            "runs": runs, "skipped": skipped,
            "passed": all(r["status"] != "error" and r.get("epochs_done") for r in runs) if runs else None}
