"""The bridge: turns the encoder's final states into the decoder's initial state.

The encoder's final state is (L_enc, D, B, H_enc) per tensor (h, and c for an LSTM). The decoder wants
(L_dec, B, H_dec). The bridge does two things:

1. Merges the directions of each encoder layer, by ``strategy``:

   ============  ==========================================================  ============
   strategy      merged state of one layer                                   size
   ============  ==========================================================  ============
   concat        tanh(W [fwd; bwd] + b)  (a learned projection; the default)  H_dec
   concat_raw    [fwd; bwd] with no projection (OpenNMT-py, bridge off)      D * H_enc
   sum           fwd + bwd                                                   H_enc
   mean          (fwd + bwd) / 2                                             H_enc
   forward       fwd only (the backward direction is ignored)                H_enc
   zeros         no information from the encoder: all zeros                  H_dec
   ============  ==========================================================  ============

   For an LSTM the cell state gets its own projection and no tanh (cell states are not bounded). For
   ``sum``, ``mean`` and ``forward``, a learned linear projection is added when the merged size differs
   from H_dec; ``concat_raw`` needs D * H_enc == H_dec and refuses otherwise.

2. Matches layers, aligned at the top: the decoder's top layer starts from the encoder's top layer, the
   one below from the one below, and so on. When the decoder has more layers than the encoder, its
   extra bottom layers all start from the encoder's bottom layer; when it has fewer, the encoder's lowest
   layers are left out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seq2seq.models.encoder import RNNState

STRATEGIES = ("concat", "concat_raw", "sum", "mean", "forward", "zeros")


def layer_map(encoder_num_layers: int, decoder_num_layers: int) -> list[int]:
    """For each decoder layer, bottom first, the encoder layer whose state it starts from."""
    offset = encoder_num_layers - decoder_num_layers
    return [max(0, decoder_layer + offset) for decoder_layer in range(decoder_num_layers)]


class Bridge(nn.Module):
    """Shapes:
        final: (L_enc, D, B, H_enc), or a pair of them for an LSTM.
        returns: (L_dec, B, H_dec), or a pair of them for an LSTM -- ready for ``nn.LSTM``/``nn.GRU``.
    """

    def __init__(
        self,
        strategy: str = "concat",
        rnn_type: str = "lstm",
        encoder_hidden_size: int = 256,
        encoder_num_layers: int = 1,
        bidirectional: bool = True,
        decoder_hidden_size: int = 512,
        decoder_num_layers: int = 1,
    ) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"bridge strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
        num_directions = 2 if bidirectional else 1
        if strategy in ("sum", "mean") and not bidirectional:
            raise ValueError(f"bridge {strategy!r} merges two directions and needs a bidirectional encoder")
        if strategy in ("concat_raw",) and num_directions * encoder_hidden_size != decoder_hidden_size:
            raise ValueError(
                f"bridge 'concat_raw' has no projection, so the decoder's hidden size ({decoder_hidden_size}) must equal "
                f"directions x encoder hidden size ({num_directions} x {encoder_hidden_size})"
            )
        self.strategy = strategy
        self.num_states = 2 if rnn_type == "lstm" else 1
        self.decoder_hidden_size = decoder_hidden_size
        self.layers = layer_map(encoder_num_layers, decoder_num_layers)

        merged_size = {
            "concat": num_directions * encoder_hidden_size,
            "concat_raw": num_directions * encoder_hidden_size,
            "sum": encoder_hidden_size,
            "mean": encoder_hidden_size,
            "forward": encoder_hidden_size,
            "zeros": decoder_hidden_size,
        }[strategy]
        needs_projection = strategy == "concat" or (
            strategy in ("sum", "mean", "forward") and merged_size != decoder_hidden_size
        )
        # One projection per state tensor: index 0 for h, 1 for c.
        self.projections = nn.ModuleList(
            [nn.Linear(merged_size, decoder_hidden_size) for _ in range(self.num_states)] if needs_projection else []
        )

    def merge_directions(self, state: Tensor) -> Tensor:
        """(L, D, B, H_enc) -> (L, B, merged size)."""
        num_layers, num_directions, batch_size, hidden_size = state.shape
        if self.strategy in ("concat", "concat_raw"):
            # Put the direction axis next to H, then fuse them: [fwd; bwd] per layer and sentence.
            return state.permute(0, 2, 1, 3).reshape(num_layers, batch_size, num_directions * hidden_size)  # (L, B, D*H)
        if self.strategy == "sum":
            return state.sum(dim=1)  # (L, B, H)
        if self.strategy == "mean":
            return state.mean(dim=1)  # (L, B, H)
        return state[:, 0]  # "forward": (L, B, H)

    def forward(self, final: RNNState) -> RNNState:
        states = final if isinstance(final, tuple) else (final,)
        if len(states) != self.num_states:
            raise ValueError(f"bridge built for {self.num_states} state tensor(s), got {len(states)}")
        decoder_states = []
        for index, state in enumerate(states):
            if self.strategy == "zeros":
                batch_size = state.shape[2]
                merged = state.new_zeros(len(self.layers), batch_size, self.decoder_hidden_size)  # (L_dec, B, H_dec)
                decoder_states.append(merged)
                continue
            merged = self.merge_directions(state)  # (L_enc, B, merged size)
            if self.projections:
                merged = self.projections[index](merged)  # (L_enc, B, H_dec)
                if index == 0:  # h is bounded by tanh in the RNN; the cell state c is not
                    merged = torch.tanh(merged)
            decoder_states.append(merged[self.layers].contiguous())  # (L_dec, B, H_dec)
        return tuple(decoder_states) if isinstance(final, tuple) else decoder_states[0]
