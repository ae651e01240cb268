"""Running a stacked ``nn.LSTM``/``nn.GRU`` one time step at a time, with its own parameters.

With input feeding the decoder must advance one step at a time. Calling ``nn.LSTM`` on a length-1
sequence works, but on the CPU each call pays the fused kernel's fixed costs (oneDNN reorders the weights
on every call, forward and backward), and the input projection of the target embeddings -- which does not
depend on the recurrence -- is redone step by step as a small matrix product.

These functions do the same arithmetic as PyTorch's cells (gate order i, f, g, o for the LSTM; r, z, n for
the GRU) on the module's own parameters, so the state dict, initialisation and the loop-free path
(``rnn(whole_sequence)``) are untouched:

* :func:`project_inputs` computes layer 0's input projection of the embeddings for all T steps in one
  matrix product, before the time loop;
* :func:`step` then only adds the part that needs the loop (the fed-back vector and the recurrence).

A decoder can be given other cells that do the same arithmetic (int8 decoding's; ``Decoder.use_step_cells``).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.models.encoder import RNNState
from seq2seq.models.shared_weight import SharedWeight, shared_linear


def project_inputs(rnn: nn.RNNBase, embedded: Tensor) -> Tensor:
    """Layer 0's input projection of the first E input columns, biases folded in: (B, T, E) -> (B, T, G*H).

    For an LSTM both biases are plain additions to the gates; for a GRU the hidden bias of the n gate is
    scaled by r, so only the input bias is folded here.
    """
    width = embedded.shape[-1]
    bias = rnn.bias_ih_l0 + rnn.bias_hh_l0 if isinstance(rnn, nn.LSTM) else rnn.bias_ih_l0
    return F.linear(embedded, rnn.weight_ih_l0[:, :width], bias)  # (B, T, G*H)


def fuse_weights(rnn: nn.LSTM, embedding_width: int) -> list[tuple[Tensor, Tensor, SharedWeight]]:
    """Per LSTM layer, [W_ih (less layer 0's embedding columns) | W_hh], the summed biases and a
    :class:`~seq2seq.models.shared_weight.SharedWeight` for its gradient.

    One matrix product of [input; h] with it replaces two per layer and step, and the weight's gradient
    is one product over all the steps, computed when the backward pass reaches the first step. Build it
    once per sequence (the concatenation is part of the autograd graph, so gradients reach the module's
    weights).
    """
    fused = []
    for layer in range(rnn.num_layers):
        w_ih = getattr(rnn, f"weight_ih_l{layer}")
        if layer == 0:
            w_ih = w_ih[:, embedding_width:]
        weight = torch.cat([w_ih, getattr(rnn, f"weight_hh_l{layer}")], dim=1)  # (4H, in + H)
        bias = None if layer == 0 else getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
        fused.append((weight, bias, SharedWeight()))
    return fused


def step(
    rnn: nn.RNNBase,
    projected: Tensor,
    fed: Optional[Tensor],
    state: RNNState,
    fused: Optional[list[tuple[Tensor, Tensor, SharedWeight]]] = None,
) -> tuple[Tensor, RNNState]:
    """One time step through every layer.

    Shapes:
        projected: (B, G*H) from :func:`project_inputs` at this step; fed: (B, F) the remaining input
        columns of layer 0 (the input-fed vector), or None; state: h, or (h, c), each (L, B, H);
        fused: :func:`fuse_weights` of an LSTM, to use instead of its separate matrices.
        returns the top layer's output (B, H) and the new state.
    """
    is_lstm = isinstance(rnn, nn.LSTM)
    if fused is not None and is_lstm:
        return _fused_lstm_step(rnn, projected, fed, state, fused)
    h_all, c_all = state if is_lstm else (state, None)
    width = rnn.weight_ih_l0.shape[1] - (fed.shape[-1] if fed is not None else 0)
    new_h, new_c = [], []
    layer_input = None
    for layer in range(rnn.num_layers):
        w_hh = getattr(rnn, f"weight_hh_l{layer}")
        if layer == 0:
            gates_in = projected if fed is None else projected + F.linear(fed, rnn.weight_ih_l0[:, width:])  # (B, G*H)
        else:
            bias = getattr(rnn, f"bias_ih_l{layer}")
            if is_lstm:
                bias = bias + getattr(rnn, f"bias_hh_l{layer}")
            gates_in = F.linear(layer_input, getattr(rnn, f"weight_ih_l{layer}"), bias)  # (B, G*H)
        h = h_all[layer]  # (B, H)
        if is_lstm:
            gates = gates_in + F.linear(h, w_hh)  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c_all[layer] + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            new_c.append(c)
        else:
            hidden_gates = F.linear(h, w_hh, getattr(rnn, f"bias_hh_l{layer}"))  # (B, 3H)
            i_r, i_z, i_n = gates_in.chunk(3, dim=-1)
            h_r, h_z, h_n = hidden_gates.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
        new_h.append(h)
        # nn.LSTM/nn.GRU apply their dropout to every layer's output but the top one's.
        layer_input = F.dropout(h, rnn.dropout, rnn.training) if layer < rnn.num_layers - 1 else h
    h_stack = torch.stack(new_h)  # (L, B, H)
    return h, ((h_stack, torch.stack(new_c)) if is_lstm else h_stack)


def _fused_lstm_step(
    rnn: nn.LSTM, projected: Tensor, fed: Optional[Tensor], state: RNNState,
    fused: list[tuple[Tensor, Tensor, SharedWeight]],
) -> tuple[Tensor, RNNState]:
    h_all, c_all = state
    new_h, new_c = [], []
    layer_input = fed
    for layer, (weight, bias, shared) in enumerate(fused):
        h = h_all[layer]  # (B, H)
        joined = h if layer_input is None else torch.cat([layer_input, h], dim=-1)  # (B, in + H)
        gates = shared_linear(joined, weight, projected if layer == 0 else bias, shared)  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c_all[layer] + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        new_h.append(h)
        new_c.append(c)
        layer_input = F.dropout(h, rnn.dropout, rnn.training) if layer < rnn.num_layers - 1 else h
    return h, (torch.stack(new_h), torch.stack(new_c))
