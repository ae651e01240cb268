"""Keeping a run's work: ``last.ckpt`` kept current, and a clean stop on SIGTERM, SIGUSR1 or Ctrl-C.

:class:`LastCheckpoint` rewrites ``last.ckpt`` (atomically, see :mod:`seq2seq.training.checkpoint_io`) at every point
Lightning can resume from exactly, so a killed run loses at most the steps since then.

:class:`GracefulShutdown` turns SIGTERM (what ``kill``, SLURM, Kubernetes and most schedulers send), SIGUSR1
(what a SLURM job script asks for before its time limit, ``#SBATCH --signal=USR1@90``) and a first Ctrl-C
(SIGINT) into a clean stop: the step in progress finishes, together with the validation it triggers, then
``last.ckpt`` is written and :class:`TrainingInterrupted` ends the run, carrying the checkpoint to resume from.
``train.py`` turns that into one line on stderr with the command to resume, and exits with 128 + the signal
number (143 for SIGTERM, 138 for SIGUSR1, 130 for Ctrl-C): a job script tells a time limit from a cancellation
by it.

A second Ctrl-C stops at once (Lightning's own KeyboardInterrupt handling); the checkpoint is then written
from wherever the run was, unless it was in the middle of an optimizer update, whose parameters and
optimizer state could be half-updated: then the last checkpoint already on disk is kept.

Under DDP every rank checks, after each training batch, whether any rank was signalled (one small
all-reduce), so all ranks stop at the same step; only rank 0 writes. The signal is forwarded to the worker
processes that Lightning started itself (``strategy=ddp`` on one machine), as Lightning does.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)

# SIGUSR1: what a SLURM job is told to send before its time limit (#SBATCH --signal=USR1@90, docs/cluster.md).
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT) + ((signal.SIGUSR1,) if hasattr(signal, "SIGUSR1") else ())


class ClosingValidation(Callback):
    """Validates the final weights of a run that its budget ends between two validations.

    Lightning validates at the end of each epoch (or every ``trainer.val_check_interval`` steps). A run that
    ``trainer.max_steps`` ends in the middle of an epoch, or whose last epoch (``trainer.max_epochs``) ends
    between two interval validations, would end with its last steps never validated: the best checkpoint,
    early stopping's record and the test after training would not consider them. Lightning runs a
    validation after any training batch at which ``trainer.should_stop`` is set (that is how a run ended by
    ``trainer.max_time`` gets one: its Timer sets it); this sets it at the batch that ends the run. When a
    validation falls due at that batch anyway, it is the same one: a run is never validated twice at a step.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        last_step = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
        last_epoch = (trainer.max_epochs is not None and 0 < trainer.max_epochs <= trainer.current_epoch + 1
                      and bool(getattr(epoch_loop.batch_progress, "is_last_batch", False)))
        if last_step or last_epoch:
            trainer.should_stop = True


class LastCheckpoint(Checkpoint):
    """Rewrites ``dirpath/filename`` at the end of every training epoch, after every validation in the middle of
    one (``trainer.val_check_interval``), and every ``every_n_steps`` optimizer steps.

    Lightning's ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only when it also saves a top-k
    checkpoint, so a run whose monitored metric stopped improving would resume from its last improvement.
    Being a ``Checkpoint``, this callback runs after ModelCheckpoint, so the file also records its latest state.
    """

    def __init__(self, dirpath: str, every_n_steps: Optional[int] = None, filename: str = "last.ckpt") -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"checkpoint_every_n_steps must be positive or null, got {every_n_steps}")
        self.path = Path(dirpath) / filename
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Not when a validation follows: resuming from such a checkpoint would skip that validation, and the
        # checkpoint after it comes right away.
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and not _validation_follows(trainer):
            self._save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        if not getattr(trainer.fit_loop.epoch_loop.batch_progress, "is_last_batch", False):
            self._save(trainer)  # a validation in the middle of the epoch; at its end, on_train_epoch_end saves

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: L.Trainer) -> None:
        if not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)


class TrainingInterrupted(Exception):
    """Training stopped on a signal. ``checkpoint``: the file to resume from (None when there is none)."""

    def __init__(self, signal_name: str, global_step: int, checkpoint: Optional[Path], saved_now: bool,
                 exit_code: int) -> None:
        self.signal_name = signal_name
        self.global_step = global_step
        self.checkpoint = checkpoint
        self.exit_code = exit_code
        if checkpoint is None:
            where = "no checkpoint had been written yet"
        elif saved_now:
            where = f"saved {checkpoint}"
        else:
            where = f"the last checkpoint written before it is kept: {checkpoint}"
        super().__init__(f"training stopped by {signal_name} at global step {global_step}; {where}")

    @classmethod
    def from_worker(cls, error_line: str, checkpoint: Path) -> Optional[TrainingInterrupted]:
        """Rebuild the interruption a ``ddp_spawn`` worker raised, from the last line of its traceback."""
        match = re.search(r"TrainingInterrupted: training stopped by (SIG[A-Z0-9]+) at global step (\d+); (saved )?",
                          error_line)
        if match is None:
            return None
        saved = match[3] is not None
        return cls(match[1], int(match[2]), checkpoint if saved or checkpoint.is_file() else None, saved,
                   128 + int(signal.Signals[match[1]]))


