"""Corpus-level metrics on detokenized text: sacreBLEU's BLEU and chrF, exact match, and error rates.

The error rates are what transliteration, spelling correction, normalisation and other symbol-sequence tasks
report: the edit distance (insertions, deletions, substitutions) from each output to its reference, summed over
the corpus and divided by the references' total length — in whitespace-separated tokens (``wer``: the word error
rate of a sentence, the symbol error rate of a space-separated symbol sequence) and in characters (``cer``,
spaces included). Lower is better; they can pass 1 when outputs are longer than their references. The edit
distances come from rapidfuzz (C++), so scoring a validation set costs milliseconds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import sacrebleu
from rapidfuzz.distance import Levenshtein


class OncePerMessage(logging.Filter):
    """Lets each distinct message through once. sacreBLEU warns about tokenized text (the tokenized Multi30k
    copy, say) on every call, and a training run scores every validation: once is enough."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


SACREBLEU_WARNINGS = OncePerMessage()
logging.getLogger("sacrebleu").addFilter(SACREBLEU_WARNINGS)


@dataclass
class TranslationScores:
    bleu: float
    chrf: float
    exact_match: float  # fraction of hypotheses identical to their reference, in [0, 1]
    wer: float  # corpus token (word) error rate, see the module docstring
    cer: float  # corpus character error rate
    bleu_signature: str
    chrf_signature: str


def score_translations(hypotheses: Sequence[str], references: Sequence[str]) -> TranslationScores:
    """sacreBLEU's default (cased, 13a-tokenized) BLEU and chrF, plus exact match, on plain text."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(list(hypotheses), [list(references)])
    chrf_score = chrf.corpus_score(list(hypotheses), [list(references)])
    exact = sum(h == r for h, r in zip(hypotheses, references)) / len(hypotheses)
    rates = error_rates(hypotheses, references)
    return TranslationScores(
        bleu=bleu_score.score,
        chrf=chrf_score.score,
        exact_match=exact,
        wer=rates.wer,
        cer=rates.cer,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
    )


@dataclass
class ErrorRates:
    wer: float
    cer: float
    word_edits: int  # summed edit distances, in tokens
    reference_words: int
    char_edits: int
    reference_chars: int


def error_rates(hypotheses: Sequence[str], references: Sequence[str]) -> ErrorRates:
    """Corpus token and character error rates (module docstring). A reference with no token at all is an error:
    the rate's denominator would not count it, so an output for it could never be wrong."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    word_edits = reference_words = char_edits = reference_chars = 0
    for index, (hypothesis, reference) in enumerate(zip(hypotheses, references)):
        reference_tokens = reference.split()
        if not reference_tokens:
            raise ValueError(f"reference {index} is empty: error rates are defined over non-empty references")
        word_edits += Levenshtein.distance(hypothesis.split(), reference_tokens)
        reference_words += len(reference_tokens)
        char_edits += Levenshtein.distance(hypothesis, reference)
        reference_chars += len(reference)
    return ErrorRates(
        wer=word_edits / max(reference_words, 1),
        cer=char_edits / max(reference_chars, 1),
        word_edits=word_edits,
        reference_words=reference_words,
        char_edits=char_edits,
        reference_chars=reference_chars,
    )
