"""Updates that would not be finite are skipped, and gradients are clipped: one decision, in one place.

After backward, :class:`NonFiniteUpdates` measures the gradients' norm as it clips them to
``trainer.gradient_clip_val`` (one pass over the gradients). When the loss or that norm is NaN or infinite,
the gradients are dropped, so the optimizer leaves every weight and its moments as they were: the step is
skipped with a warning naming the batch, and counted (``train/skipped_nonfinite``). After
``optim.max_nonfinite_in_a_row`` such steps in a row training stops with :class:`NonFiniteLossError`; none of
them changed the weights, so the checkpoints hold the weights from before.

With DDP the gradients are averaged across ranks in backward, so a NaN on one rank is a NaN on every rank,
and every rank skips the same step without being told.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss or its gradients were NaN or infinite for ``optim.max_nonfinite_in_a_row`` steps in a row."""


class NonFiniteUpdates(Callback):
    def __init__(self, max_in_a_row: int) -> None:
        if max_in_a_row < 1:
            raise ValueError(f"optim.max_nonfinite_in_a_row: must be at least 1, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0
        self.total = 0
        self._batch_idx = 0
        self._loss: Optional[Tensor] = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        max_norm = trainer.gradient_clip_val or math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(pl_module.parameters(), max_norm)  # the norm before clipping
        pl_module.log("train/grad_norm", grad_norm, on_step=True, on_epoch=False)
        loss_finite = self._loss is None or bool(torch.isfinite(self._loss))
        if loss_finite and bool(torch.isfinite(grad_norm)):
            self.in_a_row = 0
        else:
            self._skip(trainer, pl_module, optimizer, loss_finite, float(grad_norm))
        pl_module.log("train/skipped_nonfinite", float(self.total), on_step=True, on_epoch=False)

    def _skip(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any, loss_finite: bool,
              grad_norm: float) -> None:
        # Gradients set to None: the optimizer leaves those parameters and their state (moments) untouched.
        optimizer.zero_grad(set_to_none=True)
        self.in_a_row += 1
        self.total += 1
        what = "gradients" if loss_finite else "loss"
        where = f"batch {self._batch_idx} of epoch {trainer.current_epoch} (global step {trainer.global_step})"
        log.warning(
            "non-finite training %s (loss %s, gradient norm %s) at %s: update skipped (%d in a row, %d in total; "
            "training stops at %d in a row, optim.max_nonfinite_in_a_row)", what,
            float(self._loss) if self._loss is not None else "?", grad_norm, where, self.in_a_row, self.total,
            self.max_in_a_row,
        )
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteLossError(
                f"training stopped: the loss or its gradients were NaN or infinite for {self.in_a_row} batches in a "
                f"row (optim.max_nonfinite_in_a_row={self.max_in_a_row}), the last at {where}. None of them changed "
                f"the weights, so the checkpoints hold the weights from before; lower optim.lr, set "
                f"trainer.gradient_clip_val, or check the data"
            )
