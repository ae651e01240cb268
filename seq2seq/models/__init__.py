"""Plain ``nn.Module``s: they know nothing of Lightning, Hydra or files."""

from seq2seq.models.attention import Attention, AttentionOutput
from seq2seq.models.bridge import Bridge
from seq2seq.models.decoder import Decoder, DecoderOutput, DecoderState, Memory
from seq2seq.models.encoder import Encoder, EncoderOutput
from seq2seq.models.seq2seq import Seq2Seq, Seq2SeqOutput

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
    "Seq2SeqOutput",
]
