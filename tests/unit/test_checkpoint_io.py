"""Atomic checkpoint writes, and resuming mid-epoch with exactly the batches an uninterrupted run would train on."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.training.checkpoint_io import AtomicCheckpointIO
from tests.unit.test_data_datamodule import numbers_module

pytestmark = pytest.mark.usefixtures("single_thread")


# --- AtomicCheckpointIO -------------------------------------------------------------------------------------

class _DiesHalfWay(AtomicCheckpointIO):
    """Writes half of the checkpoint, then fails as a crash would."""

    def _write(self, checkpoint, file):
        file.write(b"PK\x03\x04 half of a zip archive")
        raise OSError("disk went away")


def test_a_checkpoint_round_trips(tmp_path):
    path = tmp_path / "sub" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 3, "weights": torch.arange(4.0)}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["global_step"] == 3 and torch.equal(loaded["weights"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_a_failed_write_leaves_the_previous_checkpoint_whole_and_no_temporary_file(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, path)
    before = path.read_bytes()
    with pytest.raises(OSError, match="disk went away"):
        _DiesHalfWay().save_checkpoint({"global_step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_temporary_file_of_a_killed_writer_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".last.ckpt.abc123.tmp"  # what a process killed mid-write leaves
    stale.write_bytes(b"PK\x03\x04 half")
    other = tmp_path / ".best.ckpt.abc123.tmp"  # another checkpoint's: not ours to remove
    other.write_bytes(b"x")
    AtomicCheckpointIO().save_checkpoint({"global_step": 1}, tmp_path / "last.ckpt")
    assert not stale.exists() and other.exists()


# --- BucketBatchSampler.resume ------------------------------------------------------------------------------

LENGTHS = [1 + (7 * i) % 13 for i in range(60)]


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_resume_skips_exactly_the_batches_done_in_that_epoch_only(num_replicas):
    for rank in range(num_replicas):
        def make():
            return BucketBatchSampler(LENGTHS, max_tokens=40, batch_size=None, shuffle=True, seed=3,
                                      num_replicas=num_replicas, rank=rank)

        reference = make()
        reference.set_epoch(1)
        epoch1 = list(reference)
        reference.set_epoch(2)
        epoch2 = list(reference)
        resumed = make()
        resumed.resume(epoch=1, batches_done=3)
        assert len(resumed) == len(epoch1)  # Lightning counts the skipped batches as done
        resumed.set_epoch(1)
        assert list(resumed) == epoch1[3:]
        resumed.set_epoch(2)
        assert list(resumed) == epoch2  # the next epoch is whole


def test_resuming_at_the_end_of_an_epoch_skips_nothing_in_the_next():
    sampler = BucketBatchSampler(LENGTHS, max_tokens=40, batch_size=None, shuffle=True, seed=3)
    sampler.resume(epoch=0, batches_done=len(sampler))
    sampler.set_epoch(1)
    assert len(list(sampler)) == len(sampler)
    with pytest.raises(ValueError, match="batches_done"):
        sampler.resume(epoch=0, batches_done=len(sampler) + 1)


def test_the_loader_state_names_the_epoch_and_lightnings_count_of_batches_done(tmp_path, caplog):
    dm = numbers_module(tmp_path / "numbers", max_tokens=200)
    dm.setup("fit")
    progress = SimpleNamespace(current=SimpleNamespace(processed=2))
    dm.trainer = SimpleNamespace(world_size=1, global_rank=0,
                                 fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)))
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(4)
    state = loader.state_dict()
    assert state == {"epoch": 4, "batches_done": 2, "num_batches": len(loader), "num_replicas": 1}
    fresh = dm.train_dataloader()
    fresh.load_state_dict(state)
    assert len(list(fresh)) == len(loader) - 2
    other = dm.train_dataloader()
    with caplog.at_level(logging.WARNING):
        other.load_state_dict({**state, "num_batches": len(loader) + 5})  # another data set or batch size
    assert "starts over" in caplog.text and len(list(other)) == len(loader)


# --- through Lightning --------------------------------------------------------------------------------------

class _Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch.indices.tolist())
        return self.weight * batch.src.float().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _CrashAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("crash")


def _fit(root: Path, dm, model, *callbacks, ckpt_path=None):
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, default_root_dir=root, limit_val_batches=0, plugins=[AtomicCheckpointIO()],
        callbacks=[ModelCheckpoint(dirpath=root, save_top_k=0, save_last=True, every_n_train_steps=1,
                                   enable_version_counter=False), *callbacks],
    )
    trainer.fit(model, dm, ckpt_path=ckpt_path)
    return trainer


def test_lightning_resumes_mid_epoch_with_the_batches_the_uninterrupted_run_trains_on(tmp_path, recwarn):
    dm = numbers_module(tmp_path / "numbers", max_tokens=200)
    reference = _Recorder()
    _fit(tmp_path / "a", dm, reference)
    steps_per_epoch = len(reference.seen) // 2
    crash_at = steps_per_epoch + 2  # in the middle of the second epoch
    with pytest.raises(RuntimeError, match="crash"):
        _fit(tmp_path / "b", dm, _Recorder(), _CrashAt(crash_at))
    resumed = _Recorder()
    trainer = _fit(tmp_path / "c", dm, resumed, ckpt_path=tmp_path / "b" / "last.ckpt")
    assert trainer.global_step == len(reference.seen)
    assert resumed.seen == reference.seen[crash_at:]
    assert not [w for w in recwarn if "not resumable" in str(w.message)]
