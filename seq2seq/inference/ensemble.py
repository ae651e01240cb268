"""Several models decoding as one: their next-token distributions averaged at every step.

An :class:`Ensemble` offers what search and scoring need of a model — ``encode``, ``step_log_probs`` and
``target_log_probs``, as :class:`~seq2seq.models.Seq2Seq` has them — so greedy search, beam search, sampling
and scoring run on it unchanged. Each member keeps its own memory and state;
beam search's reordering (``index_select`` on the batch axis) reaches every member's, so each hypothesis
goes on with every member's own state for it.

How the distributions are combined (``combine``):

* ``probability`` (fairseq's way): log of the mean of the members' probabilities,
  ``log(1/M sum_m p_m)``. A token one member is sure of and another rules out keeps half the mass.
* ``log_probability`` (OpenNMT-py's way, the default): the mean of the members' log-probabilities, not
  renormalised, so a hypothesis's score is the members' mean score (a token any member rules out stays
  ruled out).

Both were measured on Multi30k's validation split; the default is the better one there
(benchmarks/README.md, "Ensembles"). An ensemble of one is that model exactly: both reduce to its own
log-probabilities.

Attention is averaged over the members: alignments and heatmaps show where the ensemble as a whole looked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

COMBINE_MODES = ("probability", "log_probability")


class Stacked(tuple):
    """One entry per member (memories or states), selectable along the batch like a single model's."""

    def index_select(self, indices: Tensor) -> "Stacked":
        return Stacked(part.index_select(indices) for part in self)


def combine_log_probs(log_probs: Sequence[Tensor], combine: str) -> Tensor:
    """M tensors of log-probabilities, same shape -> one, as ``combine`` says (see the module docstring)."""
    if len(log_probs) == 1:
        return log_probs[0]
    stacked = torch.stack(list(log_probs))  # (M, ...)
    if combine == "probability":
        return torch.logsumexp(stacked, dim=0) - math.log(len(log_probs))
    return stacked.mean(dim=0)


class Ensemble(nn.Module):
    """Models with the same vocabularies (the caller checks their tokenizers) decoding together.

    Shapes: as :class:`~seq2seq.models.Seq2Seq`'s ``encode``, and ``step_log_probs`` tokens (N,) ->
    log_probs (N, V), attention (N, S), state.
    """

    def __init__(self, models: Sequence[nn.Module], combine: str = "log_probability") -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        if combine not in COMBINE_MODES:
            raise ValueError(f"ensemble combine must be one of {list(COMBINE_MODES)}, got {combine!r}")
        self.members = nn.ModuleList(models)
        self.combine = combine

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Stacked, Stacked]:
        encoded = [member.encode(src, src_lengths) for member in self.members]
        return Stacked(memory for memory, _ in encoded), Stacked(state for _, state in encoded)

    def step_log_probs(self, tokens: Tensor, memory: Stacked, state: Stacked) -> tuple[Tensor, Tensor, Stacked]:
        log_probs, attentions, states = [], [], []
        for member, member_memory, member_state in zip(self.members, memory, state):
            member_log_probs, attention, new_state = member.step_log_probs(tokens, member_memory, member_state)
            log_probs.append(member_log_probs)  # (N, V)
            attentions.append(attention)  # (N, S)
            states.append(new_state)
        attention = attentions[0] if len(attentions) == 1 else torch.stack(attentions).mean(dim=0)  # (N, S)
        return combine_log_probs(log_probs, self.combine), attention, Stacked(states)

    def target_log_probs(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, positions: Tensor) -> Tensor:
        """(N, V) log-probabilities of the next token at the N ``positions`` given the reference's previous
        tokens: each member's (``Seq2Seq.target_log_probs``), combined."""
        return combine_log_probs([member.target_log_probs(src, src_lengths, tgt_in, positions)
                                  for member in self.members], self.combine)
