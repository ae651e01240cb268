"""Corpus metrics: sacreBLEU's scores, exact match, error rates, bad input, and sacreBLEU's warning said once."""

import logging
import random

import pytest

from seq2seq.inference import metrics
from seq2seq.inference.metrics import error_rates, score_translations


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


# --- error rates, computed by hand ----------------------------------------------------------------------------

@pytest.mark.parametrize("hypothesis, reference, word_edits, char_edits", [
    ("a b c", "a b c", 0, 0),
    ("a x c", "a b c", 1, 1),        # one substitution
    ("a c", "a b c", 1, 2),          # one token deleted ("b " two characters)
    ("a b b c", "a b c", 1, 2),      # one token inserted
    ("", "a b c", 3, 5),             # empty output: every reference token (character) deleted
    ("c b a", "a b c", 2, 2),        # reversed: two substitutions, not three
    ("hello", "hallo", 1, 1),        # one wrong character is a whole wrong word
])
def test_edit_distances_by_hand(hypothesis, reference, word_edits, char_edits):
    rates = error_rates([hypothesis], [reference])
    assert (rates.word_edits, rates.char_edits) == (word_edits, char_edits)
    assert rates.wer == pytest.approx(word_edits / len(reference.split()))
    assert rates.cer == pytest.approx(char_edits / len(reference))


def test_error_rates_are_corpus_sums_not_means_of_sentences():
    # sentence rates 1/1 and 0/9 average to 0.5; the corpus rate is 1 edit over 10 reference tokens
    rates = error_rates(["x", "a b c d e f g h i"], ["y", "a b c d e f g h i"])
    assert rates.wer == pytest.approx(0.1)
    assert score_translations(["x", "a b c d e f g h i"], ["y", "a b c d e f g h i"]).wer == pytest.approx(0.1)


def test_an_empty_reference_is_refused_naming_it():
    with pytest.raises(ValueError, match="reference 1 is empty"):
        error_rates(["a", "b"], ["a", "  "])


def test_error_rates_equal_torchmetrics_on_random_symbol_sequences():
    text = pytest.importorskip("torchmetrics.text")
    generator = random.Random(0)
    alphabet = "abcdé "

    def sentence() -> str:
        return " ".join("".join(generator.choice(alphabet[:-1]) for _ in range(generator.randint(1, 4)))
                        for _ in range(generator.randint(1, 8)))

    hypotheses = [sentence() if generator.random() > 0.1 else "" for _ in range(200)]
    references = [sentence() for _ in range(200)]
    rates = error_rates(hypotheses, references)
    assert rates.wer == pytest.approx(float(text.WordErrorRate()(hypotheses, references)), rel=1e-6)
    assert rates.cer == pytest.approx(float(text.CharErrorRate()(hypotheses, references)), rel=1e-6)
