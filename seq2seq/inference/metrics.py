"""Corpus-level metrics on detokenized text: sacreBLEU's BLEU, chrF, chrF++ and TER, exact match, and error rates.

BLEU, chrF, chrF++ (``CHRF(word_order=2)``: character and word bigram n-grams) and TER (translation edit rate,
lowercased, tercom tokenization; lower is better) are sacreBLEU's own classes with their default settings, and
each comes with its signature, as papers report them.

The error rates are what transliteration, spelling correction, normalisation and other symbol-sequence tasks
report: the edit distance (insertions, deletions, substitutions) from each output to its reference, summed over
the corpus and divided by the references' total length — in whitespace-separated tokens (``wer``: the word error
rate of a sentence, the symbol error rate of a space-separated symbol sequence) and in characters (``cer``,
spaces included). Lower is better; they can pass 1 when outputs are longer than their references. The edit
distances come from rapidfuzz (C++), so scoring a validation set costs milliseconds.

Several references per output (a split with ``{split}.{tgt_lang}.1``, … beside its target file): exact match
counts an output right when it equals any of them; each error rate takes, for each output, the reference with
the fewest edits (the first of equals) and its length; BLEU, chrF, chrF++ and TER use sacreBLEU's
multi-reference scoring
(its signature then says ``nrefs:N`` or ``nrefs:var``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence, Union

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
    chrf_pp: float  # chrF++
    ter: float  # translation edit rate, in percent: lower is better
    exact_match: float  # fraction of hypotheses identical to their reference, in [0, 1]
    wer: float  # corpus token (word) error rate, see the module docstring
    cer: float  # corpus character error rate
    bleu_signature: str
    chrf_signature: str
    chrf_pp_signature: str
    ter_signature: str


References = Union[Sequence[str], Sequence[Sequence[str]]]  # one reference per output, or a list of them each


def reference_sets(references: References) -> list[list[str]]:
    """Each output's references as a list, whether one string or several were given per output."""
    return [[reference] if isinstance(reference, str) else list(reference) for reference in references]


def reference_streams(sets: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """sacreBLEU's layout: stream k holds every output's k-th reference, None where an output has fewer."""
    width = max(len(references) for references in sets)
    return [[references[k] if k < len(references) else None for references in sets] for k in range(width)]


def score_translations(hypotheses: Sequence[str], references: References) -> TranslationScores:
    """sacreBLEU's default (cased, 13a-tokenized) BLEU, chrF, chrF++, TER, exact match and error rates, on plain text;
    ``references``: one string per hypothesis, or a list of strings (several references) per hypothesis."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    sets = reference_sets(references)
    if any(not references for references in sets):
        raise ValueError("every hypothesis needs at least one reference")
    streams = reference_streams(sets)
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    chrf_pp = sacrebleu.metrics.CHRF(word_order=2)
    ter = sacrebleu.metrics.TER()
    bleu_score = bleu.corpus_score(list(hypotheses), streams)
    chrf_score = chrf.corpus_score(list(hypotheses), streams)
    chrf_pp_score = chrf_pp.corpus_score(list(hypotheses), streams)
    ter_score = ter.corpus_score(list(hypotheses), streams)
    exact = sum(h in references for h, references in zip(hypotheses, sets)) / len(hypotheses)
    rates = error_rates(hypotheses, sets)
    return TranslationScores(
        bleu=bleu_score.score,
        chrf=chrf_score.score,
        chrf_pp=chrf_pp_score.score,
        ter=ter_score.score,
        exact_match=exact,
        wer=rates.wer,
        cer=rates.cer,
        bleu_signature=str(bleu.get_signature()),
        chrf_signature=str(chrf.get_signature()),
        chrf_pp_signature=str(chrf_pp.get_signature()),
        ter_signature=str(ter.get_signature()),
    )


@dataclass
class ErrorRates:
    wer: float
    cer: float
    word_edits: int  # summed edit distances, in tokens
    reference_words: int
    char_edits: int
    reference_chars: int


def error_rates(hypotheses: Sequence[str], references: References) -> ErrorRates:
    """Corpus token and character error rates (module docstring), against the closest of several references when
    given. A reference with no token at all is an error: the rate's denominator would not count it, so an output
    for it could never be wrong."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    word_edits = reference_words = char_edits = reference_chars = 0
    for index, (hypothesis, candidates) in enumerate(zip(hypotheses, reference_sets(references))):
        tokenized = [reference.split() for reference in candidates]
        if not tokenized or not all(tokenized):
            raise ValueError(f"reference {index} is empty: error rates are defined over non-empty references")
        hypothesis_tokens = hypothesis.split()
        # (edits, length) against each reference; min() keeps the first of equals
        words = min(((Levenshtein.distance(hypothesis_tokens, tokens), len(tokens)) for tokens in tokenized),
                    key=lambda pair: pair[0])
        chars = min(((Levenshtein.distance(hypothesis, reference), len(reference)) for reference in candidates),
                    key=lambda pair: pair[0])
        word_edits += words[0]
        reference_words += words[1]
        char_edits += chars[0]
        reference_chars += chars[1]
    return ErrorRates(
        wer=word_edits / max(reference_words, 1),
        cer=char_edits / max(reference_chars, 1),
        word_edits=word_edits,
        reference_words=reference_words,
        char_edits=char_edits,
        reference_chars=reference_chars,
    )
