"""Attention: how much each source position matters for each decoder step.

Score functions (``kind``):

* ``bahdanau`` -- additive (Bahdanau et al., 2015): ``v . tanh(W_q q + W_k k)``. ``W_k k`` does not depend
  on the decoder step, so it is computed once per batch by :meth:`Attention.project_keys` and passed in.
* ``dot`` -- Luong et al. (2015): ``q . k``; needs query and key sizes to match.
* ``general`` -- Luong et al. (2015): ``q . (W k)``, computed as ``(W^T q) . k`` so that the per-step cost
  does not grow with the source length.

The module is stateless: projected keys are returned to the caller, never cached on ``self``, so a
batch can never see another batch's keys. Padded source positions get a score of -inf before the
softmax, so their weight is exactly 0 and every row sums to 1.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

KINDS = ("bahdanau", "dot", "general")


class AttentionOutput(NamedTuple):
    context: Tensor  # (B, T, K) weighted sum of the keys
    weights: Tensor  # (B, T, S) rows sum to 1; exactly 0 at padded source positions


class Attention(nn.Module):
    """Shapes:
        query: (B, T, Q) -- T decoder steps at once (T = 1 when decoding step by step)
        keys: (B, S, K) encoder outputs; mask: (B, S) bool, True at real tokens
        projected_keys: (B, S, A) from :meth:`project_keys` (``bahdanau`` only)
        returns AttentionOutput(context (B, T, K), weights (B, T, S))
    """

    def __init__(self, kind: str, query_size: int, key_size: int, attention_size: Optional[int] = None) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"attention must be one of {list(KINDS)}, got {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise ValueError(
                f"'dot' attention needs query size == key size, got {query_size} and {key_size}; use 'general'"
            )
        self.kind = kind
        if kind == "bahdanau":
            attention_size = attention_size or query_size
            self.key_projection = nn.Linear(key_size, attention_size, bias=False)
            self.query_projection = nn.Linear(query_size, attention_size, bias=False)
            self.energy = nn.Linear(attention_size, 1, bias=False)
        elif kind == "general":
            self.query_projection = nn.Linear(query_size, key_size, bias=False)

    def project_keys(self, keys: Tensor) -> Optional[Tensor]:
        """The step-independent part of the scores, once per batch: (B, S, A) for ``bahdanau``, else None."""
        if self.kind == "bahdanau":
            return self.key_projection(keys)  # (B, S, A)
        return None

    def scores(self, query: Tensor, keys: Tensor, projected_keys: Optional[Tensor]) -> Tensor:
        """Unnormalised scores (B, T, S)."""
        if self.kind == "bahdanau":
            if projected_keys is None:
                projected_keys = self.project_keys(keys)
            projected_query = self.query_projection(query)  # (B, T, A)
            hidden = torch.tanh(projected_query.unsqueeze(2) + projected_keys.unsqueeze(1))  # (B, T, S, A)
            return self.energy(hidden).squeeze(-1)  # (B, T, S)
        if self.kind == "general":
            query = self.query_projection(query)  # (B, T, K)
        return torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor, projected_keys: Optional[Tensor] = None) -> AttentionOutput:
        scores = self.scores(query, keys, projected_keys)  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        context = torch.bmm(weights, keys)  # (B, T, K)
        return AttentionOutput(context=context, weights=weights)
