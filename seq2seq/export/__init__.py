"""Export: a trained model as ONNX graphs that :mod:`seq2seq.runtime` runs without PyTorch.

    onnx_graph.py     a small builder for ONNX graphs (weights, nodes, named inputs and outputs)
    rnn_weights.py    nn.LSTM/nn.GRU weights in ONNX's gate order and layout
    encoder_graph.py  the encoder (packed-equivalent: each sequence's own length), bridge and key projection
    decoder_graph.py  one decoder step: embedding, RNN step, attention, output layer, log-softmax
    exporter.py       export.py: checkpoint(s) -> a folder of graphs, tokenizers and manifest, checked against PyTorch

Needs ``onnx`` and ``onnxruntime`` (``pip install "seq2seq[onnx]"``).

May import: ``seq2seq.models``, ``seq2seq.data``, ``seq2seq.inference``, ``seq2seq.runtime`` and the shared
top-level modules (``decode_options``, ``config``, ``config_checks``, ``checkpoint``).
"""
