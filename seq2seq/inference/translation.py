"""What translating one sentence gives: :class:`Translation`, the same from every way of decoding.

No torch here: the ONNX runtime (:mod:`seq2seq.runtime`) builds its results with :func:`make_translation` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from seq2seq.data.tokenizer import TextTokenizer


@dataclass(frozen=True)
class Translation:
    """One sentence's result.

    ``text`` and ``score`` (sum of log-probs for greedy search and sampling, length-normalised for beam
    search) are the best hypothesis's; ``nbest`` its (text, score) list, best first. ``source_pieces`` and
    ``output_pieces`` are the tokenizer pieces the model read and wrote (``<eos>`` last when it ended);
    ``attention[j][i]`` is output piece j's weight on source piece i; ``alignment`` the hard alignment,
    (i, j) pairs: each output piece but eos with the source piece it attended to most.
    """

    text: str
    score: float
    nbest: list[tuple[str, float]]
    alignment: list[tuple[int, int]] = field(default_factory=list)
    attention: list[list[float]] = field(default_factory=list)
    source_pieces: list[str] = field(default_factory=list)
    output_pieces: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "score": self.score, "nbest": [list(entry) for entry in self.nbest],
                "alignment": [list(pair) for pair in self.alignment], "attention": self.attention,
                "source_pieces": self.source_pieces, "output_pieces": self.output_pieces}


EMPTY = Translation("", 0.0, [("", 0.0)])  # an empty input's: the model is not asked


def make_translation(tokens: list[int], score: float, nbest: Sequence[tuple[list[int], float]],
                     attention: list[list[float]], src_ids: list[int], src_tokenizer: TextTokenizer,
                     tgt_tokenizer: TextTokenizer) -> Translation:
    """One searched sentence as a :class:`Translation`: its best ``tokens`` (no bos, no eos) and ``score``, its
    ``nbest`` (tokens, score) list, ``attention`` rows (one per output piece, eos included when it ended; one
    column per source piece) and its source ``src_ids``."""
    decode_text = tgt_tokenizer.decode
    output_pieces = [tgt_tokenizer.id_to_token(token) for token in tokens]
    if len(attention) > len(tokens):
        output_pieces.append("<eos>")
    # The source piece each output piece (but eos) attended to most; the first of equal weights.
    alignment = [(max(range(len(row)), key=row.__getitem__), j) for j, row in enumerate(attention[: len(tokens)])]
    return Translation(
        text=decode_text(tokens),
        score=score,
        nbest=[(decode_text(candidate), candidate_score) for candidate, candidate_score in nbest],
        alignment=alignment,
        attention=[[round(weight, 6) for weight in weights] for weights in attention],
        source_pieces=[src_tokenizer.id_to_token(token) for token in src_ids],
        output_pieces=output_pieces,
    )
