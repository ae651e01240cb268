"""The encoder as an ONNX graph: source ids and lengths in; memory, its mask and the decoder's first state out.

Packing does not export, and it need not: ONNX's ``LSTM``/``GRU`` operators take ``sequence_lens``, and with
it each direction of each sequence runs over that sequence's own tokens only, exactly as a packed PyTorch RNN
does. The forward direction stops at position n-1, so its final state is the state there, not after the
padding; the backward direction *starts* at position n-1 (not at the padded end), so padding never leaks into
it; outputs past position n-1 are 0. ``tests/unit/test_onnx_encoder.py`` checks all of it as
``tests/unit/test_encoder.py`` checks the PyTorch encoder: each sequence alone against the batch.

Interface (names are what :mod:`seq2seq.runtime` feeds and reads):

    src (B, S) int64, src_lengths (B,) int64  ->
    memory_keys (B, S, D*H) (0 at padding), memory_mask (B, S) bool (True at real tokens),
    memory_projected_keys (B, S, A) (``bahdanau`` attention only),
    state_h (L_dec, B, H_dec), state_c (L_dec, B, H_dec) (LSTM only), state_attentional (B, H_dec) zeros
"""

from __future__ import annotations

import numpy as np
import onnx

from seq2seq.export.onnx_graph import BOOL, FLOAT, INT64, GraphBuilder
from seq2seq.export.rnn_weights import onnx_layer_weights, rnn_attributes
from seq2seq.models import Seq2Seq
from seq2seq.models.bridge import Bridge


def numpy_of(parameter) -> np.ndarray:
    return parameter.detach().float().cpu().numpy()


def encoder_graph(model: Seq2Seq, final_states: bool = False) -> onnx.ModelProto:
    """The graph of ``model``'s encoder, bridge and key projection. ``final_states``: also output the RNN's own
    final states, ``final_h`` (and ``final_c``) (L, D, B, H) per layer and direction, before the bridge (tests
    compare them with the PyTorch encoder's ``final``)."""
    encoder, bridge = model.encoder, model.bridge
    is_lstm = encoder.rnn_type == "lstm"
    g = GraphBuilder("seq2seq_encoder")
    src = g.input("src", INT64, ["batch", "src_length"])
    src_lengths = g.input("src_lengths", INT64, ["batch"])

    embedded = g.op("Gather", g.constant(numpy_of(encoder.embedding.weight), "src_embedding"), src, axis=0)  # (B, S, E)
    layer_input = g.op("Transpose", embedded, perm=[1, 0, 2])  # (S, B, E): ONNX's RNNs are time-major
    sequence_lens = g.op("Cast", src_lengths, to=onnx.TensorProto.INT32)
    final_h, final_c = [], []
    for layer in range(encoder.num_layers):
        w, r, b = onnx_layer_weights(encoder.rnn, layer)
        inputs = [layer_input, g.constant(w, "w"), g.constant(r, "r"), g.constant(b, "b"), sequence_lens]
        results = g.op("LSTM" if is_lstm else "GRU", *inputs, outputs=3 if is_lstm else 2, **rnn_attributes(encoder.rnn))
        y, y_h = results[0], results[1]  # (S, D, B, H), (D, B, H): the last real step of each direction
        final_h.append(g.unsqueeze(y_h, 0))  # (1, D, B, H)
        if is_lstm:
            final_c.append(g.unsqueeze(results[2], 0))
        # Both directions side by side, as PyTorch's output: (S, D, B, H) -> (S, B, D, H) -> (S, B, D*H).
        layer_input = g.op("Reshape", g.op("Transpose", y, perm=[0, 2, 1, 3]), g.constant(np.array([0, 0, -1])))

    keys = g.op("Transpose", layer_input, perm=[1, 0, 2])  # (B, S, D*H)
    positions = g.op("Range", g.constant(np.array(0)), g.squeeze(g.dim(src, 1), 0), g.constant(np.array(1)))  # (S,)
    mask = g.op("Less", g.unsqueeze(positions, 0), g.unsqueeze(src_lengths, 1))  # (B, S)
    # The RNN operators already write 0 past each sequence's end; the product makes it the graph's promise.
    keys = g.op("Mul", keys, g.unsqueeze(g.op("Cast", mask, to=FLOAT), 2))  # (B, S, D*H)

    g.output(keys, "memory_keys", FLOAT, ["batch", "src_length", encoder.output_size])
    g.output(mask, "memory_mask", BOOL, ["batch", "src_length"])
    attention = model.decoder.attention
    if attention.kind == "bahdanau":
        projected = g.linear(keys, numpy_of(attention.key_projection.weight))  # (B, S, A)
        g.output(projected, "memory_projected_keys", FLOAT, ["batch", "src_length", attention.key_projection.out_features])

    hidden = model.decoder.hidden_size
    layers_dim = len(bridge.layers)
    states = [("state_h", g.op("Concat", *final_h, axis=0))]  # (L, D, B, H)
    if is_lstm:
        states.append(("state_c", g.op("Concat", *final_c, axis=0)))
    if final_states:
        for name, final in states:
            g.output(final, name.replace("state_", "final_"), FLOAT,
                     [encoder.num_layers, encoder.num_directions, "batch", encoder.hidden_size])
    for index, (name, final) in enumerate(states):
        g.output(bridge_graph(g, bridge, final, index, src), name, FLOAT, [layers_dim, "batch", hidden])
    zeros_shape = g.op("Concat", g.dim(src, 0), g.constant(np.array([hidden])), axis=0)
    g.output(g.op("ConstantOfShape", zeros_shape, value=onnx.helper.make_tensor("zero", FLOAT, [1], [0.0])),
             "state_attentional", FLOAT, ["batch", hidden])
    return g.model("seq2seq encoder: packed-equivalent RNN over each sequence's own length, bridge, key projection")


def bridge_graph(g: GraphBuilder, bridge: Bridge, final: str, index: int, src: str) -> str:
    """:class:`~seq2seq.models.bridge.Bridge` for state tensor ``index`` (0: h, 1: c): (L, D, B, H) -> (L_dec, B, H_dec)."""
    if bridge.strategy == "zeros":
        shape = g.op("Concat", g.constant(np.array([len(bridge.layers)])), g.dim(src, 0),
                     g.constant(np.array([bridge.decoder_hidden_size])), axis=0)
        return g.op("ConstantOfShape", shape, value=onnx.helper.make_tensor("zero", FLOAT, [1], [0.0]))
    if bridge.strategy in ("concat", "concat_raw"):
        # [fwd; bwd] per layer and sentence: (L, D, B, H) -> (L, B, D, H) -> (L, B, D*H)
        merged = g.op("Reshape", g.op("Transpose", final, perm=[0, 2, 1, 3]), g.constant(np.array([0, 0, -1])))
    elif bridge.strategy in ("sum", "mean"):
        merged = g.op("ReduceSum", final, g.constant(np.array([1])), keepdims=0)  # (L, B, H)
        if bridge.strategy == "mean":
            merged = g.op("Div", merged, g.constant(np.array(2.0)))
    else:  # forward
        merged = g.op("Gather", final, g.constant(np.array(0)), axis=1)  # (L, B, H)
    if bridge.projections:
        projection = bridge.projections[index]
        merged = g.linear(merged, numpy_of(projection.weight), numpy_of(projection.bias))  # (L, B, H_dec)
        if index == 0:  # h is bounded by tanh in the RNN; the cell state c is not
            merged = g.op("Tanh", merged)
    return g.op("Gather", merged, g.constant(np.array(bridge.layers)), axis=0)  # (L_dec, B, H_dec)
