"""Sampling the next token instead of taking the most probable one: top-k and top-p (nucleus) sampling.

Used for back-translation and for diverse outputs. At each step the model's distribution is sharpened or
flattened by ``temperature`` (log-probabilities divided by it), cut to the ``top_k`` most probable tokens
(``topk``) or to the smallest set whose probability reaches ``top_p`` (``topp``, the most probable token
always kept), renormalised, and one token drawn from it. The hypothesis's score stays the sum of the
*model's* log-probabilities of the drawn tokens (untempered, uncut), so it compares with greedy and beam
scores.

Draws come from a ``torch.Generator`` seeded by the caller: the same seed, inputs and batching give the
same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.config_checks import SAMPLING_METHODS


@dataclass
class Sampler:
    method: str  # topk | topp
    top_k: int
    top_p: float
    temperature: float
    generator: torch.Generator

    def __post_init__(self) -> None:
        if self.method not in SAMPLING_METHODS[1:]:
            raise ValueError(f"sampling must be one of {list(SAMPLING_METHODS[1:])} to sample, got {self.method!r}")
        if self.method == "topk" and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 with sampling=topk, got {self.top_k}")
        if self.method == "topp" and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] with sampling=topp, got {self.top_p}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    def pick(self, log_probs: Tensor) -> Tensor:
        """(N, V) log-probabilities (-inf for impossible tokens) -> (N,) drawn token ids."""
        logits = log_probs / self.temperature
        if self.method == "topk":
            k = min(self.top_k, logits.size(-1))
            threshold = logits.topk(k, dim=-1).values[:, -1:]  # (N, 1) the k-th largest
            logits = logits.masked_fill(logits < threshold, float("-inf"))
        else:
            sorted_logits, order = logits.sort(dim=-1, descending=True)  # (N, V)
            probs = torch.softmax(sorted_logits, dim=-1)
            before = probs.cumsum(dim=-1) - probs  # (N, V) mass of the more probable tokens
            cut = before >= self.top_p  # the most probable token has 0 before it: always kept
            logits = logits.scatter(1, order, sorted_logits.masked_fill(cut, float("-inf")))
        probs = torch.softmax(logits, dim=-1)  # (N, V)
        return torch.multinomial(probs, 1, generator=self.generator).squeeze(1)  # (N,)
