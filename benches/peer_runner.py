"""Run a peer loader's benchmark in its own interpreter and read its figures back.

Peers (DALI, SPDL, FFCV) pin packages that clash with this project's, so each lives in its own virtual
environment; ``python -m benches`` starts ``PYTHON -m benches.<peer>_baseline`` there with a file list, the views
as JSON (``ladder.peer_spec``) and the figure's config, and reads a JSON of figures back. This module and the
peer modules import only the standard library, numpy and ``benches.report`` (psutil, tqdm), so a peer's venv
needs just ``pip install <peer> numpy psutil tqdm``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

from benches.report import Figure

REPO_ROOT = Path(__file__).resolve().parent.parent


def figures_from_json(items: list[dict[str, Any]]) -> list[Figure]:
    """Figures from their ``Figure.to_json`` dicts (derived keys such as ``images_per_s`` are dropped)."""
    names = {f.name for f in fields(Figure)}
    return [Figure(**{k: v for k, v in item.items() if k in names}) for item in items]


def write_listing(files: Sequence[str], labels: Sequence[int], path: Path) -> Path:
    """A 'path<TAB>label' line per image: how a peer's interpreter receives the files."""
    if len(files) != len(labels):
        raise ValueError(f"{len(files)} files but {len(labels)} labels")
    bad = [f for f in files if "\t" in str(f) or "\n" in str(f)]
    if bad:
        raise ValueError(f"file names with tabs or newlines cannot be listed: {bad[0]!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{f}\t{int(lab)}\n" for f, lab in zip(files, labels)))
    return path


def read_listing(path: str | Path) -> tuple[list[str], list[int]]:
    rows = [line.split("\t") for line in Path(path).read_text().splitlines() if line]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def peer_parser(description: str) -> argparse.ArgumentParser:
    """The command line every peer module accepts (it adds its own options)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--files", required=True, help="TSV of 'path<TAB>label' lines")
    p.add_argument("--views", required=True, help="JSON file: ladder.peer_spec(views)")
    p.add_argument("--config", default="{}", help="JSON object copied into every figure's config")
    p.add_argument("--group", default="ladder")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out", required=True, type=Path, help="JSON file for the figures")
    p.add_argument("--no-progress", action="store_true")
    return p


def save_figures(out: Path, version: str, figures: list[Figure]) -> None:
    out.write_text(json.dumps({"version": version, "figures": [f.to_json() for f in figures]}, default=str))


def run_peer(name: str, module: str, python: str, files: Sequence[str], labels: Sequence[int],
             views: list[dict[str, Any]], work_dir: Path, *, batch_size: int, workers: int, epochs: int,
             group: str, config: dict[str, Any], extra: Sequence[str] = ()) -> tuple[list[Figure], str]:
    """Run ``python -m module`` on the files and views; return its figures and a status line.

    A peer that fails (not installed, a missing shared library, a crash) gives no figures and a status line
    quoting the end of its error output, so the report can say exactly why it is absent.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    listing = write_listing(files, labels, work_dir / f"{name}_files.tsv")
    views_file = work_dir / f"{name}_views.json"
    views_file.write_text(json.dumps(views))
    out = work_dir / f"{name}_figures.json"
    out.unlink(missing_ok=True)
    cmd = [python, "-m", module, "--files", str(listing), "--views", str(views_file), "--config",
           json.dumps(config), "--group", group, "--batch-size", str(batch_size), "--workers", str(workers),
           "--epochs", str(epochs), "--out", str(out), "--no-progress", *extra]
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    except OSError as e:
        return [], f"failed: cannot start {python}: {e}"
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return [], f"failed in {python} (exit {proc.returncode}): " + " | ".join(tail)
    doc = json.loads(out.read_text())
    return figures_from_json(doc["figures"]), f"ran: {name} {doc['version']} ({python})"


def default_python(module: str) -> str | None:
    """This interpreter when it can import ``module``, else None (the peer is skipped unless a python is given)."""
    import importlib.util

    try:
        return sys.executable if importlib.util.find_spec(module) is not None else None
    except ModuleNotFoundError:  # a parent package is missing
        return None
