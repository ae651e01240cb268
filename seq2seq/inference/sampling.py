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

import torch
from torch import Tensor

from seq2seq.decode_options import DecodeOptions


class Sampler:
    """Draws tokens as ``options`` say (``sampling`` topk or topp, ``top_k``, ``top_p``, ``temperature``; the
    options are checked where they are made), from ``generator``."""

    def __init__(self, options: DecodeOptions, generator: torch.Generator) -> None:
        if options.sampling == "none":
            raise ValueError("Sampler: options.sampling is 'none': greedy search takes the most probable token")
        self.method, self.top_k, self.top_p = options.sampling, options.top_k, options.top_p
        self.temperature = options.temperature
        self.generator = generator

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
