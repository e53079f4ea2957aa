"""FastSSLDataModule under a real Lightning Trainer on CPU: DDP sharding from the trainer, epochs that follow
the trainer's (also with reloaded dataloaders and a resumed fit), and the same batches as the plain Loader."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

if not any(importlib.util.find_spec(name) for name in ("lightning", "pytorch_lightning")):
    pytest.skip("needs the [lightning] extra (lightning or pytorch_lightning)", allow_module_level=True)

from fastssl_loader import Loader, write_dataset  # noqa: E402
from fastssl_loader.lightning import FastSSLDataModule  # noqa: E402
from tests import lightning_worker as worker  # noqa: E402
from tests.conftest import natural_image  # noqa: E402

N, WORLD = 40, 2
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 small JPEG samples whose label is their index, so validation batches name their samples."""
    path = tmp_path_factory.mktemp("lightning") / "data.fssl"
    samples = [(natural_image(20 + i % 7, 18 + (3 * i) % 11, seed=i), i) for i in range(N)]
    write_dataset(path, samples, mode="jpeg", num_workers=0, progress=False)
    return path


def plain_batches(data: Path, epoch: int, rank: int = 0, world_size: int = 1) -> list[tuple[list[int], str]]:
    """(indices, pixel digest) of every batch of the plain Loader with the worker's settings."""
    loader = Loader(data, worker.BATCH, worker.VIEWS, distributed=True, rank=rank, world_size=world_size,
                    return_indices=True, **worker.LOADER_OPTIONS)
    loader.set_epoch(epoch)
    return [(indices.tolist(), worker.digest(views)) for views, _, indices in loader]


def seen(record: dict, epoch: int) -> list[tuple[list[int], str]]:
    return [(b["indices"], b["digest"]) for b in record["train"] if b["epoch"] == epoch]


@pytest.mark.slow
@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
def test_ddp_two_ranks_share_epochs_like_the_plain_loader(data, tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO / "tests" / "lightning_worker.py"), str(data), str(tmp_path)]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [(r["rank"], r["world_size"]) for r in records] == [(0, WORLD), (1, WORLD)]
    for epoch in range(worker.EPOCHS):
        # every sample exactly once per epoch across the two ranks (40 = 2 ranks x 5 batches x 4)
        indices = [i for r in records for batch, _ in seen(r, epoch) for i in batch]
        assert sorted(indices) == list(range(N)), epoch
        for r, record in enumerate(records):
            steps = [b for b in record["train"] if b["epoch"] == epoch]
            assert all(b["loader_epoch"] == epoch for b in steps)  # trainer epoch e is loader epoch e
            assert all(b["targets"] == b["indices"] for b in steps)  # solo-learn shape: [indexes, views, targets]
            assert seen(record, epoch) == plain_batches(data, epoch, r, WORLD), (r, epoch)
        # validation after each epoch: (images, labels) of the eval view, every sample once across ranks
        val = [b for r in records for b in r["val"] if b["epoch"] == epoch and not b["sanity"]]
        assert sorted(i for b in val for i in b["indices"]) == list(range(N)), epoch
        assert all(b["shape"][1:] == [3, 16, 16] for b in val)
    for record in records:
        # epochs 0 and 1 ran on one loader, epoch 2 on a reloaded one (reload_dataloaders_every_n_epochs=2)
        loaders = [{b["loader_number"] for b in record["train"] if b["epoch"] == e} for e in range(worker.EPOCHS)]
        assert loaders == [{0}, {0}, {1}]
        for a, b in ((0, 1), (1, 2), (0, 2)):  # every epoch is new: other order, other augmentations
            assert seen(record, a) != seen(record, b)
            assert {d for _, d in seen(record, a)}.isdisjoint(d for _, d in seen(record, b))


