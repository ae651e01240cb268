"""A callback that prints when the first training step starts: ``FIRST_TRAINING_STEP <unix time>``.

``data_scale.py`` adds it to the runs it times (``+callbacks.first_step._target_=first_step.FirstStepClock``,
with this folder on ``PYTHONPATH``), to tell the time to the first step from the run's whole wall time.
"""

from __future__ import annotations

import sys
import time

from lightning.pytorch.callbacks import Callback


class FirstStepClock(Callback):
    def __init__(self) -> None:
        self.seen = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.seen and trainer.global_rank == 0:
            self.seen = True
            print(f"FIRST_TRAINING_STEP {time.time():.3f}", file=sys.stderr, flush=True)
