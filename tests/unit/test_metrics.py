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


# --- several references ---------------------------------------------------------------------------------------

def test_with_several_references_an_output_is_right_if_it_equals_any_and_rates_use_the_closest():
    hypotheses = ["colour", "a b c", "x y"]
    references = [["color", "colour"], ["a b d", "a x y z"], ["x y z w"]]
    scores = score_translations(hypotheses, references)
    assert scores.exact_match == pytest.approx(1 / 3)
    # words: 0 edits of 1 (colour) + 1 of 3 (a b d) + 2 of 4 -> 3 / 8
    # chars: 0 of 6 + 1 of 5 ("a b d") + 4 of 7 ("x y z w") -> 5 / 18
    rates = error_rates(hypotheses, references)
    assert (rates.word_edits, rates.reference_words, rates.char_edits, rates.reference_chars) == (3, 8, 5, 18)
    assert scores.wer == pytest.approx(3 / 8) and scores.cer == pytest.approx(5 / 18)


def test_one_reference_per_output_scores_the_same_given_as_strings_or_as_lists_of_one():
    hypotheses = ["a man rides a bike .", "two dogs ."]
    references = ["a man rides a red bicycle .", "two dogs play ."]
    assert score_translations(hypotheses, references) == score_translations(hypotheses, [[r] for r in references])


def test_multi_reference_bleu_and_chrf_are_sacrebleus_own_with_none_where_an_output_has_fewer():
    sacrebleu = pytest.importorskip("sacrebleu")
    hypotheses = ["a man rides a bicycle .", "two dogs play in snow .", "a cat ."]
    references = [["a man rides a red bicycle .", "a man is cycling ."], ["two dogs play in the snow ."],
                  ["a cat sleeps .", "the cat .", "a small cat ."]]
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(3)]
    scores = score_translations(hypotheses, references)
    assert scores.bleu == pytest.approx(sacrebleu.corpus_bleu(hypotheses, streams).score)
    assert scores.chrf == pytest.approx(sacrebleu.corpus_chrf(hypotheses, streams).score)
    assert scores.bleu > score_translations(hypotheses, [refs[0] for refs in references]).bleu  # more refs, more hits
    assert "nrefs:var" in scores.bleu_signature
    # chrF++ (word bigrams too) and TER, also sacreBLEU's own, signatures included
    assert scores.chrf_pp == pytest.approx(sacrebleu.corpus_chrf(hypotheses, streams, word_order=2).score)
    assert scores.ter == pytest.approx(sacrebleu.corpus_ter(hypotheses, streams).score)
    assert scores.chrf_pp != scores.chrf and "nw:2" in scores.chrf_pp_signature
    assert scores.ter_signature.startswith("nrefs:var|") and "tok:tercom" in scores.ter_signature


def test_ter_is_zero_for_a_perfect_output_and_counts_a_shift_as_one_edit():
    assert score_translations(["a b c d"], ["a b c d"]).ter == 0.0
    # one block shift ("c d" to the front) is one edit of four words: 25, where edit distance alone needs 4
    assert score_translations(["c d a b"], ["a b c d"]).ter == pytest.approx(25.0)


def test_an_output_without_references_is_refused():
    with pytest.raises(ValueError, match="at least one reference"):
        score_translations(["a"], [[]])