class GracefulShutdown(Callback):
    """On SIGTERM, SIGUSR1 or Ctrl-C: finish the current step, write ``dirpath/filename``, stop with TrainingInterrupted.

    Args:
        dirpath: the run's checkpoint folder (the one ``ckpt_path=.../last.ckpt`` resumes from).
        filename: the checkpoint written on a stop; ``last.ckpt`` so that the usual resume command works.
    """

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.signal_received: Optional[int] = None
        # Set when the run ended on an interruption: train() raises it once Lightning has cleaned up.
        self.interruption: Optional[TrainingInterrupted] = None
        self._previous_handlers: dict[int, Any] = {}
        self._trainer: Optional[L.Trainer] = None
        self._in_update = False  # between the optimizer step's start and the end of the batch
        self._saving = False
        self._stop_after_validation = False
        self._saved_for_stop = False

    # ----------------------------------------------------------------------------------- signals
    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signal_received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.signal_received is None:
            self.signal_received = signum
            log.warning(
                "received %s: stopping after the current step, then saving %s (Ctrl-C again to stop at once)",
                signal.Signals(signum).name, self.path,
            )
            launcher = self._trainer.strategy.launcher if self._trainer is not None else None
            if signum != signal.SIGINT and launcher is not None:
                launcher.kill(signum)  # workers Lightning started itself would not hear it otherwise

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only lets the main thread handle signals; Lightning's own handling stays in place
        for signum in HANDLED_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)

    def _restore(self) -> None:
        for signum, handler in self._previous_handlers.items():
            if signal.getsignal(signum) == self._handle:  # Lightning ignores Ctrl-C while it shuts down: keep that
                signal.signal(signum, handler)
        self._previous_handlers = {}

    @contextmanager
    def spawned_workers_stop_gracefully(self, trainer: L.Trainer) -> Iterator[None]:
        """With ``ddp_spawn`` the launching process only waits for the workers, which run this callback. While they
        run it passes SIGTERM and SIGUSR1 on to them, and leaves a first Ctrl-C (which a terminal sends to the workers too) to
        them, so that they stop as described above and report back; a second Ctrl-C stops it at once."""
        from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

        launcher = trainer.strategy.launcher
        if not isinstance(launcher, _MultiProcessingLauncher) or threading.current_thread() is not threading.main_thread():
            yield
            return
        interrupts = []

        def forward(signum: int, frame: Optional[FrameType]) -> None:
            if signum != signal.SIGINT:
                launcher.kill(signum)
            elif interrupts:
                raise KeyboardInterrupt
            else:
                interrupts.append(signum)

        previous = {signum: signal.signal(signum, forward) for signum in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # ------------------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installs its own SIGTERM handler just before training starts; it would stop in the middle
        # of a validation run. This one replaces it for the duration of training.
        self._trainer = trainer
        self._install()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    # The run stops where Lightning resumes cleanly, the two places ModelCheckpoint saves: at the end of a training
    # batch, or, when that batch triggers a validation, at the end of the validation (Lightning skips a validation
    # due right after a batch-end checkpoint when it resumes from one).
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._in_update = False
        if self._stop_after_validation or not self._signalled(trainer):
            return
        if _validation_follows(trainer):
            self._stop_after_validation = True
            return
        self._save(trainer)
        raise self._interrupted(trainer, saved_now=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        if self._stop_after_validation or self._signalled(trainer):
            # LastCheckpoint, when there is one, writes last.ckpt right after this (and after ModelCheckpoint):
            # at the end of this validation, or of the epoch it ends. The run stops before the next batch.
            if not any(isinstance(callback, LastCheckpoint) for callback in trainer.callbacks):
                self._save(trainer)
            self._saved_for_stop = True

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self._saved_for_stop:
            raise self._interrupted(trainer, saved_now=True)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self._in_update = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)) or self.interruption is not None:
            return
        # Lightning stopped the run itself: a second Ctrl-C, or a SIGTERM that arrived before training started.
        signum = signal.SIGINT if isinstance(exception, KeyboardInterrupt) else signal.SIGTERM
        saved = False
        # Not before training started: a resumed run has not restored its state yet, and saving it would
        # overwrite the checkpoint it is resuming from when both live in the same folder.
        if self._in_update or self._saving:
            log.warning("stopped in the middle of an optimizer update or a checkpoint write: not saving now")
        elif self._trainer is not None:
            try:
                self._save(trainer)
                saved = True
            except Exception as error:  # noqa: BLE001 - reported, and the run is ending anyway
                log.error("could not save %s while stopping: %s", self.path, error)
        self.interruption = self._interrupted(trainer, saved_now=saved, signum=signum)

    def after_fit(self, trainer: L.Trainer) -> None:
        """Raise the interruption when a signal came so late that training completed anyway (its checkpoints are
        all written): the caller skips what would follow, e.g. testing."""
        if self.signal_received is not None and self.interruption is None:
            raise self._interrupted(trainer, saved_now=self._saved_for_stop)

    # --------------------------------------------------------------------------------- helpers
    def _save(self, trainer: L.Trainer) -> None:
        self._saving = True
        try:
            trainer.save_checkpoint(self.path, weights_only=False)
        finally:
            self._saving = False

    def _signalled(self, trainer: L.Trainer) -> bool:
        """Whether any rank received a signal (all ranks call this at the same points, so they stop together)."""
        stop = self.signal_received is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        return stop

    def _interrupted(self, trainer: L.Trainer, saved_now: bool, signum: Optional[int] = None) -> TrainingInterrupted:
        signum = signum or self.signal_received or signal.SIGTERM  # SIGTERM: another rank was signalled
        checkpoint = self.path if saved_now or self.path.is_file() else None
        self.interruption = TrainingInterrupted(
            signal.Signals(signum).name, trainer.global_step, checkpoint, saved_now, 128 + int(signum)
        )
        return self.interruption


def _validation_follows(trainer: L.Trainer) -> bool:
    """Whether Lightning runs a validation right after the current training batch (its own test, a private one)."""
    try:
        epoch_loop = trainer.fit_loop.epoch_loop
        return bool(epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
    except AttributeError:  # another Lightning version: stop at the batch end; resuming skips that one validation
        return False
