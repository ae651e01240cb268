"""The training loader that Lightning can resume in the middle of an epoch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from torch.utils.data import DataLoader

log = logging.getLogger(__name__)


class ResumableLoader(DataLoader):
    """The training loader: a ``DataLoader`` over a :class:`BucketBatchSampler` that Lightning can resume mid-epoch.

    Lightning saves ``state_dict()`` in every checkpoint and, when a run restarts in the middle of an epoch,
    passes it to ``load_state_dict`` before the first batch (a loader without these methods would start the
    epoch over, training twice on its first batches and never on its last). ``batches_done`` returns how many
    of the current epoch's batches are finished at the moment of saving.
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        sampler = self.batch_sampler
        return {
            "epoch": sampler.epoch,
            "batches_done": self._batches_done(),
            "num_batches": len(sampler),
            "num_replicas": sampler.num_replicas,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.batch_sampler
        saved = (state.get("num_batches"), state.get("num_replicas"))
        if saved != (len(sampler), sampler.num_replicas):
            log.warning(
                "the checkpoint was written with %s batches per epoch on each of %s ranks, this run has %d on each "
                "of %d (different data, batch settings or number of devices): the interrupted epoch starts over",
                *saved, len(sampler), sampler.num_replicas,
            )
            return
        epoch, batches_done = int(state["epoch"]), int(state["batches_done"])
        sampler.resume(epoch, batches_done)
        if batches_done == len(sampler):
            log.info("resuming after the end of epoch %d (counted from 0)", epoch)
        else:
            log.info("resuming epoch %d (counted from 0) after its first %d batches", epoch, batches_done)
