"""Resuming from a checkpoint written at the end of an epoch when ``trainer.max_steps`` is set.

``last.ckpt`` is written in ``on_train_epoch_end`` (and ModelCheckpoint writes ``best-*.ckpt`` there too), so the
fit loop's epoch progress in it reads ``ready == started == processed == completed + 1``: the epoch is done but
its ``completed`` counter is not yet incremented. Lightning (2.6) resumes such a checkpoint well when training is
epoch-based: it sees the epoch finished, does not "restart" it, and counts it completed. When
``trainer.max_steps`` is set it always restarts (``_FitLoop.restarting`` is forced on for iteration-based training)
and goes through the finished epoch's end a second time, counting it processed twice. Measured on a tiny run
(``tests/e2e/test_faults.py``): the resumed run then shuffled the next epoch as the one after it (the sampler's
epoch comes from that counter), so its losses left the uninterrupted run's from the first step, and it stopped
an epoch early by ``max_epochs``. A finished run resumed with a larger ``max_epochs`` trained no step at all.

:func:`resume_epoch_ends_as_lightning_does_without_max_steps` makes the fit loop take the epoch-based path for
exactly those checkpoints: an epoch that was finished is not restarted, whatever ``max_steps`` says. A checkpoint
written in the middle of an epoch (every N steps, a mid-epoch validation, a signal) restarts as before.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loops.fit_loop import _FitLoop
from lightning.pytorch.loops.loop import _Loop


class _FitLoopResumingFinishedEpochs(_FitLoop):
    @_Loop.restarting.setter
    def restarting(self, restarting: bool) -> None:
        current = self.epoch_progress.current
        # ready == started == processed: the epoch in the checkpoint ran to its end (completed is that or one less).
        epoch_finished = current.ready == current.started == current.processed
        if restarting and epoch_finished:
            _Loop.restarting.fset(self, False)
        else:
            _FitLoop.restarting.fset(self, restarting)


def resume_epoch_ends_as_lightning_does_without_max_steps(trainer: L.Trainer) -> None:
    """Give ``trainer``'s fit loop the behaviour described in the module docstring (before ``trainer.fit``)."""
    if type(trainer.fit_loop) is _FitLoop:
        trainer.fit_loop.__class__ = _FitLoopResumingFinishedEpochs
