"""A PyTorch ``nn.LSTM``/``nn.GRU`` layer's weights in the layout of ONNX's ``LSTM``/``GRU`` operators.

The arithmetic is the same; the gate order and the packing of the tensors are not:

=========  ============================  ===============================
           PyTorch (``weight_ih_l{k}``)   ONNX (``W``, ``R``, ``B`` inputs)
=========  ============================  ===============================
LSTM       i, f, g, o                     i, o, f, c   (c is PyTorch's g)
GRU        r, z, n                        z, r, h      (h is PyTorch's n)
=========  ============================  ===============================

ONNX stacks both directions on a leading axis: ``W`` (D, G*H, in), ``R`` (D, G*H, H), and ``B`` (D, 2*G*H) is
the input bias followed by the recurrent bias. PyTorch's GRU applies the reset gate after the recurrent
product (``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``), which is ONNX's ``linear_before_reset=1``.
"""

from __future__ import annotations

import numpy as np
from torch import nn

# For each ONNX gate, bottom to top, the PyTorch gate it is.
ONNX_GATE_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def _reorder(array: np.ndarray, rnn_type: str) -> np.ndarray:
    """(G*H, ...) in PyTorch's gate order -> ONNX's."""
    gates = np.split(array, len(ONNX_GATE_ORDER[rnn_type]), axis=0)
    return np.concatenate([gates[index] for index in ONNX_GATE_ORDER[rnn_type]], axis=0)


def onnx_layer_weights(rnn: nn.RNNBase, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer ``layer`` of ``rnn`` (every direction) -> ONNX's W (D, G*H, in), R (D, G*H, H), B (D, 2*G*H)."""
    rnn_type = "lstm" if isinstance(rnn, nn.LSTM) else "gru"
    suffixes = [""] + (["_reverse"] if rnn.bidirectional else [])

    def weight(name: str, suffix: str) -> np.ndarray:
        return _reorder(getattr(rnn, f"{name}_l{layer}{suffix}").detach().float().cpu().numpy(), rnn_type)

    w = np.stack([weight("weight_ih", s) for s in suffixes])
    r = np.stack([weight("weight_hh", s) for s in suffixes])
    b = np.stack([np.concatenate([weight("bias_ih", s), weight("bias_hh", s)]) for s in suffixes])
    return w, r, b


def rnn_attributes(rnn: nn.RNNBase) -> dict:
    """The ONNX operator's attributes for one layer of ``rnn``."""
    attributes = {"hidden_size": rnn.hidden_size, "direction": "bidirectional" if rnn.bidirectional else "forward"}
    if isinstance(rnn, nn.GRU):
        attributes["linear_before_reset"] = 1
    return attributes
