"""How a model's parameters start (``model.init``, ``model.init_range``, ``model.lstm_forget_bias``).

Why this is a setting and not a detail: Adam moves every parameter by roughly its learning rate per step,
whatever the parameter's size. PyTorch's per-module defaults give modules very different sizes --
``nn.Embedding`` draws N(0, 1), while ``nn.Linear`` and ``nn.LSTM`` draw U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
about ±0.04 at 512 units -- so at lr 1e-3 an embedding needs hundreds of steps to move by a tenth of its
own size, and the decoder's first layer sees word vectors that dwarf the vector fed back into it. Measured
on ``ref_bilstm`` (``benchmarks/README.md``, "Learning per step"), that alone costs a third of the BLEU
after 2000 steps.

Schemes (``init``):

===========  ==============================================================================================
``uniform``  every parameter -- embeddings, RNN weights and biases, attention, output layer -- from
             U(-init_range, init_range); with init_range 0.1 the scheme of OpenNMT-py and of Luong et al. (2015)
``xavier``   Glorot/Xavier uniform for every weight matrix (an RNN's stacked gate matrices one gate at a time,
             so each gate gets the bound of its own shape), zeros for every bias
``pytorch``  each module's own PyTorch default, kept to compare against
===========  ==============================================================================================

Every scheme then zeroes the padding rows of the embeddings (they are never trained: ``padding_idx``), and
``lstm_forget_bias`` (when set) puts that value into every LSTM's forget-gate bias (``bias_ih``'s f block;
``bias_hh``'s f block becomes 0, so the gate's total bias is exactly the value).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

SCHEMES = ("uniform", "xavier", "pytorch")


def initialize(
    model: nn.Module,
    scheme: str = "uniform",
    init_range: float = 0.1,
    lstm_forget_bias: Optional[float] = None,
) -> None:
    """Draw ``model``'s parameters afresh, in place, as ``scheme`` says (see the module docstring)."""
    if scheme not in SCHEMES:
        raise ValueError(f"init must be one of {list(SCHEMES)}, got {scheme!r}")
    if scheme == "uniform" and not init_range > 0:
        raise ValueError(f"init_range must be positive for init 'uniform', got {init_range}")
    with torch.no_grad():
        if scheme == "uniform":
            for parameter in model.parameters():
                parameter.uniform_(-init_range, init_range)
        elif scheme == "xavier":
            for module in model.modules():
                _xavier(module)
        for module in model.modules():
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
            if isinstance(module, nn.LSTM) and lstm_forget_bias is not None:
                _set_forget_bias(module, lstm_forget_bias)


def _xavier(module: nn.Module) -> None:
    """Glorot uniform for ``module``'s own weight matrices, zeros for its own biases."""
    if isinstance(module, nn.RNNBase):
        gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
        for name, parameter in module.named_parameters(recurse=False):
            if name.startswith("weight"):
                # (G*H, in): G gates stacked on the rows; each gate is its own (H, in) matrix.
                for block in parameter.chunk(gates, dim=0):
                    nn.init.xavier_uniform_(block)
            else:
                parameter.zero_()
        return
    for name, parameter in module.named_parameters(recurse=False):
        if parameter.dim() >= 2:
            nn.init.xavier_uniform_(parameter)
        else:
            parameter.zero_()


def _set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    hidden = lstm.hidden_size
    for name, parameter in lstm.named_parameters():
        # Gate order of PyTorch's LSTM biases: i, f, g, o, each H long.
        if name.startswith("bias_ih"):
            parameter[hidden:2 * hidden].fill_(value)
        elif name.startswith("bias_hh"):
            parameter[hidden:2 * hidden].zero_()

