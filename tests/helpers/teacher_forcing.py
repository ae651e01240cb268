"""A whole teacher-forced pass of a Seq2Seq, for tests that compare logits and attention everywhere."""

from __future__ import annotations

from torch import Tensor


def logits_and_attention(model, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T, V) logits at every target position, padded ones included, and (B, T, S) attention."""
    decoded = model.decode(src, src_lengths, tgt_in)
    return model.output_layer(decoded.outputs), decoded.attention
