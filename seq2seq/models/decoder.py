"""The attention decoder (Luong et al., 2015, with any of the three score functions).

One step, for target position t::

    x_t  = [embed(y_{t-1}); a_{t-1}]       # a_{t-1} only with input feeding
    h_t  = RNN(x_t, h_{t-1})               # top layer's output, (B, H)
    c_t  = attention(query=h_t, keys=encoder outputs)
    a_t  = tanh(W_c [h_t; c_t])            # the "attentional vector", what the output layer reads

With input feeding, a_t goes back into the RNN at t+1, so steps must run one after another. Without
it, h_1..h_T depend only on the target embeddings, so :meth:`Decoder.forward` runs the RNN over all T
steps in one call and attention for all T queries in one batched product -- no Python loop over time.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from seq2seq.models import stepwise
from seq2seq.models.attention import Attention
from seq2seq.models.encoder import RNNState, make_rnn, map_state


class Memory(NamedTuple):
    """What the decoder attends to, computed once per batch."""

    keys: Tensor  # (B, S, K) encoder outputs
    mask: Tensor  # (B, S) bool, True at real tokens
    projected_keys: Optional[Tensor]  # (B, S, A) for additive attention, else None

    def index_select(self, indices: Tensor) -> "Memory":
        """Rows ``indices`` of every tensor, e.g. to expand a batch to beams: (B, ...) -> (len(indices), ...)."""
        projected = None if self.projected_keys is None else self.projected_keys.index_select(0, indices)
        return Memory(self.keys.index_select(0, indices), self.mask.index_select(0, indices), projected)


class DecoderState(NamedTuple):
    rnn: RNNState  # h, or (h, c): each (L, B, H)
    attentional: Tensor  # (B, H) a_{t-1}, fed back with input feeding; zeros before the first step

    def index_select(self, indices: Tensor) -> "DecoderState":
        """Rows ``indices`` of the batch (the RNN state's batch axis is 1)."""
        rnn = map_state(self.rnn, lambda state: state.index_select(1, indices))
        return DecoderState(rnn, self.attentional.index_select(0, indices))


class DecoderOutput(NamedTuple):
    outputs: Tensor  # (B, T, H) attentional vectors a_1..a_T, before the output layer
    attention: Tensor  # (B, T, S)
    state: DecoderState  # after the last step


class Decoder(nn.Module):
    """Shapes:
        forward: tgt_in (B, T) teacher-forced input tokens -> DecoderOutput(outputs (B, T, H), attention (B, T, S))
        step: tokens (B,) -> (output (B, H), attention (B, S), state)
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        encoder_output_size: int,
        num_layers: int = 1,
        rnn_type: str = "lstm",
        attention: str = "bahdanau",
        attention_size: Optional[int] = None,
        input_feeding: bool = True,
        dropout: float = 0.0,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input_feeding = input_feeding
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.dropout = nn.Dropout(dropout)
        rnn_input_size = embedding_dim + (hidden_size if input_feeding else 0)
        self.rnn = make_rnn(rnn_type, rnn_input_size, hidden_size, num_layers, False, dropout)
        self.attention = Attention(attention, hidden_size, encoder_output_size, attention_size)
        self.combine = nn.Linear(hidden_size + encoder_output_size, hidden_size, bias=False)
        self.step_cells: Optional[nn.Module] = None  # see use_step_cells

    def use_step_cells(self, cells: nn.Module) -> None:
        """Run the input-feeding loop on ``cells`` instead of the RNN's own weights, which it replaces.

        ``cells`` does what :func:`stepwise.project_inputs` and :func:`stepwise.step` do on the RNN, with the
        same shapes, as ``cells.project_inputs(embedded)`` and ``cells.step(projected, fed, state)``: int8
        decoding's copy (:class:`seq2seq.inference.quantize.StepRNN`), whose linear layers can be quantized
        where an ``nn.LSTM``'s step-by-step weights cannot. Decoding only: it has no fused training path.
        """
        if not self.input_feeding:
            raise ValueError("use_step_cells: without input feeding the decoder runs its RNN over whole sequences")
        self.step_cells = cells
        self.rnn = None

    def _project(self, embedded: Tensor) -> Tensor:
        if self.step_cells is not None:
            return self.step_cells.project_inputs(embedded)
        return stepwise.project_inputs(self.rnn, embedded)

    def memory(self, encoder_outputs: Tensor, mask: Tensor) -> Memory:
        return Memory(encoder_outputs, mask, self.attention.project_keys(encoder_outputs))

    def initial_state(self, rnn_state: RNNState) -> DecoderState:
        h = rnn_state[0] if isinstance(rnn_state, tuple) else rnn_state
        return DecoderState(rnn_state, h.new_zeros(h.shape[1], self.hidden_size))  # attentional: (B, H)

    def attend(self, rnn_outputs: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """(B, T, H) top-layer outputs -> attentional vectors (B, T, H) and weights (B, T, S)."""
        context, weights = self.attention(rnn_outputs, memory.keys, memory.mask, memory.projected_keys)  # (B, T, K)
        attentional = torch.tanh(self.combine(torch.cat([rnn_outputs, context], dim=-1)))  # (B, T, H)
        return self.dropout(attentional), weights

    def forward(self, tgt_in: Tensor, memory: Memory, state: DecoderState) -> DecoderOutput:
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        if not self.input_feeding:
            # Nothing feeds back into the RNN: all steps in one call, attention for all steps at once.
            rnn_outputs, rnn_state = self.rnn(embedded, state.rnn)  # (B, T, H)
            outputs, weights = self.attend(rnn_outputs, memory)  # (B, T, H), (B, T, S)
            return DecoderOutput(outputs, weights, DecoderState(rnn_state, outputs[:, -1]))
        # Input feeding: only the fed-back part of each step needs the loop. Layer 0's projection of the
        # target embeddings is computed for all steps at once, before it.
        projected = self._project(embedded)  # (B, T, G*H)
        fused = stepwise.fuse_weights(self.rnn, embedded.shape[-1]) if isinstance(self.rnn, nn.LSTM) else None
        step_outputs, step_weights = [], []
        # unbind, not projected[:, t]: the backward of T slices would zero-fill and add up T copies of the whole
        # (B, T, G*H) tensor (T^2 work); unbind's stacks the T step gradients once.
        for projected_t in projected.unbind(1):  # (B, G*H) each
            output, weights, state = self.step_projected(projected_t, memory, state, fused)
            step_outputs.append(output)
            step_weights.append(weights)
        return DecoderOutput(torch.stack(step_outputs, dim=1), torch.stack(step_weights, dim=1), state)  # (B, T, H), (B, T, S)

    def step(self, tokens: Tensor, memory: Memory, state: DecoderState) -> tuple[Tensor, Tensor, DecoderState]:
        """One step for tokens (B,): returns output (B, H), attention (B, S) and the new state."""
        embedded = self.dropout(self.embedding(tokens))  # (B, E)
        if not self.input_feeding:
            rnn_output, rnn_state = self.rnn(embedded.unsqueeze(1), state.rnn)  # (B, 1, H)
            output, weights = self.attend(rnn_output, memory)  # (B, 1, H), (B, 1, S)
            output = output.squeeze(1)  # (B, H)
            return output, weights.squeeze(1), DecoderState(rnn_state, output)
        return self.step_projected(self._project(embedded), memory, state)

    def step_projected(
        self, projected: Tensor, memory: Memory, state: DecoderState, fused: Optional[list] = None
    ) -> tuple[Tensor, Tensor, DecoderState]:
        """An input-feeding step from layer 0's projected embedding (B, G*H)."""
        if self.step_cells is not None:
            rnn_output, rnn_state = self.step_cells.step(projected, state.attentional, state.rnn)  # (B, H)
        else:
            rnn_output, rnn_state = stepwise.step(self.rnn, projected, state.attentional, state.rnn, fused)
        output, weights = self.attend(rnn_output.unsqueeze(1), memory)  # (B, 1, H), (B, 1, S)
        output = output.squeeze(1)  # (B, H)
        return output, weights.squeeze(1), DecoderState(rnn_state, output)
