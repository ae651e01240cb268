"""How a model's parameters start (``model.init``, ``model.init_range``, ``model.embedding_init_std``,
``model.lstm_forget_bias``).

Why this is a setting and not a detail: with PyTorch's per-module defaults, ``nn.Linear`` and ``nn.LSTM``
draw U(-1/sqrt(fan_in), 1/sqrt(fan_in)), about ±0.03 to ±0.06 in these models. Each such layer shrinks what
passes through it, so at the start the decoder's attentional vectors -- what the output layer reads and
input feeding feeds back -- are a few hundredths in size and the logits nearly flat, and the first hundreds
of updates teach little. Drawing every weight from U(-0.1, 0.1) keeps the signals several times larger.
Measured on ``ref_bilstm`` (the figures: ``benchmarks/README.md``, "Learning per step"): after 500 steps
PyTorch's defaults have learned least, OpenNMT-py's scheme (U(-0.1, 0.1) everywhere, embeddings included)
more, and the default here most: weights from U(-0.1, 0.1), embeddings from N(0, 1) as ``nn.Embedding`` draws
them. Shrinking the embeddings alone (to U(-0.1, 0.1)) while keeping PyTorch's other defaults makes it worse,
so it is the small weights, not the large embeddings, that hold learning back.

Schemes (``init``), for every parameter but the embeddings when ``embedding_init_std`` is set:

===========  ==============================================================================================
``uniform``  from U(-init_range, init_range): RNN weights and biases, attention, output layer (and with
             ``embedding_init_std`` null the embeddings too: OpenNMT-py's scheme, Luong et al. (2015)'s)
``xavier``   Glorot/Xavier uniform for every weight matrix (an RNN's stacked gate matrices one gate at a time,
             so each gate gets the bound of its own shape), zeros for every bias
``pytorch``  each module's own PyTorch default, kept to compare against
===========  ==============================================================================================

``embedding_init_std`` (default 1.0) then draws the embedding tables from N(0, std^2); a target embedding
tied to the output layer is that layer's weight too and keeps the scheme's draw; a table shared by the encoder and
the decoder (``share_embeddings``) is drawn once. Padding rows are zeroed
(they are never trained: ``padding_idx``), and ``lstm_forget_bias`` (when set) puts that value into every
LSTM's forget-gate bias (``bias_ih``'s f block; ``bias_hh``'s f block becomes 0, so the gate's total bias is
exactly the value).
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
    embedding_init_std: Optional[float] = None,
) -> None:
    """Draw ``model``'s parameters afresh, in place, as ``scheme`` says (see the module docstring)."""
    if scheme not in SCHEMES:
        raise ValueError(f"init must be one of {list(SCHEMES)}, got {scheme!r}")
    if scheme == "uniform" and not init_range > 0:
        raise ValueError(f"init_range must be positive for init 'uniform', got {init_range}")
    if embedding_init_std is not None and not embedding_init_std > 0:
        raise ValueError(f"embedding_init_std must be positive or None, got {embedding_init_std}")
    # A matrix shared with a Linear layer (tied target embeddings) is that layer's weight too: the scheme's.
    linear_weights = {id(module.weight) for module in model.modules() if isinstance(module, nn.Linear)}
    # A parameter shared by several modules (share_embeddings) is drawn once, as the first of them draws it.
    drawn_by_scheme: set[int] = set()
    drawn_as_embedding: set[int] = set()
    with torch.no_grad():
        if scheme == "uniform":
            for parameter in model.parameters():  # each shared parameter once
                parameter.uniform_(-init_range, init_range)
        elif scheme == "xavier":
            for module in model.modules():
                _xavier(module, drawn_by_scheme)
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                if embedding_init_std is not None and id(module.weight) not in linear_weights | drawn_as_embedding:
                    module.weight.normal_(0.0, embedding_init_std)
                    drawn_as_embedding.add(id(module.weight))
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            if isinstance(module, nn.LSTM) and lstm_forget_bias is not None:
                _set_forget_bias(module, lstm_forget_bias)


def _xavier(module: nn.Module, drawn: set[int]) -> None:
    """Glorot uniform for ``module``'s own weight matrices, zeros for its own biases; a parameter whose id is in
    ``drawn`` (shared with a module drawn before) is left as it is, and each one drawn here is added."""
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
        if id(parameter) in drawn:
            continue
        drawn.add(id(parameter))
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

