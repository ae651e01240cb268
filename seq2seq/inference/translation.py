"""What translating one sentence gives: :class:`Translation`, the same from every way of decoding."""

from __future__ import annotations

from dataclasses import dataclass, field


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
