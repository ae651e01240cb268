"""The preprocessed, memory-mapped training split: same batches as the in-memory path, reused only while
valid, never half-written, shared between processes."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from seq2seq.data.collate import collate
from seq2seq.data.corpus_store import StoredSplit
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.data.dataset import TranslationDataset
from seq2seq.data.preprocess import CHUNK_SIZE

REPO = Path(__file__).resolve().parents[2]
WORDS = "ein zwei drei haus häuser klein groß rot blau grün und mit auf dem der die das".split()


def write_corpus(root: Path, num_pairs: int = 300, seed: int = 0, extra: dict[int, tuple[str, str]] | None = None):
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for i in range(num_pairs):
        words = rng.choice(WORDS, size=int(rng.integers(1, 12)))
        src.append(" ".join(words))
        tgt.append(" ".join(w.upper() for w in words[::-1]))
        if extra and i + 1 in extra:
            src[-1], tgt[-1] = extra[i + 1]
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        (root / f"{split}.src").write_text("\n".join(src) + "\n", encoding="utf-8")
        (root / f"{split}.tgt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return root


def make_datamodule(tmp_path: Path, **overrides) -> TranslationDataModule:
    settings = dict(
        name="text", root=str(tmp_path / "corpus"), src_lang="src", tgt_lang="tgt",
        splits={"train": "train", "val": "val"}, src_tokenizer="bpe", tgt_tokenizer="word", src_vocab_size=60,
        tgt_vocab_size=40, min_frequency=1, batch_size=8, max_tokens=None, cache_dir=str(tmp_path / "cache"),
    )
    settings.update(overrides)
    return TranslationDataModule(**settings)


def store_dirs(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").glob("train-*") if p.is_dir())


# --- the same data as the in-memory path -------------------------------------------------------------------


@pytest.mark.parametrize("limits", [dict(), dict(max_tokens=40, batch_size=None, max_src_length=9, eval_overlong="drop")])
def test_the_store_gives_the_batches_of_the_in_memory_path(tmp_path, limits):
    write_corpus(tmp_path / "corpus", extra={7: ("", "LEER")}, num_pairs=400)
    datamodule = make_datamodule(tmp_path, drop_empty=True, **limits)
    datamodule.setup("fit")
    stored, in_memory = datamodule.train_split(), datamodule.encoded_split("train")
    assert isinstance(stored, StoredSplit)
    assert len(stored) == len(in_memory) < 400  # the empty pair (and, with limits, long ones) dropped
    assert list(stored.src_ids) == in_memory.src_ids
    assert list(stored.tgt_ids) == in_memory.tgt_ids
    assert stored.line_numbers.tolist() == in_memory.line_numbers
    assert stored.bucket_lengths().tolist() == in_memory.bucket_lengths()

    loader = datamodule.train_dataloader()
    reference = DataLoader(TranslationDataset(in_memory), batch_sampler=loader.batch_sampler, collate_fn=collate)
    for epoch in (0, 1):
        loader.batch_sampler.set_epoch(epoch)
        for ours, theirs in zip(loader, reference, strict=True):
            for field in ("src", "src_lengths", "tgt_in", "tgt_out", "indices"):
                assert getattr(ours, field).equal(getattr(theirs, field)), field


def test_a_second_datamodule_trains_nothing_and_encodes_nothing(tmp_path, monkeypatch):
    write_corpus(tmp_path / "corpus")
    first = make_datamodule(tmp_path)
    first.setup("fit")

    def refuse(*args, **kwargs):
        raise AssertionError("preprocessing ran again although the cache holds the result")

    monkeypatch.setattr("seq2seq.data.preprocess.train_tokenizers", refuse)
    monkeypatch.setattr("seq2seq.data.preprocess.build_train_store", refuse)
    second = make_datamodule(tmp_path, tokenizer_dir=str(tmp_path / "run" / "tokenizers"))
    second.setup("fit")
    assert second.src_tokenizer == first.src_tokenizer
    assert (tmp_path / "run" / "tokenizers" / "src_tokenizer.json").is_file()  # each run keeps its own copy
    assert list(second.train_split().src_ids) == list(first.train_split().src_ids)


# --- staleness ------------------------------------------------------------------------------------------


def test_a_changed_training_file_is_preprocessed_again(tmp_path):
    write_corpus(tmp_path / "corpus")
    make_datamodule(tmp_path).setup("fit")
    with open(tmp_path / "corpus" / "train.src", "a") as f:
        f.write("")  # same content: touching alone does not matter...
    train_tgt = tmp_path / "corpus" / "train.tgt"
    lines = train_tgt.read_text().splitlines()
    lines[0] = "GANZ ANDERS"
    train_tgt.write_text("\n".join(lines) + "\n")
    os.utime(train_tgt, ns=(time.time_ns(), time.time_ns() + 10**9))  # ... a new modification time does
    datamodule = make_datamodule(tmp_path)
    stored = datamodule.train_split()
    assert len(store_dirs(tmp_path)) == 2
    assert datamodule.tgt_tokenizer.decode(stored.tgt_ids[0]) == "GANZ ANDERS"


@pytest.mark.parametrize("change", [dict(tgt_vocab_size=12), dict(max_src_length=5, eval_overlong="drop"), dict(lowercase=True)])
def test_other_settings_make_another_store(tmp_path, change):
    write_corpus(tmp_path / "corpus")
    make_datamodule(tmp_path).setup("fit")
    make_datamodule(tmp_path, **change).setup("fit")
    assert len(store_dirs(tmp_path)) == 2


def test_a_damaged_store_is_rebuilt_not_trusted(tmp_path, caplog):
    write_corpus(tmp_path / "corpus")
    expected = list(make_datamodule(tmp_path).train_split().tgt_ids)
    (directory,) = store_dirs(tmp_path)
    with open(directory / "tgt.tokens", "r+b") as f:
        f.truncate(10)
    assert list(make_datamodule(tmp_path).train_split().tgt_ids) == expected
    assert "rebuilding" in caplog.text and "damaged" in caplog.text


def test_processes_preparing_the_same_split_at_once_build_it_once(tmp_path, monkeypatch):
    """Two DataModules (threads here; ranks or jobs in real life, the lock is a file lock) reach the same missing
    split together: one builds it while the other waits, then opens what was built."""
    import threading

    from seq2seq.data import preprocess

    write_corpus(tmp_path / "corpus")
    make_datamodule(tmp_path)._load_or_train_tokenizers()  # only the split is contended here
    builds = []
    build = preprocess.build_train_store

    def slow_build(*args, **kwargs):
        builds.append(threading.get_ident())
        time.sleep(0.5)  # the other thread arrives meanwhile
        return build(*args, **kwargs)

    monkeypatch.setattr(preprocess, "build_train_store", slow_build)
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, make_datamodule(tmp_path).train_split()))
               for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(builds) == 1
    assert list(results[0].src_ids) == list(results[1].src_ids) and len(results[0]) == 300


# --- atomic writes ----------------------------------------------------------------------------------------

KILLED_BUILD = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from seq2seq.data import corpus_store
append = corpus_store.StoreWriter.append
def append_then_die(self, *args):
    append(self, *args)
    if self.num_examples >= {chunk}:  # a chunk is on disk: die as a kill -9 would, cleaning nothing up
        os.kill(os.getpid(), signal.SIGKILL)
corpus_store.StoreWriter.append = append_then_die
from tests.unit.test_data_store import make_datamodule
from pathlib import Path
make_datamodule(Path({tmp!r})).setup("fit")
"""


