"""One decoder step as an ONNX graph: the previous tokens, the state and the memory in; the next token's
log-probabilities, the new state and the attention out. The search (:mod:`seq2seq.runtime.search`) calls it
once per output token, for every live hypothesis at once.

Interface (names are what :mod:`seq2seq.runtime` feeds and reads; N rows: sentences, or sentences x beams):

    tokens (N,) int64, memory_keys (N, S, K), memory_mask (N, S) bool, [memory_projected_keys (N, S, A)],
    state_h (L, N, H), [state_c (L, N, H)], state_attentional (N, H), top_k (1,) int64  ->
    log_probs (N, V), attention (N, S), new_state_h, [new_state_c], new_state_attentional,
    top_log_probs (N, top_k), top_ids (N, top_k)

``top_log_probs``/``top_ids`` are each row's ``top_k`` most probable tokens, pad and bos left out, best first
(an equal log-prob: the lower id first, as ONNX's TopK promises). Beam search asks for them instead of
``log_probs``: a sentence's best 2K continuations are among its beams' best 2K each, so the search never sorts,
nor copies out, the whole (N, V) array.

It is :meth:`seq2seq.models.Seq2Seq.step_log_probs`, operator for operator: the embedding (with input feeding,
beside the previous attentional vector), the stacked RNN one step (one ``LSTM``/``GRU`` node per layer), the
attention (``bahdanau``, ``dot`` or ``general``; padded positions -inf before the softmax, so weight 0),
``tanh(W_c [h; context])``, the output layer and a log-softmax.
"""

from __future__ import annotations

import numpy as np
import onnx
from torch import nn

from seq2seq.data.tokenizer import BOS_ID, PAD_ID
from seq2seq.export.encoder_graph import numpy_of
from seq2seq.export.onnx_graph import BOOL, FLOAT, INT64, GraphBuilder
from seq2seq.export.rnn_weights import onnx_layer_weights, rnn_attributes
from seq2seq.models import Seq2Seq


def decoder_step_graph(model: Seq2Seq) -> onnx.ModelProto:
    decoder = model.decoder
    is_lstm = isinstance(decoder.rnn, nn.LSTM)
    hidden, key_size = decoder.hidden_size, model.encoder.output_size
    layers = decoder.rnn.num_layers
    attention = decoder.attention
    g = GraphBuilder("seq2seq_decoder_step")
    tokens = g.input("tokens", INT64, ["rows"])
    keys = g.input("memory_keys", FLOAT, ["rows", "src_length", key_size])
    mask = g.input("memory_mask", BOOL, ["rows", "src_length"])
    projected_keys = None
    if attention.kind == "bahdanau":
        projected_keys = g.input("memory_projected_keys", FLOAT,
                                 ["rows", "src_length", attention.key_projection.out_features])
    state_h = g.input("state_h", FLOAT, [layers, "rows", hidden])
    state_c = g.input("state_c", FLOAT, [layers, "rows", hidden]) if is_lstm else None
    fed = g.input("state_attentional", FLOAT, ["rows", hidden])

    embedded = g.op("Gather", g.constant(numpy_of(decoder.embedding.weight), "tgt_embedding"), tokens, axis=0)  # (N, E)
    rnn_input = g.op("Concat", embedded, fed, axis=1) if decoder.input_feeding else embedded  # (N, E [+ H])
    layer_input = g.unsqueeze(rnn_input, 0)  # (1, N, in): one time step
    new_h, new_c = [], []
    for layer in range(layers):
        w, r, b = onnx_layer_weights(decoder.rnn, layer)
        index = g.constant(np.array([layer]))
        inputs = [layer_input, g.constant(w, "w"), g.constant(r, "r"), g.constant(b, "b"), "",
                  g.op("Gather", state_h, index, axis=0)]  # initial h (1, N, H)
        if is_lstm:
            inputs.append(g.op("Gather", state_c, index, axis=0))
        results = g.op("LSTM" if is_lstm else "GRU", *inputs, outputs=3 if is_lstm else 2, **rnn_attributes(decoder.rnn))
        new_h.append(results[1])  # (1, N, H)
        if is_lstm:
            new_c.append(results[2])
        layer_input = results[1]  # the next layer's input: this one's output, (1, N, H)
    rnn_output = g.squeeze(layer_input, 0)  # (N, H) the top layer's

    if attention.kind == "bahdanau":
        query = g.unsqueeze(g.linear(rnn_output, numpy_of(attention.query_projection.weight)), 1)  # (N, 1, A)
        energy = g.op("Tanh", g.op("Add", query, projected_keys))  # (N, S, A)
        scores = g.squeeze(g.linear(energy, numpy_of(attention.energy.weight)), 2)  # (N, S)
    else:
        query = rnn_output
        if attention.kind == "general":
            query = g.linear(rnn_output, numpy_of(attention.query_projection.weight))  # (N, K)
        scores = g.squeeze(g.op("MatMul", keys, g.unsqueeze(query, 2)), 2)  # (N, S, 1) -> (N, S)
    scores = g.op("Where", mask, scores, g.constant(np.array(-np.inf, dtype=np.float32)))
    weights = g.op("Softmax", scores, axis=-1)  # (N, S)
    context = g.squeeze(g.op("MatMul", g.unsqueeze(weights, 1), keys), 1)  # (N, 1, K) -> (N, K)
    combined = g.op("Concat", rnn_output, context, axis=1)  # (N, H + K)
    attentional = g.op("Tanh", g.linear(combined, numpy_of(decoder.combine.weight)))  # (N, H)
    logits = g.op("Gemm", attentional, g.constant(numpy_of(model.output_layer.weight)),
                  g.constant(numpy_of(model.output_layer.bias)), transB=1)  # (N, V)
    vocab = model.output_layer.out_features

    top_k = g.input("top_k", INT64, [1])
    log_probs = g.op("LogSoftmax", logits, axis=-1)  # (N, V)
    never = np.zeros(vocab, dtype=bool)
    never[[PAD_ID, BOS_ID]] = True  # never generated (seq2seq/inference/search.py)
    searchable = g.op("Where", g.constant(never, "never"), g.constant(np.array(-np.inf, dtype=np.float32)), log_probs)
    top_log_probs, top_ids = g.op("TopK", searchable, top_k, outputs=2, axis=-1, largest=1, sorted=1)  # (N, k) each
    g.output(log_probs, "log_probs", FLOAT, ["rows", vocab])
    g.output(weights, "attention", FLOAT, ["rows", "src_length"])
    g.output(g.op("Concat", *new_h, axis=0), "new_state_h", FLOAT, [layers, "rows", hidden])
    if is_lstm:
        g.output(g.op("Concat", *new_c, axis=0), "new_state_c", FLOAT, [layers, "rows", hidden])
    g.output(attentional, "new_state_attentional", FLOAT, ["rows", hidden])
    g.output(top_log_probs, "top_log_probs", FLOAT, ["rows", "top_k"])
    g.output(top_ids, "top_ids", INT64, ["rows", "top_k"])
    return g.model("seq2seq decoder step: embedding, RNN step, attention, output layer, log-softmax")
