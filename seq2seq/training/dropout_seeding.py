"""Dropout masks that depend on where training is, not on how it got there: a resumed run draws the same ones.

Dropout draws from the global generator. Seeding it before every batch from (the run's seed, the optimizer
step, the micro-batch of an accumulated step, the rank) makes each batch's masks a function of that place
alone, so a run resumed from a checkpoint draws exactly the masks the uninterrupted run drew (checkpoints do
not hold generator states, and the data loader draws from the generator when an epoch begins).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class DropoutSeeding(Callback):
    def __init__(self) -> None:
        self.base_seed = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.base_seed = torch.initial_seed()  # train() seeded everything with cfg.seed just before

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        micro_batch = batch_idx % trainer.accumulate_grad_batches
        place = (self.base_seed, trainer.global_step, micro_batch, trainer.global_rank)
        torch.manual_seed(hash(place) % 2**63)  # hash() of a tuple of ints is the same in every process
