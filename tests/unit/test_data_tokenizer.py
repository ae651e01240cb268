"""Tokenizers: fixed special ids, lossless round trips, unknown words, save/load."""

import json

import pytest
from tokenizers import Tokenizer

from seq2seq.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    TOKENIZER_KINDS,
    UNK_ID,
    TextTokenizer,
)

RAW = [
    "Ein Mann, der „Hallo!“ sagt.",
    "Zwei Hunde spielen im Schnee; über Äpfel und Öl (3,5 %).",
    "Eine Frau in einem blauen Kleid fährt Fahrrad.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
]
TOKENIZED = ["ein mann , der „ hallo ! “ sagt .", "zwei hunde spielen im schnee .", "ein hund ."]


def train(kind, texts=RAW, vocab_size=200, min_frequency=1):
    return TextTokenizer.train(texts, kind, vocab_size, min_frequency)


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_special_tokens_have_fixed_ids(kind):
    tokenizer = train(kind)
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert [tokenizer.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert all(i >= 4 for text in RAW for i in tokenizer.encode(text) if i != UNK_ID)


def test_word_round_trip_on_space_tokenized_text():
    tokenizer = train("word", TOKENIZED)
    for text in TOKENIZED:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.tokens("ein mann .") == ["ein", "mann", "."]


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_char_and_bpe_round_trip_raw_text(kind):
    tokenizer = train(kind)
    for text in RAW:
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_char_tokens_are_characters_with_visible_spaces():
    tokenizer = train("char")
    assert tokenizer.tokens("Öl in") == ["Ö", "l", "▁", "i", "n"]
    assert tokenizer.decode(tokenizer.encode("in  Öl")) == "in  Öl"  # repeated spaces survive


def test_encode_adds_no_bos_eos_and_decode_skips_them_everywhere():
    tokenizer = train("bpe")
    ids = tokenizer.encode(RAW[0])
    assert BOS_ID not in ids and EOS_ID not in ids
    assert tokenizer.decode([BOS_ID, *ids, EOS_ID, PAD_ID, PAD_ID]) == RAW[0]
    assert tokenizer.decode([*ids[:2], EOS_ID, *ids[2:]]) == RAW[0]  # does not stop at <eos>


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_unknown_input_maps_to_unk_without_failing(kind):
    tokenizer = train(kind, TOKENIZED if kind == "word" else RAW)
    unseen = "xylophon" if kind == "word" else "€"
    ids = tokenizer.encode(f"ein {unseen}")
    assert UNK_ID in ids
    assert "<unk>" in tokenizer.decode(ids)  # kept visible, not silently dropped


def test_vocab_size_counts_special_tokens_and_respects_the_limit():
    text = ["a b c d e f g h"]
    tokenizer = train("word", text, vocab_size=6)
    assert tokenizer.vocab_size == 6
    assert train("word", text, vocab_size=100).vocab_size == 4 + 8


def test_min_frequency_leaves_rare_words_unknown():
    tokenizer = train("word", ["a a b"], min_frequency=2)
    assert tokenizer.encode("a b") == [tokenizer.token_to_id("a"), UNK_ID]


def test_unknown_kind_lists_valid_kinds():
    with pytest.raises(ValueError, match="unknown tokenizer kind 'wordpiece'; valid kinds: word, char, bpe"):
        train("wordpiece")


def test_training_is_deterministic():
    assert train("bpe") == train("bpe")
    assert train("char").to_json() == train("char").to_json()


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_save_load_and_json_round_trip(kind, tmp_path):
    tokenizer = train(kind)
    path = tmp_path / "sub" / "tok.json"
    tokenizer.save(path)
    loaded = TextTokenizer.load(path)
    assert loaded == tokenizer
    assert loaded.kind == kind
    assert TextTokenizer.from_json(tokenizer.to_json()) == tokenizer
    assert [loaded.encode(t) for t in RAW] == [tokenizer.encode(t) for t in RAW]
    assert Tokenizer.from_file(str(path)).get_vocab_size() == tokenizer.vocab_size  # a plain tokenizers file


def test_id_to_token_out_of_range_is_an_error():
    tokenizer = train("char")
    with pytest.raises(IndexError, match=rf"token id 9999 out of range \[0, {tokenizer.vocab_size}\)"):
        tokenizer.id_to_token(9999)


def test_loading_a_foreign_or_broken_file_names_it(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        TextTokenizer.load(broken)
    spec = json.loads(train("word").to_json())
    spec["model"]["vocab"] = {"<unk>": 0, "<pad>": 1, "<bos>": 2, "<eos>": 3}
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="swapped.json"):
        TextTokenizer.load(swapped)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        TextTokenizer.load(tmp_path / "missing.json")


def test_word_encoding_in_python_gives_the_librarys_ids_for_any_whitespace_and_special_tokens():
    import random

    rng = random.Random(0)
    words = ["haus", "Haus", "ein", "<unk>", "<pad>", "a<unk>b", "<", "x<y", "ümlaut", "straße", "", "日本"]
    spaces = [" ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u00a0", "\u180e", "\u2009",
              "\u200b", "\u2028", "\u3000"]
    tokenizer = TextTokenizer.train(["ein haus", "straße Haus", "日本 ein"], "word", 100, 1)
    texts = ["".join(rng.choice(words) + rng.choice(spaces) for _ in range(rng.randint(0, 6))) for _ in range(5000)]
    library = [e.ids for e in tokenizer._tokenizer.encode_batch(texts, add_special_tokens=False)]
    assert tokenizer.encode_batch(texts) == library
    assert tokenizer._word_ids is not None  # the Python path was the one tested