def test_resumed_fit_continues_with_the_next_loader_epoch(data, tmp_path):
    """A fit resumed from an epoch-1 checkpoint gets a fresh DataModule: Lightning's set_epoch(1) must reach it."""
    first = worker.Recorder()
    fit = worker.trainer(1, devices=1, num_sanity_val_steps=0)
    fit.fit(first, datamodule=worker.datamodule(data))
    fit.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed = worker.Recorder()
    worker.trainer(2, devices=1, num_sanity_val_steps=0).fit(resumed, datamodule=worker.datamodule(data),
                                                            ckpt_path=tmp_path / "epoch1.ckpt")
    assert {b["epoch"] for b in resumed.train_batches} == {1}
    assert all(b["loader_epoch"] == 1 for b in resumed.train_batches)
    assert seen(first.record(), 0) == plain_batches(data, 0)
    assert seen(resumed.record(), 1) == plain_batches(data, 1)


def test_a_fit_resumed_mid_epoch_continues_at_the_next_batch(data, tmp_path):
    """Lightning stores the loader's state in a mid-epoch checkpoint; on resume it calls load_state_dict, then
    set_epoch(same epoch), then iterates: the rest of the epoch, exactly the batches the plain Loader yields."""
    def fit(model: worker.Recorder, ckpt: Path | None = None, **options) -> None:
        worker.pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
                          enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                          **options).fit(model, datamodule=worker.datamodule(data), ckpt_path=ckpt)

    first, resumed = worker.Recorder(), worker.Recorder()
    every_3_steps = worker.pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1)
    fit(first, callbacks=[every_3_steps])
    checkpoint = tmp_path / "epoch=0-step=3.ckpt"
    state = torch.load(checkpoint, weights_only=False)["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert [(s["epoch"], s["position"]) for s in state] == [(0, 3)]
    fit(resumed, ckpt=checkpoint, enable_checkpointing=False)
    expected = plain_batches(data, 0)
    assert seen(first.record(), 0) == expected
    assert seen(resumed.record(), 0) == expected[3:]


@pytest.mark.skipif(importlib.util.find_spec("pytorch_lightning") is None, reason="needs pytorch_lightning")
def test_pytorch_lightning_package_without_lightning(data, tmp_path):
    """Where only the older package name is installed, the DataModule is built on it and works the same."""
    script = ("import json, sys; sys.modules['lightning'] = None\n"  # as if lightning were not installed
              "from tests import lightning_worker as w\n"
              "assert w.pl.__name__ == 'pytorch_lightning', w.pl\n"
              "m = w.Recorder()\n"
              "w.trainer(2, devices=1, num_sanity_val_steps=0).fit(m, datamodule=w.datamodule(sys.argv[1]))\n"
              "print(json.dumps(m.record()))\n")
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, str(data)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen(record, 0) == plain_batches(data, 0) and seen(record, 1) == plain_batches(data, 1)


def test_fit_without_validation_data(data):
    model = worker.Recorder()
    dm = FastSSLDataModule(data, worker.VIEWS, worker.BATCH, batch_format="solo_learn",
                           train_options=worker.LOADER_OPTIONS)
    worker.trainer(1, devices=1).fit(model, datamodule=dm)
    assert len(model.train_batches) == N // worker.BATCH and model.val_batches == []


def test_without_a_trainer_the_datamodule_serves_the_whole_dataset(data):
    dm = FastSSLDataModule(data, worker.VIEWS, worker.BATCH, batch_format="lightly", train_options={"num_workers": 1})
    train = dm.train_dataloader()
    assert (train.rank, train.world_size, len(train)) == (0, 1, N // worker.BATCH)
    names = [name for _, _, filenames in train for name in filenames]
    assert sorted(names, key=int) == [str(i) for i in range(N)]
    assert dm.val_dataloader() == []


def test_val_path_needs_val_views(data):
    with pytest.raises(ValueError, match="val_views"):
        FastSSLDataModule(data, worker.VIEWS, worker.BATCH, val_path=data)


def test_missing_lightning_is_a_clear_error():
    script = ("import sys; sys.modules['lightning'] = sys.modules['pytorch_lightning'] = None\n"
              "import fastssl_loader, fastssl_loader.batch_formats\n"  # the core needs no extra
              "import fastssl_loader.lightning\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode != 0 and "pip install 'fastssl_loader[lightning]'" in done.stderr, done.stderr[-2000:]
