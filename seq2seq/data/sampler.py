"""Length-bucketed batches under a padded-token budget, sharded across DDP ranks.

How batches are formed, every epoch:

1. Sort all examples by length, then those of equal length by ``tie_lengths`` when given. The training
   loader gives the source lengths, then the decoder's: a batch whose sources all have one length needs no
   packing (the encoder then runs PyTorch's fused kernel), and the input-feeding decoder runs one step per
   position up to the batch's longest target, so alike targets mean fewer steps (how often and how much:
   benchmarks/README.md, "Short sequences, side by side"). Remaining ties are
   broken by a random permutation drawn from ``seed + epoch`` (or by index when ``shuffle=False``), so
   which examples share a batch changes between epochs.
2. Cut the sorted list into batches greedily: a batch grows while ``max length × sentences`` stays within
   ``max_tokens`` and its size within ``batch_size``. Since lengths are sorted, the *sequence* of lengths
   is the same every epoch, so the batch boundaries — and ``len(sampler)`` — never change.
3. Shuffle the order of the batches (``shuffle=True``), then give rank ``r`` of ``R`` the batches
   ``r, r + R, r + 2R, ...``.

When the number of batches is not divisible by ``num_replicas``, the first few batches of the (shuffled)
list are repeated so that every rank runs exactly the same number of steps — a rank that ran out early
would hang the others in the gradient all-reduce. Every example is then seen at least once per epoch, a
few twice. With one replica every example is seen exactly once.

Resuming mid-epoch: ``resume(epoch, batches_done)`` makes the next pass over that epoch skip the batches
this rank already trained on, so a run restarted from a mid-epoch checkpoint sees exactly the batches the
uninterrupted run would have. Every rank trains the same number of steps, so the same ``batches_done``
is right for every rank. ``len()`` stays the full epoch: Lightning counts the skipped batches as done.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of example indices; pass it as ``DataLoader(batch_sampler=...)``.

    Args:
        lengths: the padded length each example contributes, e.g. ``max(len(src), len(tgt) + 1)``.
        tie_lengths: rows of further lengths, (K, N), that order examples of equal ``lengths``, the first
            row first (e.g. source lengths, then the decoder's); None: only the random tie-breaking.
        max_tokens: budget on ``max(lengths in batch) × batch size``; ``None`` for no budget.
        batch_size: maximum sentences per batch; ``None`` for no limit. At least one limit is required.
        shuffle: random tie-breaking and batch order from ``seed + epoch``; ``False`` for a fixed order
            (shortest batches first) as used for validation and test.
        seed: base of the per-epoch random generator; identical on every rank.
        num_replicas, rank: DDP world size and this process's rank.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        tie_lengths: Sequence[Sequence[int]] | None = None,
        max_tokens: int | None,
        batch_size: int | None,
        shuffle: bool,
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if max_tokens is None and batch_size is None:
            raise ValueError(
                "BucketBatchSampler needs max_tokens or batch_size (data.max_tokens / data.batch_size); both are null"
            )
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or null, got {max_tokens}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or null, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        self.lengths = np.asarray(lengths, dtype=np.int32)  # (N,); int32 halves what 4.5 M examples cost per rank
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError("BucketBatchSampler got no examples")
        too_short = np.flatnonzero(self.lengths < 1)
        if len(too_short):
            index = int(too_short[0])
            raise ValueError(f"example {index} has length {self.lengths[index]}; lengths must be >= 1")
        too_long = np.flatnonzero(self.lengths > max_tokens) if max_tokens is not None else ()
        if len(too_long):
            index = int(too_long[0])
            raise ValueError(
                f"example {index} has length {self.lengths[index]} > max_tokens={max_tokens}: it cannot fit in any "
                f"batch; raise data.max_tokens or drop long examples with data.max_src_length/data.max_tgt_length"
            )
        self.tie_lengths = None if tie_lengths is None else np.asarray(tie_lengths, dtype=np.int32)  # (K, N)
        if self.tie_lengths is not None and (self.tie_lengths.ndim != 2 or self.tie_lengths.shape[1] != len(self.lengths)):
            raise ValueError(f"tie_lengths must be rows of {len(self.lengths)} lengths, got shape {self.tie_lengths.shape}")
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._resume_at: tuple[int, int] | None = None  # (epoch, batches to skip in it)
        self._batch_sizes = self._plan_batch_sizes(np.sort(self.lengths))
        self._num_batches_per_rank = math.ceil(len(self._batch_sizes) / num_replicas)

    def _plan_batch_sizes(self, sorted_lengths: np.ndarray) -> np.ndarray:
        """Greedy cut of ascending lengths: a batch takes the next example while its length (the batch maximum,
        lengths being sorted) times the new batch size fits ``max_tokens``, and the size fits ``batch_size``.

        One step per batch, not per example: since lengths ascend, ``length[start + c - 1] * c`` grows with
        ``c``, so the largest batch that fits is a binary search over a window no longer than the number of
        the shortest length's examples that fit the budget.
        """
        num_examples = len(sorted_lengths)
        max_sentences = self.batch_size or num_examples
        sizes, start = [], 0
        while start < num_examples:
            end = min(num_examples, start + max_sentences)
            if self.max_tokens is None:
                count = end - start
            else:
                end = min(end, start + self.max_tokens // int(sorted_lengths[start]))
                window = sorted_lengths[start:end]  # (c,)
                padded_tokens = window * np.arange(1, len(window) + 1)  # (c,) ascending
                count = max(1, int(np.searchsorted(padded_tokens, self.max_tokens, side="right")))
            sizes.append(count)
            start += count
        return np.asarray(sizes, dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order ``__iter__`` yields (Lightning calls this every epoch)."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int) -> None:
        """Continue ``epoch`` after its first ``batches_done`` batches (of this rank), as a restarted run must.

        Only a pass over ``epoch`` skips them, so resuming from a checkpoint written at the end of an epoch
        (``batches_done == len(self)``, and Lightning moves on to the next epoch) skips nothing.
        """
        if not 0 <= batches_done <= len(self):
            raise ValueError(f"batches_done must be in [0, {len(self)}], got {batches_done}")
        self.epoch = epoch
        self._resume_at = (epoch, batches_done)

    @property
    def sampler(self) -> BucketBatchSampler:
        """Lightning's ``_set_sampler_epoch`` calls ``set_epoch`` on ``dataloader.sampler`` and on
        ``dataloader.batch_sampler.sampler`` — never on the batch sampler itself. Answering ``self`` here
        is what gets our ``set_epoch`` called each epoch."""
        return self

    def _all_batches(self) -> list[np.ndarray]:
        """Every rank's batches for this epoch, in the order they are dealt out."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.shuffle:
            tie_order = torch.randperm(len(self.lengths), generator=generator).numpy().astype(np.int32)  # (N,)
        else:
            tie_order = np.arange(len(self.lengths), dtype=np.int32)
        if self.tie_lengths is None:
            order = tie_order[np.argsort(self.lengths[tie_order], kind="stable")]  # stable: ties keep tie_order
        else:  # by length, then the tie lengths row by row; lexsort (last key first) is stable: full ties keep tie_order
            keys = [row[tie_order] for row in self.tie_lengths[::-1]]
            order = tie_order[np.lexsort((*keys, self.lengths[tie_order]))]
        del tie_order
        batches = np.split(order, np.cumsum(self._batch_sizes)[:-1])
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        total = self._num_batches_per_rank * self.num_replicas
        if total > len(batches):  # repeat from the front, cyclically if there are fewer batches than ranks
            batches = [batches[i % len(batches)] for i in range(total)]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()[self.rank :: self.num_replicas]
        if self._resume_at is not None and self._resume_at[0] == self.epoch:
            batches = batches[self._resume_at[1] :]
            self._resume_at = None
        for batch in batches:
            yield batch.tolist()

    def __len__(self) -> int:
        return self._num_batches_per_rank