def test_a_killed_preprocessing_leaves_nothing_that_is_trusted_later(tmp_path):
    write_corpus(tmp_path / "corpus", num_pairs=CHUNK_SIZE + 500)
    script = KILLED_BUILD.format(repo=str(REPO), chunk=CHUNK_SIZE, tmp=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert store_dirs(tmp_path) == []  # only the temporary folder, under another name
    assert list((tmp_path / "cache").glob(".train-*.tmp-*"))

    stored = make_datamodule(tmp_path).train_split()
    assert len(stored) == CHUNK_SIZE + 500
    assert not list((tmp_path / "cache").glob(".train-*.tmp-*"))  # the leftover was removed


def test_an_error_while_preprocessing_leaves_no_store(tmp_path):
    write_corpus(tmp_path / "corpus", extra={250: ("", "LEER")})
    with pytest.raises(ValueError, match=r"train \(.*train.src, .*train.tgt\): line 250 has an empty source"):
        make_datamodule(tmp_path).setup("fit")
    assert store_dirs(tmp_path) == [] and not list((tmp_path / "cache").glob(".train-*"))


# --- shared between processes ---------------------------------------------------------------------------


def _shared_pages_of(split: StoredSplit, barrier, results) -> None:
    """In a worker process: read every token, wait until the other worker has too, then report how much of
    the token file's mapping is resident and how much of that is shared with another process."""
    total = int(split.src_ids.tokens.sum())
    barrier.wait()
    rss = shared = 0
    in_mapping = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1].isdigit() or line[:1] in "abcdef":  # a mapping's header line
            in_mapping = line.endswith(str(split.directory / "src.tokens"))
        elif in_mapping and line.startswith("Rss:"):
            rss += int(line.split()[1])
        elif in_mapping and line.startswith(("Shared_Clean:", "Shared_Dirty:")):
            shared += int(line.split()[1])
    results.put((total, rss, shared))
    barrier.wait()


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/<pid>/smaps")
def test_processes_share_the_corpus_pages_and_receive_only_its_path(tmp_path):
    write_corpus(tmp_path / "corpus", num_pairs=40_000)
    split = make_datamodule(tmp_path, src_tokenizer="word", src_vocab_size=100).train_split()
    assert len(pickle.dumps(split)) < 1000  # what ddp_spawn and spawned workers receive: the folder's path

    context = multiprocessing.get_context("spawn")  # as ddp_spawn starts its ranks
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_shared_pages_of, args=(split, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    token_kb = split.src_ids.tokens.nbytes / 1024
    assert token_kb > 100
    for total, rss, shared in reports:
        assert total == int(split.src_ids.tokens.sum())
        assert rss >= 0.9 * token_kb  # the whole file was read through the mapping ...
        assert shared >= 0.9 * rss  # ... and its pages are the other process's too, not a copy


def test_dataloader_workers_read_the_store_and_give_the_same_batches(tmp_path):
    write_corpus(tmp_path / "corpus")
    single = make_datamodule(tmp_path)
    workers = make_datamodule(tmp_path, num_workers=2)
    single.setup("fit")
    workers.setup("fit")
    for epoch in (0, 1):
        ours, theirs = workers.train_dataloader(), single.train_dataloader()
        ours.batch_sampler.set_epoch(epoch)
        theirs.batch_sampler.set_epoch(epoch)
        assert ours.num_workers == 2
        for a, b in zip(ours, theirs, strict=True):
            assert a.src.equal(b.src) and a.tgt_out.equal(b.tgt_out) and a.indices.equal(b.indices)
