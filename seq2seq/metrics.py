"""Corpus-level metrics on detokenized text: sacreBLEU's BLEU and chrF, and exact match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sacrebleu


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
