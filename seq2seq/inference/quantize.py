"""int8 CPU decoding: a copy of a model whose RNNs and linear layers compute with 8-bit integer weights.

Dynamic quantization (weights stored as int8 once, activations quantized on the fly at every product) is
what suits an RNN decoder: it needs no calibration data and keeps the model's structure. PyTorch's
``torch.ao.quantization.quantize_dynamic`` does it for ``nn.LSTM``, ``nn.GRU`` and ``nn.Linear``; it is
deprecated in torch 2.10+ (slated to move to torchao) but still works, so it is kept behind
:func:`quantize_int8` alone, looked up when called, its deprecation warning recorded once in the log
rather than printed at every call: replacing it touches this file only.

The input-feeding decoder runs its RNN one step at a time on the module's own weight matrices
(:mod:`seq2seq.models.stepwise`), which a quantized ``nn.LSTM`` no longer exposes. Before quantizing, the
decoder is given :class:`StepRNN` cells in its place (``Decoder.use_step_cells``, the model's own seam): the
same arithmetic, split into ``nn.Linear`` layers (layer 0's projection of the embedding, then per layer the
fed-in/lower-layer input and the recurrence), which quantization then converts like every other linear layer. Embeddings stay in float32 (a lookup gains nothing).

Quantized weights change the arithmetic, so int8 translations can differ from fp32 ones; what that costs
in BLEU, and what it gains in speed, is measured by ``benchmarks/decode_speed.py --int8``
(benchmarks/README.md, "int8 decoding").
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

QUANTIZE_MODES = ("int8",)


class StepRNN(nn.Module):
    """A stacked ``nn.LSTM``/``nn.GRU`` as ``nn.Linear`` layers, for one time step at a time: the decoder's step
    cells (``Decoder.use_step_cells``).

    ``project_inputs`` and ``step`` do what :func:`seq2seq.models.stepwise.project_inputs` and
    :func:`seq2seq.models.stepwise.step` do on an ``nn.LSTM``/``nn.GRU`` (gate order i, f, g, o; r, z, n).
    Shapes: as there.
    """

    def __init__(self, rnn: nn.RNNBase, embedding_width: int) -> None:
        super().__init__()
        self.is_lstm = isinstance(rnn, nn.LSTM)
        self.num_layers = rnn.num_layers
        self.hidden_size = rnn.hidden_size
        w_ih0 = rnn.weight_ih_l0.detach()
        bias0 = rnn.bias_ih_l0 + rnn.bias_hh_l0 if self.is_lstm else rnn.bias_ih_l0
        self.embedding_projection = _linear(w_ih0[:, :embedding_width], bias0.detach())
        fed_width = w_ih0.shape[1] - embedding_width
        self.fed_projection = _linear(w_ih0[:, embedding_width:], None) if fed_width else None
        inputs, hiddens = [], []
        for layer in range(self.num_layers):
            if layer > 0:
                bias = getattr(rnn, f"bias_ih_l{layer}").detach()
                if self.is_lstm:
                    bias = bias + getattr(rnn, f"bias_hh_l{layer}").detach()
                inputs.append(_linear(getattr(rnn, f"weight_ih_l{layer}").detach(), bias))
            hidden_bias = None if self.is_lstm else getattr(rnn, f"bias_hh_l{layer}").detach()
            hiddens.append(_linear(getattr(rnn, f"weight_hh_l{layer}").detach(), hidden_bias))
        self.input_layers = nn.ModuleList(inputs)  # layers 1..L-1
        self.hidden_layers = nn.ModuleList(hiddens)

    def project_inputs(self, embedded: Tensor) -> Tensor:
        return self.embedding_projection(embedded)  # (..., G*H)

    def step(self, projected: Tensor, fed, state):
        h_all, c_all = state if self.is_lstm else (state, None)
        new_h, new_c = [], []
        layer_input = None
        for layer in range(self.num_layers):
            if layer == 0:
                gates_in = projected if fed is None else projected + self.fed_projection(fed)  # (B, G*H)
            else:
                gates_in = self.input_layers[layer - 1](layer_input)
            h = h_all[layer]  # (B, H)
            hidden_gates = self.hidden_layers[layer](h)  # (B, G*H)
            if self.is_lstm:
                i, f, g, o = (gates_in + hidden_gates).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c_all[layer] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_c.append(c)
            else:
                i_r, i_z, i_n = gates_in.chunk(3, dim=-1)
                h_r, h_z, h_n = hidden_gates.chunk(3, dim=-1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = (1 - z) * n + z * h
            new_h.append(h)
            layer_input = h
        h_stack = torch.stack(new_h)  # (L, B, H)
        return h, ((h_stack, torch.stack(new_c)) if self.is_lstm else h_stack)


def _linear(weight: Tensor, bias) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _quantize_dynamic():
    """``torch.ao.quantization.quantize_dynamic``, looked up here and nowhere else (see the module docstring)."""
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as error:  # a torch without it: say so, naming the option
        raise ValueError(f"quantize=int8: this torch ({torch.__version__}) has no dynamic quantization") from error
    return quantize_dynamic


def quantize_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of a :class:`~seq2seq.models.Seq2Seq` for decoding on the CPU (``model`` is left as it is)."""
    engines = torch.backends.quantized.supported_engines
    if not any(engine in engines for engine in ("fbgemm", "x86", "qnnpack")):
        raise ValueError(f"quantize=int8: no quantized engine on this machine (torch lists {engines})")
    quantized = copy.deepcopy(model).cpu().float().eval()
    decoder = quantized.decoder
    if decoder.input_feeding:
        decoder.use_step_cells(StepRNN(decoder.rnn, decoder.embedding.embedding_dim))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _quantize_dynamic()(quantized, {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8, inplace=True)
    for warning in {str(w.message) for w in caught}:
        log.debug("quantize_dynamic: %s", warning)
    return quantized
