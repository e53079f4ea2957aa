"""Measure git revisions of ``fastssl_loader`` side by side, for the benches that take ``--rev``.

Each revision's package is exported with ``git archive`` into a temporary folder (``WORKTREE`` = the working
tree itself) and measured by a worker process: the calling bench script run with ``--worker``, with the
revision's package first on ``PYTHONPATH`` and this tree after it, so ``fastssl_loader`` is the revision's and
``benches`` is this tree's. Revisions alternate over rounds (on a shared machine the load drifts), and each
figure keeps its best round: the minimum, except for rates (``higher_is_better`` keys), the maximum.

This module imports nothing from ``fastssl_loader``, so workers of old revisions can import it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

REPO = Path(__file__).resolve().parents[1]
WORKTREE = "WORKTREE"


def revision_parser(doc: str, out: str, rounds: int) -> argparse.ArgumentParser:
    """A bench's parser (described by its docstring's first line) with ``--rev`` (repeatable), ``--rounds``,
    ``--out`` (JSON path, default ``out``) and the hidden ``--worker``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--rev", action="append", help="git revision to measure (repeatable; WORKTREE = working "
                                                       "tree, the default); ratios are against the first")
    parser.add_argument("--rounds", type=int, default=rounds, help="alternating worker runs per revision (best)")
    parser.add_argument("--out", default=out, help="where to save the JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def parse_arguments(parser: argparse.ArgumentParser, worker: Callable[[argparse.Namespace], Any]
                    ) -> argparse.Namespace:
    """The parsed command line, ``rev`` defaulting to [WORKTREE]; in a worker process (``--worker``), print
    ``worker(args)`` as JSON (what :func:`run_worker` reads) and exit."""
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        raise SystemExit(0)
    args.rev = args.rev or [WORKTREE]
    return args


def export(rev: str, folder: Path) -> Path:
    """Folder holding revision ``rev``'s ``fastssl_loader`` package (the repo itself for WORKTREE)."""
    if rev == WORKTREE:
        return REPO
    target = folder / rev.replace("/", "_").replace("~", "-").replace("^", "-")
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "fastssl_loader"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def git_commit(rev: str) -> str:
    """Full commit id of ``rev`` (WORKTREE: HEAD plus a note when the tree has local changes)."""
    if rev != WORKTREE:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True, capture_output=True,
                              text=True).stdout.strip()
    head = git_commit("HEAD")
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "fastssl_loader"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" + local changes" if dirty else "")


def run_worker(script: str, package_root: Path, worker_args: Iterable[str], one_thread: bool = False) -> Any:
    """The JSON a ``script --worker ...`` process prints last, measuring the package under ``package_root``
    (``one_thread``: Numba and OpenMP limited to one thread)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package_root), str(REPO)]))
    if one_thread:
        env.update(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, script, "--worker", *worker_args], env=env, cwd=package_root,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(script).stem} worker for {package_root} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_of_rounds(revs: list[str], rounds: int, measure: Callable[[Path], dict],
                   higher_is_better: tuple[str, ...] = ()) -> dict[str, dict]:
    """Per revision, the best over ``rounds`` alternating calls of ``measure(package_root)`` of every figure in
    its (nested) result."""
    best: dict[str, dict] = {rev: {} for rev in revs}
    with tempfile.TemporaryDirectory(prefix="revisions_") as tmp:
        roots = {rev: export(rev, Path(tmp)) for rev in revs}
        for r in range(rounds):
            for rev in revs:
                print(f"round {r + 1}/{rounds}: {rev}", file=sys.stderr, flush=True)
                best[rev] = _better(best[rev], measure(roots[rev]), higher_is_better)
    return best


def _better(old: Any, new: Any, higher_is_better: tuple[str, ...], key: str = "") -> Any:
    """``new`` merged into ``old`` figure by figure, keeping the better of each (and every figure only one has)."""
    if isinstance(new, dict):
        merged = dict(old) if isinstance(old, dict) else {}
        for k, v in new.items():
            merged[k] = _better(merged.get(k), v, higher_is_better, k)
        return merged
    if old is None or not isinstance(new, (int, float)):
        return new
    return max(old, new) if key in higher_is_better else min(old, new)
