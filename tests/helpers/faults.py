"""Faults at chosen moments of a real run: SIGKILL, a NaN loss, an exception on one DDP rank, a pause for a signal;
and a recorder of the weights around chosen steps, for in-process runs."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback

from seq2seq.training.callbacks import GracefulShutdown
from seq2seq.training.checkpoint_io import AtomicCheckpointIO


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(Callback):
    """SIGKILL this process at ``global_step`` (optimizer steps done so far), at one of three moments:

    ``step``: in the middle of a training step, after backward and before the optimizer update;
    ``validation``: after the first batch of the validation that runs at that step;
    ``checkpoint_write``: half-way through writing ``last.ckpt`` for that step (the first half of its bytes is
    in the temporary file when the process dies).
    """

    WHERE = ("step", "validation", "checkpoint_write")

    def __init__(self, where: str, global_step: int) -> None:
        if where not in self.WHERE:
            raise ValueError(f"where must be one of {self.WHERE}, got {where!r}")
        self.where = where
        self.global_step = global_step

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.where != "checkpoint_write":
            return
        io = trainer.strategy.checkpoint_io
        assert isinstance(io, AtomicCheckpointIO), f"checkpoints are written by {type(io).__name__}"
        write = io._write

        def write_half_then_die(checkpoint: dict[str, Any], file: Any) -> None:
            if checkpoint.get("global_step") != self.global_step or not Path(file.name).name.startswith(".last.ckpt"):
                write(checkpoint, file)
                return
            import io as _io

            import torch

            buffer = _io.BytesIO()
            torch.save(checkpoint, buffer)
            data = buffer.getvalue()
            file.write(data[: len(data) // 2])
            file.flush()
            os.fsync(file.fileno())
            _die()

        io._write = write_half_then_die

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self.where == "step" and trainer.global_step == self.global_step:
            _die()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.where == "validation" and not trainer.sanity_checking and trainer.global_step == self.global_step:
            _die()


class DiskFullAt(Callback):
    """Every checkpoint write from ``global_step`` on fails as on a full disk: half of its bytes reach the temporary
    file, then the write raises ``OSError(ENOSPC)`` (or, with ``torch_error``, the RuntimeError torch's zip writer
    raises when the disk fills under it)."""

    def __init__(self, global_step: int, torch_error: bool = False) -> None:
        self.global_step = global_step
        self.torch_error = torch_error

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        assert isinstance(io, AtomicCheckpointIO), f"checkpoints are written by {type(io).__name__}"
        write = io._write

        def write_half_then_fail(checkpoint: dict[str, Any], file: Any) -> None:
            if checkpoint.get("global_step", 0) < self.global_step:
                write(checkpoint, file)
                return
            import errno
            import io as _io

            import torch

            buffer = _io.BytesIO()
            torch.save(checkpoint, buffer)
            file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            if self.torch_error:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3033216 vs 3033108")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        io._write = write_half_then_fail


class NanLoss(Callback):
    """Make the training loss NaN at the given global steps (on ``rank`` only, or on every rank)."""

    def __init__(self, steps: Sequence[int], rank: Optional[int] = None) -> None:
        self.steps = set(steps)
        self.rank = rank

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        loss = pl_module.loss

        def nan_loss(batch: Any):
            loss_sum, num_tokens = loss(batch)
            if (pl_module.training and trainer.global_step in self.steps
                    and self.rank in (None, trainer.global_rank)):
                loss_sum = loss_sum * math.nan
            return loss_sum, num_tokens

        pl_module.loss = nan_loss


class FailOnRank(Callback):
    """Raise on one DDP rank at ``global_step``, after its forward pass and before its backward (in which the other
    ranks wait for its gradients)."""

    def __init__(self, rank: int, global_step: int) -> None:
        self.rank = rank
        self.global_step = global_step

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Any) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.global_step:
            raise RuntimeError(f"injected failure on rank {self.rank} at global step {self.global_step}")


class WaitForSignal(Callback):
    """At the end of the step that reaches ``global_step``, create ``marker`` and wait (at most ``timeout`` seconds)
    until the run's GracefulShutdown has received a signal: the test sends it once the marker exists."""

    def __init__(self, global_step: int, marker: str, timeout: float = 60.0) -> None:
        self.global_step = global_step
        self.marker = Path(marker)
        self.timeout = timeout

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step != self.global_step:
            return
        shutdown = next(callback for callback in trainer.callbacks if isinstance(callback, GracefulShutdown))
        self.marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while shutdown.signal_received is None and time.monotonic() < deadline:
            time.sleep(0.02)


class RecordWeights(Callback):
    """Copies of the LightningModule's state_dict at the start (``before``) and end (``after``) of the given steps.

    For runs inside the test process: the latest instance is ``RecordWeights.latest``.
    """

    latest: ClassVar[Optional[RecordWeights]] = None

    def __init__(self, steps: Sequence[int]) -> None:
        self.steps = set(steps)
        self.before: dict[int, dict[str, Any]] = {}
        self.after: dict[int, dict[str, Any]] = {}
        RecordWeights.latest = self

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.global_step in self.steps:
            self.before[trainer.global_step] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step - 1 in self.steps:
            self.after[trainer.global_step - 1] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


class SignalAt(Callback):
    """Send ``signum`` to this very process at the end of the step that reaches ``global_step``."""

    def __init__(self, global_step: int, signum: int = int(signal.SIGTERM)) -> None:
        self.global_step = global_step
        self.signum = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step == self.global_step:
            os.kill(os.getpid(), self.signum)
