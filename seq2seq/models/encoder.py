"""The packed, optionally bidirectional RNN encoder.

Where each piece of an RNN's result lives (``nn.LSTM``/``nn.GRU`` with ``batch_first=True``):

* ``output`` (B, S, D*H) is the *top layer only*, at *every* time step, both directions side by side
  on the last axis: ``output[..., :H]`` is the forward direction, ``output[..., H:]`` the backward one.
* ``h_n`` (and ``c_n``) is *every layer*, at the *last* step of each direction only. Its layout is
  ``(L*D, B, H)`` -- ``batch_first`` never applies to it -- and is explained where it is reshaped below.
* For a sequence of length n the forward direction ends at position n-1, so its final state equals
  ``output[b, n-1, :H]``. The backward direction runs from n-1 down to 0 and ends at position 0, so its
  final state equals ``output[b, 0, H:]``. ``output[b, -1]`` is padding for every sequence shorter than
  the batch, and even for the longest one its backward half is the backward direction's *first* step.

Packing (``pack_padded_sequence``) makes the RNN stop at each sequence's own length, so padding never
reaches a real position, and ``h_n`` holds each sequence's true final state, not the state after the
padding.
"""

from __future__ import annotations

from typing import NamedTuple, Union

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# An RNN state as PyTorch RNNs take and give it: h for a GRU, (h, c) for an LSTM.
RNNState = Union[Tensor, tuple[Tensor, Tensor]]

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU}


def make_rnn(rnn_type: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, dropout: float) -> nn.RNNBase:
    """A batch-first ``nn.LSTM`` or ``nn.GRU``; ``dropout`` acts between stacked layers only."""
    if rnn_type not in RNN_TYPES:
        raise ValueError(f"rnn_type must be one of {sorted(RNN_TYPES)}, got {rnn_type!r}")
    return RNN_TYPES[rnn_type](
        input_size,
        hidden_size,
        num_layers=num_layers,
        batch_first=True,
        bidirectional=bidirectional,
        dropout=dropout if num_layers > 1 else 0.0,
    )


def map_state(state: RNNState, fn) -> RNNState:
    """Apply ``fn`` to h (GRU) or to each of h and c (LSTM)."""
    if isinstance(state, tuple):
        return tuple(fn(part) for part in state)
    return fn(state)


def check_lengths(lengths: Tensor, batch_size: int, max_length: int) -> Tensor:
    """Validate ``lengths`` (B,) against a (B, S) batch and return them on the CPU, as packing needs."""
    if lengths.dim() != 1 or lengths.numel() != batch_size:
        raise ValueError(f"lengths must have shape ({batch_size},), got {tuple(lengths.shape)}")
    lengths = lengths.detach().to("cpu", torch.long)
    bad = (lengths <= 0).nonzero().flatten()
    if len(bad):
        index = int(bad[0])
        raise ValueError(
            f"every sequence needs at least one token: lengths[{index}] = {int(lengths[index])} at batch index {index}"
        )
    too_long = (lengths > max_length).nonzero().flatten()
    if len(too_long):
        index = int(too_long[0])
        raise ValueError(
            f"lengths[{index}] = {int(lengths[index])} is longer than the padded input ({max_length} steps) at batch index {index}"
        )
    return lengths


class EncoderOutput(NamedTuple):
    outputs: Tensor  # (B, S, D*H) top layer, every step; exactly 0 at padded positions
    mask: Tensor  # (B, S) bool, True at real tokens
    final: RNNState  # h, or (h, c): each (L, D, B, H), in the caller's batch order


class Encoder(nn.Module):
    """Embedding -> dropout -> packed (bi)LSTM/GRU.

    Shapes:
        src: (B, S) token ids padded with ``padding_idx``; lengths: (B,) in any order.
        returns EncoderOutput(outputs (B, S, D*H), mask (B, S), final (L, D, B, H) or a pair of them).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        rnn_type: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.rnn_type = rnn_type
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        self.rnn = make_rnn(rnn_type, embedding_dim, hidden_size, num_layers, bidirectional, dropout)

    @property
    def output_size(self) -> int:
        return self.num_directions * self.hidden_size

    def forward(self, src: Tensor, lengths: Tensor) -> EncoderOutput:
        batch_size, max_length = src.shape
        cpu_lengths = check_lengths(lengths, batch_size, max_length)

        embedded = self.dropout(self.embedding(src))  # (B, S, E)
        if bool((cpu_lengths == max_length).all()):
            # No padding: the plain call is the packed one's result (the backward direction starts at each
            # sentence's true end, which is S), and on the CPU it runs the fused oneDNN kernel, whose backward
            # is linear in S; the packed path's backward narrows its input projection step by step, zero-filling
            # and adding a whole (tokens, G*H) gradient per step.
            outputs, final = self.rnn(embedded)  # (B, S, D*H)
        else:
            # enforce_sorted=False: PyTorch sorts by length internally and un-sorts both the unpacked
            # output and h_n, so everything below is in the caller's batch order.
            packed = pack_padded_sequence(embedded, cpu_lengths, batch_first=True, enforce_sorted=False)
            packed_outputs, final = self.rnn(packed)
            # total_length keeps S fixed, whatever the batch's longest sentence; padded steps come back as 0.
            outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True, total_length=max_length)  # (B, S, D*H)

        # h_n is laid out (L*D, B, H) with layer-major order: index 0 is layer 0 forward, 1 is layer 0
        # backward, 2 is layer 1 forward, ... so view(L, D, B, H) separates layer from direction
        # (direction 0 forward, 1 backward). A view is right here because L and D are the leading,
        # contiguous axes; it is never right for swapping batch and time (that needs a transpose).
        def split_layers_and_directions(state: Tensor) -> Tensor:
            return state.view(self.num_layers, self.num_directions, batch_size, self.hidden_size)  # (L, D, B, H)

        final = map_state(final, split_layers_and_directions)
        positions = torch.arange(max_length, device=src.device)  # (S,)
        mask = positions.unsqueeze(0) < cpu_lengths.to(src.device).unsqueeze(1)  # (B, S), the lengths packed
        return EncoderOutput(outputs=outputs, mask=mask, final=final)
