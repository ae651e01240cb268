"""Corpus metrics: sacreBLEU's scores, exact match, bad input, and its tokenized-text warning said once."""

import logging

import pytest

from seq2seq.inference import metrics
from seq2seq.inference.metrics import score_translations


def test_scores_and_exact_match():
    references = ["a man rides a red bicycle .", "two dogs play in the snow ."]
    perfect = score_translations(references, references)
    assert perfect.bleu == pytest.approx(100.0) and perfect.chrf == pytest.approx(100.0)
    assert perfect.exact_match == 1.0
    half = score_translations([references[0], "two cats sleep in the sun ."], references)
    assert half.exact_match == 0.5
    assert 0.0 < half.bleu < 100.0 and 0.0 < half.chrf < 100.0
    assert half.bleu_signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a")


def test_mismatched_or_empty_input_is_refused():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        score_translations(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no hypotheses"):
        score_translations([], [])


def test_the_tokenized_text_warning_is_logged_once_per_process(caplog):
    metrics.SACREBLEU_WARNINGS.seen.clear()
    tokenized = [f"sentence number {i} ends here ." for i in range(120)]  # sacreBLEU warns from 100 such lines
    with caplog.at_level(logging.WARNING, logger="sacrebleu"):
        score_translations(tokenized, tokenized)
        score_translations(tokenized, tokenized)
    warnings = [r for r in caplog.records if r.name == "sacrebleu" and "tokenized period" in r.getMessage()]
    assert len(warnings) == 1
