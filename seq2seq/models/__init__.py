"""The network: plain ``nn.Module``s that know nothing of Lightning, Hydra or files.

    encoder.py (packed bidirectional RNN), bridge.py (final states -> decoder start), attention.py,
    decoder.py (attention decoder, ``forward`` and ``step``; ``use_step_cells``, the seam for other step
    cells such as int8), stepwise.py (one RNN step on the module's own weights), shared_weight.py,
    initialization.py, seq2seq.py (the whole model: ``target_log_probs`` for teacher forcing, used by the loss
    and by scoring, and ``step_log_probs`` for search)

May import: torch, and nothing of ``seq2seq`` outside this package.
"""

from seq2seq.models.attention import Attention, AttentionOutput
from seq2seq.models.bridge import Bridge
from seq2seq.models.decoder import Decoder, DecoderOutput, DecoderState, Memory
from seq2seq.models.encoder import Encoder, EncoderOutput
from seq2seq.models.seq2seq import Seq2Seq

__all__ = [
    "Attention",
    "AttentionOutput",
    "Bridge",
    "Decoder",
    "DecoderOutput",
    "DecoderState",
    "Encoder",
    "EncoderOutput",
    "Memory",
    "Seq2Seq",
]
