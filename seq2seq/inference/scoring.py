"""Scoring given targets: how probable the model finds a reference translation (teacher forcing).

A pair's log-probability is the sum, over the target's tokens and the closing eos, of the log-probability
of each given the source and the target's previous tokens; its per-token average and perplexity
(``exp(-average)``) follow. Summed over a batch, the negative is exactly the training loss's sum (without
label smoothing). For an ensemble, each step's distribution is the members' combined one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.data.collate import Batch
from seq2seq.data.tokenizer import PAD_ID


@dataclass(frozen=True)
class PairScore:
    """A (source, target) pair's score under the model; natural logarithms."""

    log_prob: float  # log P(target tokens and eos | source)
    num_tokens: int  # target tokens + 1 (the eos)

    @property
    def avg_log_prob(self) -> float:
        return self.log_prob / self.num_tokens

    @property
    def perplexity(self) -> float:
        return math.exp(-self.avg_log_prob)

    def to_dict(self) -> dict[str, float]:
        return {"log_prob": self.log_prob, "num_tokens": self.num_tokens, "avg_log_prob": self.avg_log_prob,
                "perplexity": self.perplexity}


@torch.inference_mode()
def target_log_probs(model, batch: Batch) -> tuple[Tensor, Tensor]:
    """(B,) summed log-probabilities of each row's ``tgt_out`` (eos included) and (B,) its token counts.

    ``model.target_log_probs`` is the one teacher-forced function, the training loss's too (a
    :class:`~seq2seq.models.Seq2Seq` or an :class:`~seq2seq.inference.ensemble.Ensemble`)."""
    real = batch.tgt_out != PAD_ID  # (B, T)
    log_probs = model.target_log_probs(batch.src, batch.src_lengths, batch.tgt_in, real)  # (N, V)
    picked = log_probs.gather(1, batch.tgt_out[real].unsqueeze(1)).squeeze(1)  # (N,)
    per_position = torch.zeros(real.shape, dtype=picked.dtype, device=picked.device)  # (B, T)
    per_position[real] = picked
    return per_position.sum(dim=1), real.sum(dim=1)
