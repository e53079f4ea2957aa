"""Rate of our Loader at ladder rungs 1 (crop+flip) and 5 (the full BYOL recipe), per git revision.

Question answered: what share of the crop+flip rate does the full BYOL recipe keep (rung 5 / rung 1), and did
a change to the kernels raise it? Data: ``../shared/data/imagenet-sample`` (1,000 real photos) converted once
as JPEG q90 capped at 512 px (``--data FILE.fssl`` to use another converted file). Loader: two BYOL views at
224 px, ``--workers`` threads, ``--batch-size``, random order, CPU float32 output, set up as the ladder's
``benches.ladder.run_fastssl``.

Each revision's ``fastssl_loader`` (``WORKTREE`` = the working tree) runs in its own process (see
:mod:`benches.revisions`); revisions alternate over ``--rounds`` rounds, and each figure keeps its best round.
Three figures per rung: wall-clock images/s, the process CPU time per image and the minor page faults per image
(were the kernels' temporaries mapped afresh per image, each 4 KiB page would fault; in the steady state glibc
reuses them and the figure is about 0). On a machine shared with other work the wall-clock rates swing with
the load (rung 1 of two identical revisions can differ by 20%); the CPU time per image does not, and its ratio
(rung 1 / rung 5) is the rate ratio the loader reaches when it has its cores to itself (its threads are busy
all the time: decode and kernels, no I/O waits on a cached file).

Run: ``python -m benches.rung_ratio [--rev 682adc4 --rev WORKTREE] [--epochs 3] [--rounds 2]
[--out bench_results/rung_ratio.json]``
"""
from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from benches.report import save_json
from benches.revisions import REPO, best_of_rounds, git_commit, parse_arguments, revision_parser, run_worker

# ../shared/data as tests/conftest.py finds it (FASTSSL_SHARED_DATA overrides, e.g. from a git worktree)
SHARED_DATA = Path(os.environ.get("FASTSSL_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_DIR = SHARED_DATA / "imagenet-sample"
RUNGS = (1, 5)


def converted_sample(folder: Path) -> Path:
    """The ImageNet sample converted as JPEG q90 at most 512 px (written once into ``folder``)."""
    from fastssl_loader.sources.imagefolder import list_flat_samples
    from fastssl_loader import write_dataset

    target = folder / "imagenet-sample-jpeg-r512-q90.fssl"
    if not target.is_file():
        samples, _ = list_flat_samples(SAMPLE_DIR)
        write_dataset(target, samples, mode="jpeg", max_resolution=512, jpeg_quality=90, progress=False)
    return target


def rates(data: str, epochs: int, batch_size: int, workers: int) -> dict[str, dict[str, float]]:
    """Rung -> images/s (wall clock) and process CPU microseconds per image over ``epochs`` epochs (after one
    warm-up epoch), for the ladder's views and our Loader set up as ``benches.ladder.run_fastssl`` does."""
    import fastssl_loader as fsl
    from benches import ladder
    from benches.report import count_images

    out = {}
    for rung in RUNGS:
        loader = fsl.Loader(data, batch_size, ladder.byol_rung(rung, 224), num_workers=workers,
                            order="random", seed=0, drop_last=False, device="cpu")
        try:
            loader.warmup()
            count_images(loader, progress=False)  # warm-up epoch
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            wall, cpu = time.perf_counter(), time.process_time()
            images = sum(count_images(loader, progress=False) for _ in range(epochs))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        finally:
            loader.close()
        out[str(rung)] = {"images_per_s": images / wall, "cpu_us_per_image": cpu / images * 1e6,
                          "page_faults_per_image": faults / images}
    return out


def main() -> None:
    parser = revision_parser(__doc__, out="bench_results/rung_ratio.json", rounds=2)
    parser.add_argument("--data", type=Path, help="converted .fssl file (default: the ImageNet sample, converted)")
    parser.add_argument("--epochs", type=int, default=3, help="measured epochs per figure (median)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="loader threads")
    args = parse_arguments(parser, lambda args: rates(str(args.data), args.epochs, args.batch_size, args.workers))
    revs = args.rev
    with tempfile.TemporaryDirectory(prefix="rung_ratio_") as tmp:
        data = args.data or converted_sample(Path(tmp))
        worker_args = ["--data", str(data), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                       "--workers", str(args.workers)]
        best = best_of_rounds(revs, args.rounds, lambda root: run_worker(__file__, root, worker_args),
                              higher_is_better=("images_per_s",))
    print(f"\ntwo BYOL views at 224 px, {args.workers} threads, batch {args.batch_size}, {args.epochs} epochs; best of "
          f"{args.rounds} rounds. CPU ratio = CPU time per image at rung 1 / at rung 5: the rate ratio when the "
          "loader has its cores to itself (wall-clock rates depend on the machine's other load)")
    print(f"{'revision':<24}{'img/s 1':>9}{'img/s 5':>9}{'5 / 1':>7}{'cpu us 1':>10}{'cpu us 5':>10}{'CPU ratio':>11}"
          f"{'faults/img 1':>14}{'faults/img 5':>14}")
    for rev in revs:
        one, five = best[rev]["1"], best[rev]["5"]
        print(f"{rev[:24]:<24}{one['images_per_s']:>9.0f}{five['images_per_s']:>9.0f}"
              f"{five['images_per_s'] / one['images_per_s']:>7.2f}{one['cpu_us_per_image']:>10.0f}"
              f"{five['cpu_us_per_image']:>10.0f}{one['cpu_us_per_image'] / five['cpu_us_per_image']:>11.2f}"
              f"{one['page_faults_per_image']:>14.1f}{five['page_faults_per_image']:>14.1f}")
    report = {"what": "rates of the Loader at rungs 1 and 5 (two BYOL views at 224 px): wall-clock images/s and "
                      "process CPU microseconds per image, and their ratios",
              "data": str(args.data or SAMPLE_DIR), "epochs": args.epochs, "rounds": args.rounds,
              "batch_size": args.batch_size, "workers": args.workers,
              "machine": {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg()},
              "revisions": {rev: {"commit": git_commit(rev), "rungs": best[rev],
                                  "wall_ratio_5_to_1": best[rev]["5"]["images_per_s"] / best[rev]["1"]["images_per_s"],
                                  "cpu_ratio_5_to_1": best[rev]["1"]["cpu_us_per_image"]
                                  / best[rev]["5"]["cpu_us_per_image"]} for rev in revs}}
    print(f"\nsaved {save_json(args.out, report)}")


if __name__ == "__main__":
    main()
