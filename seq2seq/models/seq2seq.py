"""The whole model: encoder -> bridge -> attention decoder -> output layer."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from seq2seq.models.bridge import Bridge
from seq2seq.models.decoder import Decoder, DecoderOutput, DecoderState, Memory
from seq2seq.models.encoder import Encoder
from seq2seq.models.initialization import initialize


class Seq2Seq(nn.Module):
    """An attention-based RNN encoder-decoder.

    Defaults: a 1-layer bidirectional LSTM encoder (``hidden_size // 2`` per direction, so its outputs are
    ``hidden_size`` wide), the ``concat`` bridge, a 1-layer LSTM decoder with additive (``bahdanau``)
    attention and input feeding; weights drawn from U(-0.1, 0.1), embeddings from N(0, 1) (``init``,
    ``init_range``, ``embedding_init_std``; see :mod:`seq2seq.models.initialization`). ``hidden_size`` is the decoder's size and the width of the encoder's
    outputs, as in OpenNMT-py; set ``encoder_hidden_size`` to size the encoder's directions directly.

    ``share_embeddings`` makes the encoder's and the decoder's embedding tables one parameter (one vocabulary
    for both sides: ``data.share_vocab``); with ``tie_embeddings`` as well the output layer is that matrix too.

    Two ways to use it, and one function for the probabilities in each: :meth:`target_log_probs` (teacher
    forcing: the training loss and the scoring of given targets) and :meth:`step_log_probs` (one token at a
    time: search). Shapes: src (B, S); src_lengths (B,); tgt_in (B, T) = <bos> y_1 .. y_{T-1}.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        src_embedding_dim: int = 256,
        tgt_embedding_dim: int = 256,
        hidden_size: int = 256,
        encoder_hidden_size: Optional[int] = None,
        encoder_num_layers: int = 1,
        decoder_num_layers: int = 1,
        rnn_type: str = "lstm",
        bidirectional: bool = True,
        bridge: str = "concat",
        attention: str = "bahdanau",
        attention_size: Optional[int] = None,
        input_feeding: bool = True,
        dropout: float = 0.2,
        tie_embeddings: bool = False,
        share_embeddings: bool = False,
        init: str = "uniform",
        init_range: float = 0.1,
        lstm_forget_bias: Optional[float] = None,
        embedding_init_std: Optional[float] = 1.0,
        padding_idx: int = 0,
    ) -> None:
        super().__init__()
        num_directions = 2 if bidirectional else 1
        if encoder_hidden_size is None:
            if hidden_size % num_directions:
                raise ValueError(f"hidden_size ({hidden_size}) must be divisible by the {num_directions} directions")
            encoder_hidden_size = hidden_size // num_directions
        if tie_embeddings and tgt_embedding_dim != hidden_size:
            raise ValueError(
                f"tie_embeddings needs tgt_embedding_dim == hidden_size, got {tgt_embedding_dim} and {hidden_size}"
            )
        if share_embeddings and (src_vocab_size, src_embedding_dim) != (tgt_vocab_size, tgt_embedding_dim):
            raise ValueError(
                f"share_embeddings needs one vocabulary and one embedding size for both sides, got source "
                f"{src_vocab_size} x {src_embedding_dim} and target {tgt_vocab_size} x {tgt_embedding_dim}"
            )
        self.encoder = Encoder(
            src_vocab_size, src_embedding_dim, encoder_hidden_size, encoder_num_layers, rnn_type, bidirectional, dropout, padding_idx
        )
        self.bridge = Bridge(
            bridge, rnn_type, encoder_hidden_size, encoder_num_layers, bidirectional, hidden_size, decoder_num_layers
        )
        self.decoder = Decoder(
            tgt_vocab_size,
            tgt_embedding_dim,
            hidden_size,
            self.encoder.output_size,
            decoder_num_layers,
            rnn_type,
            attention,
            attention_size,
            input_feeding,
            dropout,
            padding_idx,
        )
        self.output_layer = nn.Linear(hidden_size, tgt_vocab_size)
        if share_embeddings:
            self.decoder.embedding.weight = self.encoder.embedding.weight  # both (V, E): one vocabulary
        if tie_embeddings:
            self.output_layer.weight = self.decoder.embedding.weight  # both (V_tgt, H)
        # Last, over every module at once: see seq2seq/models/initialization.py for why it matters.
        initialize(self, init, init_range, lstm_forget_bias, embedding_init_std)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Memory, DecoderState]:
        """Run the encoder once: what the decoder attends to, and its initial state."""
        encoded = self.encoder(src, src_lengths)
        memory = self.decoder.memory(encoded.outputs, encoded.mask)
        return memory, self.decoder.initial_state(self.bridge(encoded.final))

    def decode(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> DecoderOutput:
        """Teacher-forced decoder outputs before the output layer, outputs (B, T, H); a loss that needs
        logits only at real target positions applies ``output_layer`` to those alone."""
        memory, state = self.encode(src, src_lengths)
        return self.decoder(tgt_in, memory, state)

    def target_log_probs(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, positions: Tensor) -> Tensor:
        """Teacher forcing: (N, V) log-probabilities of the next token at the N ``positions`` (a (B, T) bool
        mask, True at real target tokens), in float32 at least (half precision is too coarse for a softmax).

        The output layer, a step's largest matrix product, runs only there: a padded position's would be
        thrown away."""
        outputs = self.decode(src, src_lengths, tgt_in).outputs  # (B, T, H)
        logits = self.output_layer(outputs[positions])  # (N, V)
        return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)

    def step_log_probs(self, tokens: Tensor, memory: Memory, state: DecoderState) -> tuple[Tensor, Tensor, DecoderState]:
        """One decoding step for tokens (N,): log-probabilities (N, V) of the next token (float32 at least),
        attention (N, S) and the new state."""
        output, attention, state = self.decoder.step(tokens, memory, state)  # (N, H), (N, S)
        logits = self.output_layer(output)  # (N, V)
        return torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1), attention, state
