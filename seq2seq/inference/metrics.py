"""Corpus-level metrics on detokenized text: sacreBLEU's BLEU and chrF, and exact match."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import sacrebleu


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
    return TranslationScores(
        bleu=bleu_score.score,
        chrf=chrf_score.score,
        exact_match=exact,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
    )
