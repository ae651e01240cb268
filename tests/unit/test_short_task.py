"""benchmarks/short_task.py: the short-sequence task is reproducible, shaped as promised, its rules as documented."""

import importlib.util

import pytest

from tests.e2e.conftest import REPO

spec = importlib.util.spec_from_file_location("short_task", REPO / "benchmarks" / "short_task.py")
short_task = importlib.util.module_from_spec(spec)
spec.loader.exec_module(short_task)


@pytest.mark.parametrize("word, final_long, phonemes", [
    ("schwahrnzüll", True, "ʃ v aː ʁ n t s ʏ l"),  # sch, long vowel before h, z = t s, doubled l said once
    ("speukreuch", True, "ʃ p ɔʏ k ʁ ɔʏ x"),  # sp at the start, eu; ch after the letter u: x (by letter)
    ("ich", True, "ɪ ç"),  # ch after i: ç
    ("bach", True, "b a x"),  # ch after a: x; a before two letters of one sound: short
    ("sagen", False, "z aː ɡ ɛ n"),  # s before a vowel: z; a before one consonant and a vowel: long
    ("rad", True, "ʁ aː t"),  # final devoicing; the word's own length where spelling leaves it open ...
    ("rad", False, "ʁ a t"),  # ... short in another word spelled the same
    ("bade", True, "b aː d ə"),  # a final e is ə, and d before it is not final
])
def test_pronunciation_follows_the_documented_rules(word, final_long, phonemes):
    assert " ".join(short_task.pronounce(word, final_long)) == phonemes


def test_the_task_is_reproducible_and_shaped_as_a_short_sequence_task(tmp_path):
    stats = short_task.make_task(tmp_path / "a", 3000, 200, 300, seed=5)
    short_task.make_task(tmp_path / "b", 3000, 200, 300, seed=5)
    for name in ("train.src", "train.chars", "train.tgt", "test.tgt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert [stats[split]["pairs"] for split in ("train", "val", "test")] == [3000, 200, 300]
    assert 7 <= stats["train"]["src_chars_per_pair"] <= 10 and 6 <= stats["train"]["tgt_symbols_per_pair"] <= 8
    assert stats["src_vocabulary"] == 30 and 35 <= stats["tgt_vocabulary"] <= 42
    words = {split: (tmp_path / "a" / f"{split}.src").read_text(encoding="utf-8").split() for split in ("train", "test")}
    assert not set(words["train"]) & set(words["test"])  # test words are unseen in training
    chars = (tmp_path / "a" / "test.chars").read_text(encoding="utf-8").splitlines()
    assert [line.replace(" ", "") for line in chars] == words["test"]
